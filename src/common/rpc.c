#include "common/fdio.h"
#include "common/rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

#define RPC_DEFAULT_TIMEOUT_MS 30000

/* ---- URIs ---- */

/* "?socket=PATH" at q (or nothing); 0 or -EINVAL. */
static int parse_query(const char *q, char *path, size_t len, char *err, size_t errlen)
{
	if (!*q)
		return 0;
	if (strncmp(q, "?socket=", 8) || !q[8] || strchr(q + 8, '&')) {
		snprintf(err, errlen, "unsupported URI parameters '%s' (only ?socket=PATH)", q);
		return -EINVAL;
	}
	if (strlen(q + 8) >= len) {
		snprintf(err, errlen, "socket path too long");
		return -EINVAL;
	}
	strcpy(path, q + 8);
	return 0;
}

/* [USER@]HOST[:PORT] up to the first '/' or '?' of s; returns the rest. */
static const char *parse_authority(const char *s, struct rpc_uri *u, char *err, size_t errlen)
{
	size_t n = strcspn(s, "/?");
	char auth[400], *host = auth, *at, *port = NULL;

	if (n >= sizeof(auth)) {
		snprintf(err, errlen, "host name too long");
		return NULL;
	}
	memcpy(auth, s, n);
	auth[n] = 0;
	at = strrchr(auth, '@');
	if (at) {
		*at = 0;
		if (strlen(auth) >= sizeof(u->user)) {
			snprintf(err, errlen, "user name too long");
			return NULL;
		}
		strcpy(u->user, auth);
		host = at + 1;
	}
	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (!close || (close[1] && close[1] != ':')) {
			snprintf(err, errlen, "malformed IPv6 address in '%s'", auth);
			return NULL;
		}
		*close = 0;
		host++;
		port = close[1] == ':' ? close + 2 : NULL;
	} else if ((port = strchr(host, ':'))) {
		*port++ = 0;
	}
	if (!host[0] || strlen(host) >= sizeof(u->host)) {
		snprintf(err, errlen, "the URI needs a host");
		return NULL;
	}
	strcpy(u->host, host);
	if (port) {
		uint64_t v;

		if (parse_u64(port, &v) || !v || v > 65535) {
			snprintf(err, errlen, "bad port '%s'", port);
			return NULL;
		}
		snprintf(u->port, sizeof(u->port), "%u", (unsigned)v);
	}
	return s + n;
}

int rpc_uri_parse(const char *uri, struct rpc_uri *u, char *err, size_t errlen)
{
	const char *rest;

	memset(u, 0, sizeof(*u));
	if (!uri[0] || !strcmp(uri, "ferry:///") || !strcmp(uri, "ferry+unix:///")) {
		u->transport = RPC_UNIX;
		strcpy(u->path, RPC_DEFAULT_SOCKET);
		return 0;
	}
	if (!strncmp(uri, "ferry+unix://", 13)) {
		rest = uri + 13;
		u->transport = RPC_UNIX;
		if (rest[0] != '/') {
			snprintf(err, errlen, "ferry+unix:// takes no host: ferry+unix:///PATH");
			return -EINVAL;
		}
		if (rest[1] == '?' || !rest[1]) {
			strcpy(u->path, RPC_DEFAULT_SOCKET);
			return parse_query(rest + 1, u->path, sizeof(u->path), err, errlen);
		}
		if (strchr(rest, '?') || strlen(rest) >= sizeof(u->path)) {
			snprintf(err, errlen, "bad socket path in '%s'", uri);
			return -EINVAL;
		}
		strcpy(u->path, rest);
		return 0;
	}
	if (!strncmp(uri, "ferry+tcp://", 12)) {
		u->transport = RPC_TCP;
		rest = parse_authority(uri + 12, u, err, errlen);
		if (!rest)
			return -EINVAL;
		if (u->user[0] || (rest[0] && strcmp(rest, "/"))) {
			snprintf(err, errlen, "expected ferry+tcp://HOST[:PORT]/, not '%s'", uri);
			return -EINVAL;
		}
		if (!u->port[0])
			snprintf(u->port, sizeof(u->port), "%d", RPC_DEFAULT_TCP_PORT);
		return 0;
	}
	if (!strncmp(uri, "ferry+ssh://", 12)) {
		u->transport = RPC_SSH;
		rest = parse_authority(uri + 12, u, err, errlen);
		if (!rest)
			return -EINVAL;
		strcpy(u->path, RPC_DEFAULT_SOCKET);
		if (rest[0] == '/')
			rest++;
		return parse_query(rest, u->path, sizeof(u->path), err, errlen);
	}
	{
		size_t n = strcspn(uri, ":");

		snprintf(err, errlen, "unsupported URI scheme '%.*s' (ferry+unix, ferry+tcp, ferry+ssh)",
			 (int)(n > 40 ? 40 : n), uri);
	}
	return -EINVAL;
}

/* ---- connecting ---- */

static void conn_init(struct rpc_conn *c, const char *peer)
{
	memset(c, 0, sizeof(*c));
	c->rfd = c->wfd = -1;
	c->timeout_ms = RPC_DEFAULT_TIMEOUT_MS;
	size_t n = strlen(peer);

	if (n >= sizeof(c->peer))
		n = sizeof(c->peer) - 1;
	memcpy(c->peer, peer, n);
	c->peer[n] = 0;
}

void rpc_attach_fd(struct rpc_conn *c, int fd, const char *peer)
{
	conn_init(c, peer);
	c->rfd = c->wfd = fd;
}

static int read_greeting(struct rpc_conn *c, char *err, size_t errlen)
{
	int r = rpc_recv(c, &c->greeting);

	if (r) {
		snprintf(err, errlen, "%s: no greeting: %s", c->peer,
			 r == -ENODATA ? "connection closed" : strerror(-r));
		rpc_close(c);
	}
	return r;
}

static int connect_unix_fd(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = fd_connect_timeout(fd, (struct sockaddr *)&sa, sizeof(sa), timeout_ms);
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

int rpc_connect_unix(struct rpc_conn *c, const char *path, int timeout_ms, char *err,
		     size_t errlen)
{
	int fd = connect_unix_fd(path, timeout_ms);

	conn_init(c, path);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(-fd));
		return fd;
	}
	c->rfd = c->wfd = fd;
	c->timeout_ms = timeout_ms;
	return read_greeting(c, err, errlen);
}

static int connect_tcp(struct rpc_conn *c, const struct rpc_uri *u, int timeout_ms, char *err,
		       size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int gai, fd = -1, r = -EHOSTUNREACH, one = 1;

	gai = getaddrinfo(u->host, u->port, &hints, &res);
	if (gai) {
		snprintf(err, errlen, "cannot connect to %s: %s", c->peer, gai_strerror(gai));
		return -EHOSTUNREACH;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			continue;
		}
		r = fd_connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		if (!r)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", c->peer, strerror(-r));
		return r;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rfd = c->wfd = fd;
	return 0;
}

/* ssh [-p PORT] [-l USER] -T -o BatchMode=yes HOST -- ferry bridge PATH */
static int connect_ssh(struct rpc_conn *c, const struct rpc_uri *u, char *err, size_t errlen)
{
	const char *prog = getenv("FERRY_SSH") && getenv("FERRY_SSH")[0] ? getenv("FERRY_SSH") : "ssh";
	const char *argv[16];
	int to[2], from[2], n = 0;
	pid_t pid;

	argv[n++] = prog;
	if (u->port[0]) {
		argv[n++] = "-p";
		argv[n++] = u->port;
	}
	if (u->user[0]) {
		argv[n++] = "-l";
		argv[n++] = u->user;
	}
	argv[n++] = "-T";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	argv[n++] = u->host;
	argv[n++] = "--";
	argv[n++] = "ferry";
	argv[n++] = "bridge";
	argv[n++] = u->path;
	argv[n] = NULL;
	if (pipe2(to, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(from, O_CLOEXEC) < 0) {
		close(to[0]);
		close(to[1]);
		return -errno;
	}
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		dup2(to[0], 0);
		dup2(from[1], 1);
		/* ferryd ignores or blocks these; ssh must not inherit that */
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(prog, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	close(to[0]);
	close(from[1]);
	if (pid < 0) {
		snprintf(err, errlen, "cannot start %s: %s", prog, strerror(errno));
		close(to[1]);
		close(from[0]);
		return -EAGAIN;
	}
	c->child = pid;
	c->rfd = from[0];
	c->wfd = to[1];
	return 0;
}

int rpc_connect(struct rpc_conn *c, const struct rpc_uri *u, int timeout_ms, char *err,
		size_t errlen)
{
	char peer[400];
	int r;

	switch (u->transport) {
	case RPC_UNIX:
		return rpc_connect_unix(c, u->path, timeout_ms, err, errlen);
	case RPC_TCP:
		snprintf(peer, sizeof(peer), "ferry+tcp://%s%s%s:%s/", strchr(u->host, ':') ? "[" : "",
			 u->host, strchr(u->host, ':') ? "]" : "", u->port);
		conn_init(c, peer);
		r = connect_tcp(c, u, timeout_ms, err, errlen);
		break;
	case RPC_SSH:
		snprintf(peer, sizeof(peer), "ferry+ssh://%s/", u->host);
		conn_init(c, peer);
		r = connect_ssh(c, u, err, errlen);
		break;
	default:
		return -EINVAL;
	}
	if (r)
		return r;
	c->timeout_ms = timeout_ms;
	return read_greeting(c, err, errlen);
}

/* ---- lines ---- */

static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	return r < 0 ? -errno : 0;
}

static int conn_write_all(struct rpc_conn *c, const char *p, size_t len)
{
	while (len) {
		ssize_t n;
		int r = wait_fd(c->wfd, POLLOUT, c->timeout_ms);

		if (r)
			return r;
		n = c->rfd == c->wfd ? send(c->wfd, p, len, MSG_NOSIGNAL) : write(c->wfd, p, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int rpc_send(struct rpc_conn *c, json_object *obj)
{
	const char *s;
	char *line;
	size_t n;
	int r;

	if (c->wfd < 0)
		return -ENOTCONN;
	s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
	n = strlen(s);
	line = malloc(n + 1);
	if (!line)
		return -ENOMEM;
	memcpy(line, s, n);
	line[n] = '\n';
	r = conn_write_all(c, line, n + 1);
	free(line);
	return r;
}

/* Reads more bytes into the buffer; 0, -ENODATA at the end, -errno. */
static int fill(struct rpc_conn *c)
{
	ssize_t n;
	int r;

	if (c->rlen == c->rcap) {
		size_t cap = c->rcap ? c->rcap * 2 : 4096;
		char *p;

		if (cap > RPC_LINE_MAX + 4096)
			return -EPROTO;
		p = realloc(c->rbuf, cap);
		if (!p)
			return -ENOMEM;
		c->rbuf = p;
		c->rcap = cap;
	}
	r = wait_fd(c->rfd, POLLIN, c->timeout_ms);
	if (r)
		return r;
	do
		n = read(c->rfd, c->rbuf + c->rlen, c->rcap - c->rlen);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ENODATA;
	c->rlen += (size_t)n;
	return 0;
}

int rpc_recv(struct rpc_conn *c, json_object **obj)
{
	char *nl;
	int r;

	*obj = NULL;
	if (c->rfd < 0)
		return -ENOTCONN;
	while (!(nl = c->rlen ? memchr(c->rbuf, '\n', c->rlen) : NULL)) {
		if (c->rlen > RPC_LINE_MAX) {
			rpc_close(c);
			return -EPROTO;
		}
		r = fill(c);
		if (r == -EPROTO)
			rpc_close(c);
		if (r)
			return r;
	}
	{
		size_t len = (size_t)(nl - c->rbuf);
		json_tokener *tok = json_tokener_new();
		json_object *o = NULL;

		if (tok) {
			o = json_tokener_parse_ex(tok, c->rbuf, (int)len);
			if (json_tokener_get_error(tok) != json_tokener_success ||
			    tok->char_offset != (int)len) {
				json_object_put(o);
				o = NULL;
			}
			json_tokener_free(tok);
		}
		memmove(c->rbuf, nl + 1, c->rlen - len - 1);
		c->rlen -= len + 1;
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			return -EPROTO;
		}
		*obj = o;
	}
	return 0;
}

int rpc_call(struct rpc_conn *c, const char *cmd, json_object *args, json_object **ret,
	     rpc_event_fn on_event, void *opaque, char *err, size_t errlen, char *err_class)
{
	json_object *req = json_object_new_object(), *reply, *v, *e;
	int r;

	if (ret)
		*ret = NULL;
	if (err_class)
		err_class[0] = 0;
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", args);
	r = rpc_send(c, req);
	json_object_put(req);
	if (r) {
		snprintf(err, errlen, "%s: %s", c->peer, strerror(-r));
		return r;
	}
	for (;;) {
		r = rpc_recv(c, &reply);
		if (r) {
			snprintf(err, errlen, "%s: %s", c->peer,
				 r == -ENODATA ? "connection closed" :
				 r == -ETIMEDOUT ? "timed out" :
				 r == -EPROTO ? "malformed reply" : strerror(-r));
			return r;
		}
		if (json_object_object_get_ex(reply, "event", NULL)) {
			if (on_event)
				on_event(reply, opaque);
			json_object_put(reply);
			continue;
		}
		break;
	}
	if (json_object_object_get_ex(reply, "return", &v)) {
		if (ret)
			*ret = json_object_get(v);
		json_object_put(reply);
		return 0;
	}
	if (json_object_object_get_ex(reply, "error", &e) && json_object_is_type(e, json_type_object)) {
		snprintf(err, errlen, "%s", json_object_object_get_ex(e, "desc", &v) ?
			 json_object_get_string(v) : "unknown error");
		if (err_class)
			snprintf(err_class, 32, "%s", json_object_object_get_ex(e, "class", &v) ?
				 json_object_get_string(v) : "GenericError");
		json_object_put(reply);
		return 1;
	}
	json_object_put(reply);
	snprintf(err, errlen, "%s: malformed reply", c->peer);
	return -EPROTO;
}

size_t rpc_take_buffered(struct rpc_conn *c, char *out, size_t cap)
{
	size_t n = c->rlen < cap ? c->rlen : cap;

	if (!n)
		return 0;
	memcpy(out, c->rbuf, n);
	memmove(c->rbuf, c->rbuf + n, c->rlen - n);
	c->rlen -= n;
	return n;
}

void rpc_close(struct rpc_conn *c)
{
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0 && c->wfd != c->rfd)
		close(c->wfd);
	c->rfd = c->wfd = -1;
	if (c->child > 0) {
		int status;

		for (int i = 0; i < 100; i++) {
			pid_t p = waitpid(c->child, &status, WNOHANG);

			if (p == c->child || (p < 0 && errno == ECHILD))
				break;
			usleep(10000);
			if (i == 99) {
				kill(c->child, SIGKILL);
				waitpid(c->child, &status, 0);
			}
		}
		c->child = 0;
	}
	free(c->rbuf);
	c->rbuf = NULL;
	c->rlen = c->rcap = 0;
	json_object_put(c->greeting);
	c->greeting = NULL;
}
