#include "vmm/control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static struct json_object *control_error(const char *cls, const char *desc)
{
	struct json_object *err = json_object_new_object(), *reply = json_object_new_object();

	json_object_object_add(err, "class", json_object_new_string(cls));
	json_object_object_add(err, "desc", json_object_new_string(desc));
	json_object_object_add(reply, "error", err);
	return reply;
}

static const struct control_command *control_find(const struct control *c, const char *name)
{
	for (unsigned i = 0; i < c->ncmds; i++)
		if (!strcmp(c->cmds[i].name, name))
			return &c->cmds[i];
	return NULL;
}

static struct json_object *control_execute(struct control *c, struct json_object *req)
{
	struct json_object *exec, *args = NULL, *ret = NULL, *reply;
	const struct control_command *cmd;
	char err[256] = "";

	if (!json_object_is_type(req, json_type_object))
		return control_error("GenericError", "a command must be a JSON object");
	if (!json_object_object_get_ex(req, "execute", &exec) ||
	    !json_object_is_type(exec, json_type_string))
		return control_error("GenericError", "expected \"execute\" with a command name");
	json_object_object_foreach(req, key, val) {
		(void)val;
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
			snprintf(err, sizeof(err), "unexpected member \"%s\"", key);
			return control_error("GenericError", err);
		}
	}
	if (json_object_object_get_ex(req, "arguments", &args) &&
	    !json_object_is_type(args, json_type_object))
		return control_error("GenericError", "\"arguments\" must be an object");
	cmd = control_find(c, json_object_get_string(exec));
	if (!cmd) {
		snprintf(err, sizeof(err), "the command %s has not been found",
			 json_object_get_string(exec));
		return control_error("CommandNotFound", err);
	}
	if (cmd->fn(c->ctx, args, &ret, err, sizeof(err)) < 0)
		return control_error("GenericError", err[0] ? err : "command failed");
	reply = json_object_new_object();
	json_object_object_add(reply, "return", ret ? ret : json_object_new_object());
	return reply;
}

/* Parses one line as a JSON text. Returns the value (NULL for JSON null or
 * on error: msg says which, or is empty for null). flags are json-c's
 * tokener flags: JSON_TOKENER_STRICT | VALIDATE_UTF8, or 0 (lenient). */
static struct json_object *control_parse(const char *line, size_t len, int flags, char *msg,
					 size_t msglen, size_t *end)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *v;
	enum json_tokener_error err;

	msg[0] = 0;
	*end = 0;
	if (!tok) {
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, flags);
	v = json_tokener_parse_ex(tok, line, (int)len);
	err = json_tokener_get_error(tok);
	*end = (size_t)tok->char_offset;
	if (err == json_tokener_continue) {
		/* A bare number or literal ends only at a delimiter. */
		v = json_tokener_parse_ex(tok, " ", 1);
		err = json_tokener_get_error(tok);
		*end = len;
	}
	if (err != json_tokener_success)
		snprintf(msg, msglen, "JSON parse error: %s",
			 err == json_tokener_continue ? "incomplete JSON text" :
							json_tokener_error_desc(err));
	json_tokener_free(tok);
	return v;
}

static bool control_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!strchr(" \t\r", p[i]))
			return false;
	return true;
}

struct json_object *control_handle_line(struct control *c, const char *line, size_t len)
{
	struct json_object *req, *reply, *id;
	char msg[160], lax[160];
	size_t end;

	/* json-c stops at a NUL: a line with one would run its first part. */
	if (memchr(line, 0, len))
		return control_error("GenericError", "JSON parse error: a NUL byte in the line");
	/* Strict JSON and valid UTF-8: what is not JSON is not run (json-c's
	 * default mode takes trailing commas and single quotes). */
	req = control_parse(line, len, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8, msg,
			    sizeof(msg), &end);
	if (msg[0]) {
		/* Say "trailing characters" when a whole value came first. */
		struct json_object *v = control_parse(line, len, 0, lax, sizeof(lax), &end);

		if (!lax[0] && end < len && !control_blank(line + end, len - end))
			snprintf(msg, sizeof(msg), "JSON parse error: trailing characters after the object");
		json_object_put(v);
		return control_error("GenericError", msg);
	}
	if (!req)
		return control_error("GenericError", "a command must be a JSON object"); /* null */
	reply = control_execute(c, req);
	if (json_object_is_type(req, json_type_object) && json_object_object_get_ex(req, "id", &id))
		json_object_object_add(reply, "id", json_object_get(id));
	json_object_put(req);
	return reply;
}

static void control_drop(struct control_client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
	*cl = (struct control_client){ .fd = -1 };
}

static void control_send(struct control_client *cl, struct json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s);
	char *line = malloc(len + 1);
	size_t done = 0;

	if (!line) {
		control_drop(cl);
		return;
	}
	memcpy(line, s, len);
	line[len++] = '\n';
	/* A client that stops reading its replies is dropped rather than
	 * allowed to stall the VM's main loop. */
	while (done < len) {
		ssize_t n = send(cl->fd, line + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			control_drop(cl);
			break;
		}
		done += (size_t)n;
	}
	free(line);
}

static void control_greet(struct control_client *cl)
{
	struct json_object *g = json_tokener_parse(
		"{\"QMP\": {\"version\": {\"ferry\": {\"major\": 0, \"minor\": 1, \"micro\": 0}},"
		" \"capabilities\": []}}");

	control_send(cl, g);
	json_object_put(g);
}

static void control_accept(struct control *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		if (c->clients[i].fd < 0) {
			c->clients[i].fd = fd;
			control_greet(&c->clients[i]);
			return;
		}
	}
	/* Too many clients: say so and hang up. */
	struct control_client tmp = { .fd = fd };
	struct json_object *e = control_error("GenericError", "too many control clients");

	control_send(&tmp, e);
	json_object_put(e);
	control_drop(&tmp);
}

static void control_lines(struct control *c, struct control_client *cl)
{
	char *nl;

	while (cl->fd >= 0 && (nl = memchr(cl->buf, '\n', cl->len))) {
		size_t llen = (size_t)(nl - cl->buf);
		struct json_object *reply;
		bool blank = true;

		for (size_t i = 0; i < llen; i++)
			blank &= cl->buf[i] == ' ' || cl->buf[i] == '\t' || cl->buf[i] == '\r';
		if (!blank) {
			reply = control_handle_line(c, cl->buf, llen);
			control_send(cl, reply);
			json_object_put(reply);
			if (cl->fd < 0)
				return;
		}
		memmove(cl->buf, nl + 1, cl->len - llen - 1);
		cl->len -= llen + 1;
	}
}

static void control_read(struct control *c, struct control_client *cl)
{
	char tmp[4096];
	ssize_t n = recv(cl->fd, tmp, sizeof(tmp), 0);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		control_drop(cl);
		return;
	}
	if (cl->len + (size_t)n > CONTROL_MAX_LINE) {
		struct json_object *e = control_error("GenericError", "line too long");

		control_send(cl, e);
		json_object_put(e);
		control_drop(cl);
		return;
	}
	char *b = realloc(cl->buf, cl->len + (size_t)n);

	if (!b) {
		control_drop(cl);
		return;
	}
	cl->buf = b;
	memcpy(cl->buf + cl->len, tmp, (size_t)n);
	cl->len += (size_t)n;
	control_lines(c, cl);
}

int control_open(struct control *c, const char *path, const struct control_command *cmds,
		 unsigned ncmds, void *ctx)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int err;

	memset(c, 0, sizeof(*c));
	c->listen_fd = -1;
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
	c->cmds = cmds;
	c->ncmds = ncmds;
	c->ctx = ctx;
	if (!path)
		return 0;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("--control: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0)
		return -errno;
	unlink_stale_socket(path);
	old = umask(0177); /* the socket is born 0600: no window for others */
	err = bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
	umask(old);
	if (!err && listen(c->listen_fd, 4) < 0)
		err = errno;
	if (err) {
		log_error("--control: cannot listen on %s: %s", path, strerror(err));
		close(c->listen_fd);
		c->listen_fd = -1;
		return -err;
	}
	c->path = strdup(path);
	return 0;
}

void control_close(struct control *c)
{
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			control_drop(&c->clients[i]);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	free(c->path);
	c->path = NULL;
	c->listen_fd = -1;
}

unsigned control_poll_fds(const struct control *c, struct pollfd *fds)
{
	unsigned n = 0;

	if (c->listen_fd < 0)
		return 0;
	fds[n++] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			fds[n++] = (struct pollfd){ .fd = c->clients[i].fd, .events = POLLIN };
	return n;
}

void control_dispatch(struct control *c, const struct pollfd *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (fds[i].fd == c->listen_fd) {
			control_accept(c);
			continue;
		}
		for (unsigned j = 0; j < CONTROL_MAX_CLIENTS; j++)
			if (c->clients[j].fd == fds[i].fd)
				control_read(c, &c->clients[j]);
	}
}

void control_event(struct control *c, const char *name, struct json_object *data)
{
	struct json_object *ev = json_object_new_object(), *ts = json_object_new_object();
	int64_t sec, usec;

	time_wall(&sec, &usec);
	json_object_object_add(ts, "seconds", json_object_new_int64(sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(usec));
	json_object_object_add(ev, "event", json_object_new_string(name));
	if (data)
		json_object_object_add(ev, "data", data);
	json_object_object_add(ev, "timestamp", ts);
	for (unsigned i = 0; i < CONTROL_MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			control_send(&c->clients[i], ev);
	json_object_put(ev);
}
