#include "vm/chardev.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

static int chardev_unix_listen(struct chardev *c, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("serial: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink_stale_socket(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 1) < 0) {
		int err = errno;

		log_error("serial: cannot listen on %s: %s", path, strerror(err));
		close(fd);
		return -err;
	}
	c->listen_fd = fd;
	return 0;
}

int chardev_open(struct chardev *c, const char *spec, bool append)
{
	*c = (struct chardev){ .out_fd = -1, .in_fd = -1, .listen_fd = -1 };
	if (!strcmp(spec, "stdio")) {
		c->kind = CHARDEV_STDIO;
		c->out_fd = STDOUT_FILENO;
		c->in_fd = STDIN_FILENO;
		return 0;
	}
	if (!strcmp(spec, "null")) {
		c->kind = CHARDEV_NULL;
		return 0;
	}
	if (!strncmp(spec, "file:", 5) && spec[5]) {
		c->kind = CHARDEV_FILE;
		c->path = strdup(spec + 5);
		c->out_fd = open(spec + 5, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC),
				 0600);
		if (c->out_fd < 0) {
			int err = errno;

			log_error("serial: cannot open %s: %s", spec + 5, strerror(err));
			chardev_close(c);
			return -err;
		}
		return 0;
	}
	if (!strncmp(spec, "unix:", 5) && spec[5]) {
		int ret;

		c->kind = CHARDEV_UNIX;
		c->path = strdup(spec + 5);
		ret = chardev_unix_listen(c, spec + 5);
		if (ret)
			chardev_close(c);
		return ret;
	}
	log_error("--serial: expected stdio, file:PATH, unix:PATH or null, not '%s'", spec);
	return -EINVAL;
}

static void chardev_drop_client(struct chardev *c)
{
	if (c->kind != CHARDEV_UNIX || c->in_fd < 0)
		return;
	close(c->in_fd);
	c->in_fd = c->out_fd = -1;
}

void chardev_close(struct chardev *c)
{
	chardev_drop_client(c);
	if (c->kind == CHARDEV_FILE && c->out_fd >= 0)
		close(c->out_fd);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->path);
	}
	free(c->path);
	*c = (struct chardev){ .kind = CHARDEV_NULL, .out_fd = -1, .in_fd = -1, .listen_fd = -1 };
}

/* Waits briefly for out_fd to take data: at most 100 ms, and not at all
 * while the reader is known to be stalled. True when a write will not
 * block (or will report an error). */
static bool chardev_writable(struct chardev *c)
{
	struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
	int n;

	do
		n = poll(&p, 1, c->stalled ? 0 : 100);
	while (n < 0 && errno == EINTR);
	c->stalled = n == 0;
	return n > 0;
}

static void chardev_drop(struct chardev *c, size_t len)
{
	if (!c->dropped)
		log_warn("serial: nobody reads the console output; dropping it");
	c->dropped += len;
}

void chardev_write(struct chardev *c, const uint8_t *data, size_t len)
{
	while (len && c->out_fd >= 0) {
		size_t chunk = MIN(len, (size_t)PIPE_BUF); /* never a partial pipe write */
		ssize_t n;

		if (c->kind == CHARDEV_UNIX) {
			n = send(c->out_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		} else {
			if (!chardev_writable(c)) {
				chardev_drop(c, len);
				return;
			}
			n = write(c->out_fd, data, chunk);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* A client that does not keep up loses output, like a
			 * UART without flow control; a dead one is dropped. */
			if (c->kind == CHARDEV_UNIX && n < 0 && errno != EAGAIN)
				chardev_drop_client(c);
			return;
		}
		data += n;
		len -= (size_t)n;
	}
}

int chardev_poll_fd(const struct chardev *c)
{
	if (c->kind == CHARDEV_UNIX && c->in_fd < 0)
		return c->listen_fd;
	return c->in_fd;
}

size_t chardev_ready(struct chardev *c, uint8_t *buf, size_t cap)
{
	ssize_t n;

	if (c->kind == CHARDEV_UNIX && c->in_fd < 0) {
		int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd >= 0)
			c->in_fd = c->out_fd = fd;
		return 0;
	}
	if (c->in_fd < 0 || cap == 0)
		return 0;
	n = read(c->in_fd, buf, cap);
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0) {
		if (c->kind == CHARDEV_UNIX)
			chardev_drop_client(c);
		else
			c->in_fd = -1; /* stdin at EOF: stop polling it */
		return 0;
	}
	return (size_t)n;
}
