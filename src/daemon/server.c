/* ferryd's RPC server: the UNIX socket (peer credentials checked), the
 * optional TCP listener, one thread per client, the dispatch table. */
#include "daemon/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/jsonarg.h"
#include "common/log.h"
#include "common/util.h"

json_object *cmd_fail(struct cmd_error *e, const char *cls, const char *fmt, ...)
{
	va_list ap;

	e->cls = cls;
	va_start(ap, fmt);
	vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	return NULL;
}

static bool arg_fail(int r, struct cmd_error *e)
{
	if (r)
		e->cls = "GenericError";
	return r == 0;
}

/* A given argument's type against its spec; jsonarg.c's messages. */
static int arg_type_check(json_object *args, const struct arg_spec *a, char *err, size_t errlen)
{
	static const char *const what[] = { [ARG_ARRAY] = "an array", [ARG_OBJECT] = "an object" };
	json_object *v;
	const char *s;
	uint64_t u;
	bool b;

	switch (a->type) {
	case ARG_STRING:
		return jarg_str(args, a->name, false, &s, err, errlen);
	case ARG_BOOL:
		return jarg_bool(args, a->name, &b, err, errlen);
	case ARG_UINT: /* the handler's arg_u64 checks the range */
		if (jarg_u64(args, a->name, 0, UINT64_MAX, &u, NULL, err, errlen) == 0)
			return 0;
		snprintf(err, errlen, "argument '%s' must be a non-negative integer", a->name);
		return -1;
	case ARG_ARRAY:
	case ARG_OBJECT:
		if (!json_object_object_get_ex(args, a->name, &v) || !v ||
		    json_object_is_type(v, a->type == ARG_ARRAY ? json_type_array :
					json_type_object))
			return 0;
		snprintf(err, errlen, "argument '%s' must be %s", a->name, what[a->type]);
		return -1;
	}
	return 0;
}

const struct arg_spec args_domain_only[] = { { "domain", ARG_STRING }, { NULL, 0 } };

static bool in_spec(const char *key, const void *table)
{
	for (const struct arg_spec *a = table; a->name; a++)
		if (!strcmp(key, a->name))
			return true;
	return false;
}

bool args_check(json_object *args, const struct arg_spec spec[], struct cmd_error *e)
{
	if (!arg_fail(jarg_only_if(args, in_spec, spec, e->desc, sizeof(e->desc)), e))
		return false;
	for (const struct arg_spec *a = spec; a->name; a++)
		if (!arg_fail(arg_type_check(args, a, e->desc, sizeof(e->desc)), e))
			return false;
	return true;
}

const char *arg_str(json_object *args, const char *key, bool required, struct cmd_error *e)
{
	const char *s = NULL;

	arg_fail(jarg_str(args, key, required, &s, e->desc, sizeof(e->desc)), e);
	return s;
}

bool arg_bool(json_object *args, const char *key)
{
	char err[128];
	bool b = false;

	return jarg_bool(args, key, &b, err, sizeof(err)) == 0 && b;
}

bool arg_u64(json_object *args, const char *key, uint64_t lo, uint64_t hi, uint64_t def,
	     uint64_t *out, struct cmd_error *e)
{
	*out = def;
	return arg_fail(jarg_u64(args, key, lo, hi, out, NULL, e->desc, sizeof(e->desc)), e);
}

struct dom *arg_domain_locked(struct daemon *d, json_object *args, struct cmd_error *e)
{
	const char *key = arg_str(args, "domain", true, e);
	struct dom *dom;

	if (!key)
		return NULL;
	dom = dom_lookup_locked(d, key);
	if (!dom)
		cmd_fail(e, "NoDomain", "Domain not found: no domain with matching name '%s'", key);
	return dom;
}

bool client_event(struct client *cl, const char *name, json_object *data)
{
	json_object *ev = json_object_new_object();
	int64_t sec, usec;
	json_object *ts = json_object_new_object();
	int r;

	time_wall(&sec, &usec);
	json_object_object_add(ts, "seconds", json_object_new_int64(sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(usec));
	json_object_object_add(ev, "event", json_object_new_string(name));
	json_object_object_add(ev, "data", data ? data : json_object_new_object());
	json_object_object_add(ev, "timestamp", ts);
	r = rpc_send(&cl->conn, ev);
	json_object_put(ev);
	return r == 0;
}

static const struct cmd *find_cmd(const char *name)
{
	const struct cmd *const tables[] = { lifecycle_cmds, info_cmds, mig_out_cmds, mig_in_cmds };

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct cmd *c = tables[t]; c->name; c++)
			if (!strcmp(c->name, name))
				return c;
	return NULL;
}

/* Checks the arguments, then runs the command (on its domain, looked up
 * and locked here, for a dom_fn). */
static json_object *run_cmd(struct client *cl, const struct cmd *cmd, json_object *args,
			    struct cmd_error *e)
{
	struct daemon *d = cl->d;
	json_object *ret = NULL;
	struct dom *dom;

	if (!args_check(args, cmd->args, e))
		return NULL;
	if (cmd->fn)
		return cmd->fn(cl, args, e);
	pthread_mutex_lock(&d->lock);
	dom = arg_domain_locked(d, args, e);
	if (dom) {
		ret = cmd->dom_fn(cl, dom, args, e);
		dom_put_locked(d, dom);
	}
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* Handles one request line; returns the reply. */
static json_object *dispatch(struct client *cl, json_object *req)
{
	struct cmd_error e = { 0 };
	json_object *exec, *args = NULL, *id = NULL, *ret = NULL, *reply;
	const struct cmd *cmd = NULL;

	if (!json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "execute", &exec) ||
	    !json_object_is_type(exec, json_type_string)) {
		cmd_fail(&e, "GenericError", "expected {\"execute\": NAME, \"arguments\": {...}}");
		goto reply;
	}
	json_object_object_get_ex(req, "id", &id);
	json_object_object_foreach(req, key, val) {
		(void)val;
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id")) {
			cmd_fail(&e, "GenericError", "unexpected member '%s'", key);
			goto reply;
		}
	}
	if (json_object_object_get_ex(req, "arguments", &args) &&
	    !json_object_is_type(args, json_type_object)) {
		cmd_fail(&e, "GenericError", "'arguments' must be an object");
		goto reply;
	}
	cmd = find_cmd(json_object_get_string(exec));
	if (!cmd) {
		cmd_fail(&e, "CommandNotFound", "the command %s has not been found",
			 json_object_get_string(exec));
		goto reply;
	}
	{
		json_object *empty = args ? NULL : json_object_new_object();

		ret = run_cmd(cl, cmd, args ? args : empty, &e);
		json_object_put(empty);
	}
	if (!ret && !e.cls)
		ret = json_object_new_object();
reply:
	reply = json_object_new_object();
	if (e.cls) {
		json_object *err = json_object_new_object();

		json_object_put(ret);
		json_object_object_add(err, "class", json_object_new_string(e.cls));
		json_object_object_add(err, "desc", json_object_new_string(e.desc));
		json_object_object_add(reply, "error", err);
	} else {
		json_object_object_add(reply, "return", ret);
	}
	if (id)
		json_object_object_add(reply, "id", json_object_get(id));
	return reply;
}

/* After `console`: bytes both ways until either side closes. */
static void client_raw(struct client *cl)
{
	char buf[4096];
	size_t n = rpc_take_buffered(&cl->conn, buf, sizeof(buf));

	if (n && write(cl->raw_fd, buf, n) < 0)
		return;
	for (;;) {
		struct pollfd p[2] = { { .fd = cl->conn.rfd, .events = POLLIN },
				       { .fd = cl->raw_fd, .events = POLLIN } };
		ssize_t r;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			int from = i ? cl->raw_fd : cl->conn.rfd, to = i ? cl->conn.wfd : cl->raw_fd;

			if (!p[i].revents)
				continue;
			r = read(from, buf, sizeof(buf));
			if (r <= 0)
				return;
			if (fd_write_all(to, buf, (size_t)r)) /* SIGPIPE is ignored */
				return;
		}
	}
}

static void greet(struct client *cl)
{
	json_object *g = json_object_new_object(), *inner = json_object_new_object(),
		    *v = json_object_new_object();

	json_object_object_add(v, "major", json_object_new_int(0));
	json_object_object_add(v, "minor", json_object_new_int(1));
	json_object_object_add(v, "micro", json_object_new_int(0));
	json_object_object_add(inner, "version", v);
	json_object_object_add(inner, "hostname", json_object_new_string(cl->d->hostname));
	json_object_object_add(g, "ferryd", inner);
	rpc_send(&cl->conn, g);
	json_object_put(g);
}

static void *client_main(void *arg)
{
	struct client *cl = arg;

	greet(cl);
	for (;;) {
		json_object *req = NULL, *reply;
		int r = rpc_recv(&cl->conn, &req);

		if (r == -EPROTO) {
			struct cmd_error e;

			/* Not JSON: answered, the connection goes on (a too-long line
			 * has ended it in rpc_recv). */
			cmd_fail(&e, "GenericError", "malformed request: not a JSON object");
			reply = json_object_new_object();
			{
				json_object *err = json_object_new_object();

				json_object_object_add(err, "class", json_object_new_string(e.cls));
				json_object_object_add(err, "desc", json_object_new_string(e.desc));
				json_object_object_add(reply, "error", err);
			}
			r = rpc_send(&cl->conn, reply);
			json_object_put(reply);
			if (r || cl->conn.rfd < 0)
				break;
			continue;
		}
		if (r)
			break;
		reply = dispatch(cl, req);
		json_object_put(req);
		r = rpc_send(&cl->conn, reply);
		json_object_put(reply);
		if (r)
			break;
		if (cl->raw_fd >= 0) {
			client_raw(cl);
			break;
		}
	}
	if (cl->raw_fd >= 0)
		close(cl->raw_fd);
	rpc_close(&cl->conn);
	free(cl);
	return NULL;
}

static void client_spawn(struct daemon *d, int fd, bool tcp)
{
	struct client *cl = calloc(1, sizeof(*cl));
	pthread_attr_t attr;
	pthread_t t;

	if (!cl) {
		close(fd);
		return;
	}
	cl->d = d;
	cl->tcp = tcp;
	cl->raw_fd = -1;
	if (tcp) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!getsockname(fd, (struct sockaddr *)&ss, &len))
			getnameinfo((struct sockaddr *)&ss, len, cl->local_host,
				    sizeof(cl->local_host), NULL, 0, NI_NUMERICHOST);
	}
	rpc_attach_fd(&cl->conn, fd, tcp ? "tcp client" : "local client");
	cl->conn.timeout_ms = -1;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, client_main, cl)) {
		rpc_close(&cl->conn);
		free(cl);
	}
	pthread_attr_destroy(&attr);
}

/* Local clients: root, or ferryd's own user. */
static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == getuid();
}

int server_listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[sizeof(sa.sun_path)];
	char *slash;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
			return -errno;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink_stale_socket(path);
	old = umask(0177); /* created 0600: no window in which others connect */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		int e = errno;

		umask(old);
		snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	umask(old);
	return fd;
}

int server_listen_tcp(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	int fd, one = 1, gai;

	gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (gai) {
		snprintf(err, errlen, "--listen %s:%s: %s", host, port, gai_strerror(gai));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, strerror(e));
		close(fd);
		freeaddrinfo(res);
		return -e;
	}
	freeaddrinfo(res);
	return fd;
}

int server_run(struct daemon *d, int unix_fd, int tcp_fd, int stop_fd)
{
	for (;;) {
		struct pollfd p[3] = { { .fd = unix_fd, .events = POLLIN },
				       { .fd = tcp_fd, .events = POLLIN },
				       { .fd = stop_fd, .events = POLLIN } };
		int fd;

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[2].revents)
			return 0;
		if (p[0].revents) {
			fd = accept4(unix_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0 && !peer_allowed(fd)) {
				log_warn("refused a local client: not root nor ferryd's user");
				close(fd);
			} else if (fd >= 0) {
				client_spawn(d, fd, false);
			}
		}
		if (p[1].revents) {
			fd = accept4(tcp_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				client_spawn(d, fd, true);
		}
	}
}
