#include "migration/channel_sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/fdio.h"
#include "common/util.h"

int mig_uri_parse(const char *uri, struct mig_uri *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (!strncmp(uri, "unix:", 5)) {
		const char *path = uri + 5;

		if (!*path || strlen(path) >= sizeof(u->path)) {
			snprintf(err, errlen, "'%s': a UNIX socket path of 1 to %zu bytes is needed",
				 uri, sizeof(u->path) - 1);
			return -1;
		}
		u->kind = MIG_URI_UNIX;
		strcpy(u->path, path);
		return 0;
	}
	if (!strncmp(uri, "tcp:", 4)) {
		const char *h = uri + 4, *colon;
		size_t hlen;
		uint64_t port;

		if (*h == '[') {
			const char *close = strchr(h, ']');

			if (!close || close[1] != ':')
				goto bad_tcp;
			h++;
			hlen = (size_t)(close - h);
			colon = close + 1;
		} else {
			colon = strrchr(h, ':');
			if (!colon)
				goto bad_tcp;
			hlen = (size_t)(colon - h);
			if (memchr(h, ':', hlen))
				goto bad_tcp; /* a bare IPv6 address needs brackets */
		}
		if (hlen == 0 || hlen >= sizeof(u->host) || parse_u64(colon + 1, &port) ||
		    port == 0 || port > 65535)
			goto bad_tcp;
		u->kind = MIG_URI_TCP;
		memcpy(u->host, h, hlen);
		snprintf(u->port, sizeof(u->port), "%u", (unsigned)port);
		return 0;
bad_tcp:
		snprintf(err, errlen, "'%s': expected tcp:HOST:PORT (IPv6: tcp:[ADDR]:PORT, "
			 "PORT 1-65535)", uri);
		return -1;
	}
	snprintf(err, errlen, "'%s': unknown migration URI (tcp:HOST:PORT or unix:PATH)", uri);
	return -1;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A send buffer big enough to hold a few whole RAM records: the sender
 * goes on while the receiver writes guest RAM, instead of the two taking
 * turns (root may exceed the system's default limit). The receive buffer
 * (TCP) stays small: data waiting there is invisible to the sender's
 * SIOCOUTQ, and would be in flight at the switch-over. */
static void set_buffers(int fd, bool sender)
{
	int snd = 16 << 20, rcv = 2 << 20;

	if (sender) {
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
	} else if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	}
}

void mig_set_timeouts(int fd, int send_ms, int recv_ms)
{
	struct timeval s = { send_ms / 1000, (send_ms % 1000) * 1000 };
	struct timeval r = { recv_ms / 1000, (recv_ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &s, sizeof(s));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &r, sizeof(r));
}

int mig_connect(const struct mig_uri *u, int timeout_ms, char *err, size_t errlen)
{
	int fd = -1, ret = -EINVAL;

	if (u->kind == MIG_URI_UNIX) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		strcpy(sa.sun_path, u->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || (ret = fd_connect_timeout(fd, (struct sockaddr *)&sa, sizeof(sa),
						     timeout_ms))) {
			if (fd < 0)
				ret = -errno;
			snprintf(err, errlen, "connecting to unix:%s: %s", u->path, strerror(-ret));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		set_buffers(fd, true);
		return fd;
	}

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int gai = getaddrinfo(u->host, u->port, &hints, &res);

	if (gai) {
		snprintf(err, errlen, "tcp:%s:%s: %s", u->host, u->port, gai_strerror(gai));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			ret = -errno;
			continue;
		}
		ret = fd_connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms);
		if (ret == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "connecting to tcp:%s:%s: %s", u->host, u->port,
			 strerror(-ret));
		return -1;
	}
	set_nodelay(fd);
	set_buffers(fd, true);
	return fd;
}

int mig_listen(const struct mig_uri *u, char *err, size_t errlen)
{
	int fd, one = 1;

	if (u->kind == MIG_URI_UNIX) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		strcpy(sa.sun_path, u->path);
		unlink_stale_socket(u->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
			snprintf(err, errlen, "listening on unix:%s: %s", u->path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		return fd;
	}

	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	int gai = getaddrinfo(u->host, u->port, &hints, &res);

	if (gai) {
		snprintf(err, errlen, "tcp:%s:%s: %s", u->host, u->port, gai_strerror(gai));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		snprintf(err, errlen, "listening on tcp:%s:%s: %s", u->host, u->port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int mig_accept(int listen_fd, char *peer, size_t peerlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;

	do
		fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		snprintf(err, errlen, "accept: %s", strerror(errno));
		return -1;
	}
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
		char host[INET6_ADDRSTRLEN] = "?";
		unsigned port;

		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
			port = ntohs(in->sin_port);
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
			port = ntohs(in6->sin6_port);
		}
		snprintf(peer, peerlen, "%s:%u", host, port);
		set_nodelay(fd);
	} else {
		snprintf(peer, peerlen, "a local client");
	}
	set_buffers(fd, false);
	return fd;
}
