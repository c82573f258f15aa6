/* The host side of a serial port: stdio, a file, or a UNIX socket that one
 * client at a time can attach to (output is dropped while none is, as with
 * QEMU's "server,nowait"). Writes come from vCPU threads under the VM's I/O
 * lock; the main loop polls chardev_poll_fd() and calls chardev_ready(). */
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
	bool stalled;  /* the reader of out_fd stopped reading: output is dropped */
	uint64_t dropped; /* bytes dropped so far */
};

/* Opens spec: "stdio", "file:PATH", "unix:PATH" or "null"; a file is
 * truncated unless append is set. Returns 0 or -errno with one error line
 * logged. */
int chardev_open(struct chardev *c, const char *spec, bool append);
void chardev_close(struct chardev *c);

/* Sends guest output. Never blocks for long (it runs on a vCPU thread under
 * the VM's I/O lock): a reader that stops reading loses output, as with a
 * UART without flow control, rather than stalling the VM. */
void chardev_write(struct chardev *c, const uint8_t *data, size_t len);

/* The fd to poll for input or a connecting client, or -1. */
int chardev_poll_fd(const struct chardev *c);

/* Called when chardev_poll_fd() is readable: accepts a client, or reads up
 * to cap bytes of input into buf. Returns the byte count (0 when there was
 * nothing for the guest). Input at EOF stops being polled. */
size_t chardev_ready(struct chardev *c, uint8_t *buf, size_t cap);

#endif
