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

/* A socket gets send(MSG_DONTWAIT): non-blocking without touching the
 * file status flags, which stdout shares with the parent (a terminal). */
static bool fd_is_socket(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

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
		c->out_sock = fd_is_socket(STDOUT_FILENO);
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
	c->out_blocked = false;
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

/* One attempt at sending, without blocking: the count taken, 0 when the
 * reader is not ready for more, or -errno. A pipe, FIFO or terminal is
 * not made O_NONBLOCK (stdout is shared with whoever started us): poll
 * says whether it takes a write now, and a write of at most PIPE_BUF
 * after POLLOUT does not block on a pipe. A regular file always polls
 * writable. */
static ssize_t chardev_send(struct chardev *c, const uint8_t *data, size_t len)
{
	struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
	ssize_t n;

	if (c->out_sock) {
		n = send(c->out_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} else {
		n = poll(&p, 1, 0);
		if (n > 0)
			n = write(c->out_fd, data, MIN(len, (size_t)PIPE_BUF));
	}
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	return n;
}

/* Output that cannot be sent at all (the reader went away, the disk is
 * full): discarded, so that the guest never waits for it. A UNIX client
 * that failed is dropped: the next one starts afresh. */
static void chardev_discard(struct chardev *c, int err, size_t len)
{
	if (c->kind == CHARDEV_UNIX) {
		chardev_drop_client(c);
		return;
	}
	if (!c->dropped)
		log_warn("serial: cannot write the console output (%s); dropping it",
			 strerror(err));
	c->dropped += len;
}

size_t chardev_write(struct chardev *c, const uint8_t *data, size_t len)
{
	size_t done = 0;

	while (done < len && c->out_fd >= 0 && !c->out_blocked) {
		ssize_t n = chardev_send(c, data + done, len - done);

		if (n == -EINTR)
			continue;
		if (n < 0) {
			chardev_discard(c, (int)-n, len - done);
			return len;
		}
		/* A slow reader holds the output back (the UART keeps it),
		 * rather than losing it or stalling the vCPU. */
		if (n == 0)
			c->out_blocked = true;
		done += (size_t)n;
	}
	return c->out_fd < 0 ? len : done;
}

int chardev_out_fd(const struct chardev *c)
{
	return c->out_blocked ? c->out_fd : -1;
}

void chardev_out_retry(struct chardev *c)
{
	c->out_blocked = false;
}

void chardev_out_wait(struct chardev *c, int timeout_ms)
{
	struct pollfd p = { .fd = chardev_out_fd(c), .events = POLLOUT };

	if (p.fd >= 0 && timeout_ms > 0)
		(void)poll(&p, 1, timeout_ms); /* EINTR: the caller's deadline decides */
	chardev_out_retry(c);
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

		if (fd >= 0) {
			c->in_fd = c->out_fd = fd;
			c->out_sock = true;
		}
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
