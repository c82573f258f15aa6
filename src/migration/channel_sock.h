/* Migration channels over sockets: "tcp:HOST:PORT" (HOST a name, an IPv4
 * address or an IPv6 address in brackets) and "unix:PATH", as QEMU spells
 * them. Both ends get a connected stream socket with TCP_NODELAY (the
 * hand-over's small messages must not wait for Nagle). */
#ifndef FERRY_MIGRATION_CHANNEL_SOCK_H
#define FERRY_MIGRATION_CHANNEL_SOCK_H

#include <stddef.h>

/* Every read or write of a migration gives up after this long without
 * progress (a peer that vanished without closing the connection). */
#define MIG_IO_TIMEOUT_MS 60000

struct mig_uri {
	enum { MIG_URI_TCP, MIG_URI_UNIX } kind;
	char host[256];
	char port[16];
	char path[108];
};

/* Parses uri. Returns 0, or -1 with err saying what is wrong. */
int mig_uri_parse(const char *uri, struct mig_uri *u, char *err, size_t errlen);

/* Connects, giving up after timeout_ms. Returns the fd or -1 with err. */
int mig_connect(const struct mig_uri *u, int timeout_ms, char *err, size_t errlen);

/* Listens (replacing a stale UNIX socket). Returns the fd or -1 with err. */
int mig_listen(const struct mig_uri *u, char *err, size_t errlen);

/* Accepts one connection (blocking); describes the peer in peer. Returns
 * the fd or -1 with err. */
int mig_accept(int listen_fd, char *peer, size_t peerlen, char *err, size_t errlen);

/* Sets send and receive timeouts on a connected socket (0: none). */
void mig_set_timeouts(int fd, int send_ms, int recv_ms);

#endif
