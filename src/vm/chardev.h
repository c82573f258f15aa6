/* The host side of a serial port: stdio, a file, or a UNIX socket that one
 * client at a time can attach to (output is dropped while none is, as with
 * QEMU's "server,nowait"). Writes come from vCPU threads and the main loop
 * under the VM's I/O lock and never block: a reader that does not keep up
 * makes chardev_write() take less, and the UART holds the rest (flow
 * control) until chardev_out_fd() polls writable. The main loop polls
 * chardev_poll_fd() for input and calls chardev_ready(). */
#ifndef FERRY_VM_CHARDEV_H
#define FERRY_VM_CHARDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum chardev_kind { CHARDEV_STDIO, CHARDEV_FILE, CHARDEV_UNIX, CHARDEV_NULL };

struct chardev {
	enum chardev_kind kind;
	int out_fd;    /* where guest output goes; -1 = dropped */
	int in_fd;     /* where guest input comes from; -1 = none */
	int listen_fd; /* UNIX: the listening socket */
	char *path;    /* FILE/UNIX path */
	bool out_sock;    /* out_fd is a socket: send(MSG_DONTWAIT) */
	bool out_blocked; /* out_fd took less than it was given: wait for POLLOUT */
	uint64_t dropped; /* bytes discarded because out_fd failed */
};

/* Opens spec: "stdio", "file:PATH", "unix:PATH" or "null"; a file is
 * truncated unless append is set. Returns 0 or -errno with one error line
 * logged. */
int chardev_open(struct chardev *c, const char *spec, bool append);
void chardev_close(struct chardev *c);

/* Sends guest output without blocking (it runs on a vCPU thread under the
 * VM's I/O lock). Returns how many bytes of data were taken: all of them
 * when they went out, or when there is nowhere to send them (null, no
 * client, a client that left, a write error: discarded); fewer when the
 * reader is slow (a full pipe or socket buffer). Then chardev_out_fd()
 * names the fd to wait for, and until chardev_out_retry() every call takes
 * nothing, without a system call. */
size_t chardev_write(struct chardev *c, const uint8_t *data, size_t len);

/* The fd to poll for POLLOUT after chardev_write() took less than it was
 * given, or -1 when output is not held up. */
int chardev_out_fd(const struct chardev *c);

/* The reader may have caught up (chardev_out_fd() polled writable, or the
 * caller wants to try anyway): the next chardev_write() tries again. */
void chardev_out_retry(struct chardev *c);

/* Waits up to timeout_ms for a held-up chardev_out_fd() to poll writable,
 * then makes the next chardev_write() try again. For the end of a VM
 * only: it blocks. */
void chardev_out_wait(struct chardev *c, int timeout_ms);

/* The fd to poll for input or a connecting client, or -1. */
int chardev_poll_fd(const struct chardev *c);

/* Called when chardev_poll_fd() is readable: accepts a client, or reads up
 * to cap bytes of input into buf. Returns the byte count (0 when there was
 * nothing for the guest). Input at EOF stops being polled. */
size_t chardev_ready(struct chardev *c, uint8_t *buf, size_t cap);

#endif
