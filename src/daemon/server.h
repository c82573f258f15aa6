/* ferryd's listeners and client threads. */
#ifndef FERRY_DAEMON_SERVER_H
#define FERRY_DAEMON_SERVER_H

#include <stddef.h>

#include "daemon/commands.h"

/* A UNIX listening socket at path, mode 0600 (its directory created if
 * missing). Returns the fd or -errno with err. */
int server_listen_unix(const char *path, char *err, size_t errlen);
/* A TCP listening socket on host:port (host "" = any). */
int server_listen_tcp(const char *host, const char *port, char *err, size_t errlen);

/* Accepts clients (a thread each) until stop_fd is readable. tcp_fd may be -1. */
int server_run(struct daemon *d, int unix_fd, int tcp_fd, int stop_fd);

#endif
