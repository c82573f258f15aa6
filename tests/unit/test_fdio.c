/* Unit tests for src/common/fdio.h: whole writes and reads across a pipe
 * that moves less than asked at a time, and connect with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fdio.h"

#define BIG (1u << 20) /* more than a pipe holds: writes and reads come short */

struct reader {
	int fd;
	uint8_t *buf;
	ssize_t got;
};

static void *read_side(void *arg)
{
	struct reader *r = arg;

	r->got = fd_read_full(r->fd, r->buf, BIG + 100);
	return NULL;
}

static void test_write_read_whole(void **state)
{
	uint8_t *out = malloc(BIG), *in = malloc(BIG + 100);
	struct reader r = { .buf = in };
	pthread_t t;
	int p[2];

	(void)state;
	assert_non_null(out);
	assert_non_null(in);
	for (uint32_t i = 0; i < BIG; i++)
		out[i] = (uint8_t)(i * 7 + (i >> 9));
	assert_int_equal(pipe(p), 0);
	r.fd = p[0];
	assert_int_equal(pthread_create(&t, NULL, read_side, &r), 0);
	assert_int_equal(fd_write_all(p[1], out, BIG), 0);
	close(p[1]); /* end of file: the reader gets what was written, no more */
	pthread_join(t, NULL);
	assert_int_equal(r.got, BIG);
	assert_memory_equal(in, out, BIG);
	close(p[0]);
	/* Errors come back as -errno. */
	assert_int_equal(fd_write_all(p[1], out, 1), -EBADF);
	assert_int_equal(fd_read_full(p[0], in, 1), -EBADF);
	free(out);
	free(in);
}

static void test_connect_timeout(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/ferry-fdio-XXXXXX";
	int l, c, flags;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(c >= 0);
	flags = fcntl(c, F_GETFL);
	assert_int_equal(fd_connect_timeout(c, (struct sockaddr *)&sa, sizeof(sa), 1000), -ENOENT);
	assert_int_equal(fcntl(c, F_GETFL), flags);
	close(c);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 4), 0);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(fd_connect_timeout(c, (struct sockaddr *)&sa, sizeof(sa), 1000), 0);
	assert_int_equal(fcntl(c, F_GETFL), flags); /* blocking again */
	close(c);
	close(l);
	unlink(sa.sun_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read_whole),
		cmocka_unit_test(test_connect_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
