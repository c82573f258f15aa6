/* Whole reads, whole writes and a connect with a deadline, on blocking
 * file descriptors: the loops every caller would otherwise write again
 * (EINTR, short counts, a non-blocking connect polled for its end). */
#ifndef FERRY_COMMON_FDIO_H
#define FERRY_COMMON_FDIO_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Writes all len bytes (retrying after EINTR and short writes). Returns 0,
 * -errno, or -EIO when the fd takes nothing. MSG_NOSIGNAL is not used:
 * callers that write to sockets ignore SIGPIPE. */
int fd_write_all(int fd, const void *p, size_t len);

/* Reads until len bytes or end of file. Returns how many it read (less
 * than len only at end of file) or -errno. */
ssize_t fd_read_full(int fd, void *p, size_t len);

/* connect() that gives up after timeout_ms (-1: never): 0, -ETIMEDOUT or
 * -errno. The fd's flags are as they were afterwards. */
int fd_connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms);

#endif
