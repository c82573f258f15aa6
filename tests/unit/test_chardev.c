/* Unit tests for the serial port's host side (src/vm/chardev.c) with real
 * pipes and sockets, no KVM: a reader that does not keep up makes
 * chardev_write() take less and never block, names the fd to wait for, and
 * loses nothing; nowhere to send (null, no client, a reader gone) takes
 * everything. The last test puts the UART (src/devices/serial.c) in front
 * of it, as the VM does, with a guest that waits for THRE and a reader that
 * stalls and resumes: every byte arrives, in order. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/serial.h"
#include "vm/chardev.h"

struct fix {
	char dir[64];
	char path[96];
	struct chardev c;
	int rd; /* the reader's end */
};

static void fix_dir(struct fix *f, const char *name)
{
	strcpy(f->dir, "/tmp/ferry-chardev-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, name);
	f->rd = -1;
}

/* "file:" on a FIFO: a pipe whose reader the test holds (as a harness
 * reading ferry-vmm's stdout). The reader opens first (non-blocking), so
 * that chardev_open's O_WRONLY open does not wait for one. */
static void fix_fifo(struct fix *f)
{
	char spec[128];

	fix_dir(f, "fifo");
	assert_int_equal(mkfifo(f->path, 0600), 0);
	f->rd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	assert_true(f->rd >= 0);
	snprintf(spec, sizeof(spec), "file:%s", f->path);
	assert_int_equal(chardev_open(&f->c, spec, false), 0);
}

static void fix_free(struct fix *f)
{
	chardev_close(&f->c);
	if (f->rd >= 0)
		close(f->rd);
	unlink(f->path);
	rmdir(f->dir);
}

static size_t drain_reader(int fd, uint8_t *out, size_t cap)
{
	size_t n = 0;
	ssize_t r;

	while (n < cap && (r = read(fd, out + n, cap - n)) > 0)
		n += (size_t)r;
	return n;
}

static bool polls_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	return poll(&p, 1, 0) == 1;
}

/* Fills the pipe: at some point a write takes less, after which every
 * write takes nothing (no system call) until chardev_out_retry(); nothing
 * that was taken is lost. */
static void test_pipe_backpressure(void **state)
{
	static uint8_t got[1 << 20];
	uint8_t chunk[16];
	struct fix f;
	size_t sent = 0, n, total;
	uint64_t seq = 0;

	(void)state;
	fix_fifo(&f);
	assert_int_equal(chardev_out_fd(&f.c), -1);
	for (;;) {
		for (unsigned i = 0; i < sizeof(chunk); i++)
			chunk[i] = (uint8_t)(seq + i);
		n = chardev_write(&f.c, chunk, sizeof(chunk));
		sent += n;
		seq += n;
		if (n < sizeof(chunk))
			break;
		assert_true(sent < sizeof(got));
	}
	assert_true(sent >= 4096);
	assert_int_equal(chardev_out_fd(&f.c), f.c.out_fd);
	assert_int_equal(chardev_write(&f.c, chunk, sizeof(chunk)), 0);
	assert_int_equal(f.c.dropped, 0);
	/* The reader catches up: POLLOUT, a retry, and the rest goes out. */
	total = drain_reader(f.rd, got, sizeof(got));
	assert_true(polls_writable(chardev_out_fd(&f.c)));
	chardev_out_retry(&f.c);
	assert_int_equal(chardev_out_fd(&f.c), -1);
	for (unsigned i = 0; i < sizeof(chunk); i++)
		chunk[i] = (uint8_t)(seq + i);
	assert_int_equal(chardev_write(&f.c, chunk, sizeof(chunk)), sizeof(chunk));
	sent += sizeof(chunk);
	total += drain_reader(f.rd, got + total, sizeof(got) - total);
	assert_int_equal(total, sent);
	for (size_t i = 0; i < total; i++)
		if (got[i] != (uint8_t)i)
			fail_msg("byte %zu is %u, want %u", i, got[i], (unsigned)(uint8_t)i);
	fix_free(&f);
}

/* The reader went away: output is discarded (taken), not held. */
static void test_pipe_reader_gone(void **state)
{
	struct fix f;

	(void)state;
	fix_fifo(&f);
	close(f.rd);
	f.rd = -1;
	assert_int_equal(chardev_write(&f.c, (const uint8_t *)"lost", 4), 4);
	assert_int_equal(chardev_out_fd(&f.c), -1);
	assert_int_equal(f.c.dropped, 4);
	fix_free(&f);
}

static void test_null_takes_all(void **state)
{
	struct chardev c;

	(void)state;
	assert_int_equal(chardev_open(&c, "null", false), 0);
	assert_int_equal(chardev_write(&c, (const uint8_t *)"gone", 4), 4);
	assert_int_equal(chardev_out_fd(&c), -1);
	chardev_close(&c);
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* A UNIX socket: no client, output discarded; a client that does not read
 * holds output back; one that leaves is dropped and output discarded. */
static void test_unix_client(void **state)
{
	uint8_t chunk[16] = { 0 }, buf[4096];
	char spec[128];
	struct fix f;
	size_t n;

	(void)state;
	fix_dir(&f, "console.sock");
	snprintf(spec, sizeof(spec), "unix:%s", f.path);
	assert_int_equal(chardev_open(&f.c, spec, false), 0);
	assert_int_equal(chardev_write(&f.c, chunk, sizeof(chunk)), sizeof(chunk));
	f.rd = unix_connect(f.path);
	assert_int_equal(chardev_ready(&f.c, buf, sizeof(buf)), 0); /* accepts */
	assert_true(f.c.out_fd >= 0);
	while ((n = chardev_write(&f.c, chunk, sizeof(chunk))) == sizeof(chunk))
		;
	assert_int_equal(chardev_out_fd(&f.c), f.c.out_fd);
	assert_true(read(f.rd, buf, sizeof(buf)) > 0);
	assert_true(polls_writable(chardev_out_fd(&f.c)));
	chardev_out_retry(&f.c);
	assert_true(chardev_write(&f.c, chunk, sizeof(chunk)) > 0);
	/* The client leaves: the next write discards, the client is gone. */
	while (chardev_write(&f.c, chunk, sizeof(chunk)) == sizeof(chunk) && f.c.out_fd >= 0)
		;
	close(f.rd);
	f.rd = -1;
	chardev_out_retry(&f.c);
	assert_int_equal(chardev_write(&f.c, chunk, sizeof(chunk)), sizeof(chunk));
	assert_int_equal(f.c.out_fd, -1);
	assert_int_equal(chardev_out_fd(&f.c), -1);
	fix_free(&f);
}

/* --- the UART in front of it ---------------------------------------------- */

static size_t sink(void *ctx, const uint8_t *data, size_t len)
{
	return chardev_write(ctx, data, len);
}

static void no_irq(void *ctx, unsigned gsi, bool level)
{
	(void)ctx, (void)gsi, (void)level;
}

/* A guest as the test guest's console driver: waits for THRE, then fills
 * the FIFO. Returns the bytes it wrote (0 when THRE is clear). */
static size_t guest_write(struct serial *s, const uint8_t *data, size_t len)
{
	uint8_t v;
	size_t n = len < SERIAL_FIFO ? len : SERIAL_FIFO;

	serial_bus_ops.read(s, 5, &v, 1);
	if (!(v & 0x20))
		return 0;
	for (size_t i = 0; i < n; i++)
		serial_bus_ops.write(s, 0, &data[i], 1);
	return n;
}

/* The guest writes 256 KiB while the reader stalls now and then; the main
 * loop's part (POLLOUT, then a drain) runs when the guest finds THRE
 * clear. Every byte arrives, in order; nothing is dropped. */
static void test_uart_stall_and_resume(void **state)
{
	static uint8_t msg[1 << 18], got[1 << 18];
	struct serial s;
	struct fix f;
	size_t wrote = 0, total = 0;
	unsigned stalls = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + i / 251);
	fix_fifo(&f);
	serial_init(&s, (struct irq_line){ no_irq, NULL, 4 }, sink, &f.c);
	serial_bus_ops.write(&s, 2, &(uint8_t){ 0x07 }, 1); /* FIFO on */
	while (wrote < sizeof(msg)) {
		size_t n = guest_write(&s, msg + wrote, sizeof(msg) - wrote);

		wrote += n;
		if (n)
			continue;
		/* THRE clear: the console is held up, the bytes wait in the
		 * UART. The reader resumes; the main loop sees POLLOUT. */
		stalls++;
		assert_true(serial_tx_pending(&s) > 0);
		assert_int_equal(chardev_out_fd(&f.c), f.c.out_fd);
		total += drain_reader(f.rd, got + total, sizeof(got) - total);
		assert_true(polls_writable(chardev_out_fd(&f.c)));
		chardev_out_retry(&f.c);
		serial_tx_drain(&s);
	}
	chardev_out_retry(&f.c);
	while (serial_tx_drain(&s)) {
		total += drain_reader(f.rd, got + total, sizeof(got) - total);
		chardev_out_retry(&f.c);
	}
	total += drain_reader(f.rd, got + total, sizeof(got) - total);
	assert_true(stalls > 0);
	assert_int_equal(f.c.dropped, 0);
	assert_int_equal(total, sizeof(msg));
	assert_memory_equal(got, msg, sizeof(msg));
	fix_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe_backpressure),
		cmocka_unit_test(test_pipe_reader_gone),
		cmocka_unit_test(test_null_takes_all),
		cmocka_unit_test(test_unix_client),
		cmocka_unit_test(test_uart_stall_and_resume),
	};

	/* As in ferry-vmm: a reader gone is EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
