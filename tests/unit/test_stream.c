/* The stream format (docs/stream-format.md): CRC32C, the header, records
 * written and read back through a pipe-free temporary file, and every kind
 * of damage a reader must refuse with a message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/crc32c.h"
#include "common/util.h"
#include "migration/stream.h"

static void test_crc32c_vectors(void **state)
{
	uint8_t zeros[32] = { 0 }, ones[32];

	(void)state;
	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 appendix B.4 and the classic check value. */
	assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aau);
	assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43u);
	assert_int_equal(crc32c(0, NULL, 0), 0);
	/* Pieces give the same result as the whole, at any split. */
	for (size_t i = 0; i <= 9; i++)
		assert_int_equal(crc32c(crc32c(0, "123456789", i), "123456789" + i, 9 - i),
				 0xe3069283u);
}

/* A temporary file holding what a writer produced. */
static int tmpfile_fd(void)
{
	char path[] = "/tmp/ferry-stream-test-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

static size_t write_sample(int fd)
{
	struct stream_writer w;
	uint8_t big[5000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	assert_int_equal(stream_writer_start(&w, fd), 0);
	assert_int_equal(stream_write_record(&w, REC_VM_INFO, "abc", 3), 0);
	assert_int_equal(stream_write_record(&w, REC_RAM, big, sizeof(big)), 0);
	assert_int_equal(stream_write_record(&w, REC_END, NULL, 0), 0);
	/* 16 header + (8 + 8 + 8) + (8 + 5000 + 8) + (8 + 0 + 8) */
	assert_int_equal(w.offset, 16 + 24 + 5016 + 16);
	return (size_t)w.offset;
}

static void test_roundtrip(void **state)
{
	struct stream_reader r;
	const uint8_t *p;
	uint32_t type;
	size_t len;
	int fd = tmpfile_fd();

	(void)state;
	write_sample(fd);
	lseek(fd, 0, SEEK_SET);
	assert_int_equal(stream_reader_start(&r, fd), 0);
	assert_int_equal(stream_read_record(&r, &type, &p, &len), 0);
	assert_int_equal(type, REC_VM_INFO);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "abc", 3);
	assert_int_equal(stream_read_record(&r, &type, &p, &len), 0);
	assert_int_equal(type, REC_RAM);
	assert_int_equal(len, 5000);
	assert_int_equal(p[4999], (uint8_t)(4999 * 7));
	assert_int_equal(stream_read_record(&r, &type, &p, &len), 0);
	assert_int_equal(type, REC_END);
	assert_int_equal(len, 0);
	assert_true(stream_reader_at_eof(&r));
	stream_reader_free(&r);
	close(fd);
}

/* Reads the whole sample after damage; returns the first error. */
static int read_damaged(const uint8_t *data, size_t size, char *msg, size_t msglen)
{
	struct stream_reader r;
	const uint8_t *p;
	uint32_t type = 0;
	size_t len;
	int fd = tmpfile_fd(), ret;

	assert_int_equal(write(fd, data, size), (ssize_t)size);
	lseek(fd, 0, SEEK_SET);
	ret = stream_reader_start(&r, fd);
	while (ret == 0 && type != REC_END)
		ret = stream_read_record(&r, &type, &p, &len);
	snprintf(msg, msglen, "%s", r.error);
	stream_reader_free(&r);
	close(fd);
	return ret;
}

static uint8_t *sample(size_t *size)
{
	int fd = tmpfile_fd();
	uint8_t *data;

	*size = write_sample(fd);
	data = malloc(*size);
	assert_non_null(data);
	assert_int_equal(pread(fd, data, *size, 0), (ssize_t)*size);
	close(fd);
	return data;
}

static void test_every_flipped_byte_is_refused(void **state)
{
	size_t size;
	uint8_t *data = sample(&size);
	char msg[256];

	(void)state;
	for (size_t off = 0; off < size; off++) {
		data[off] ^= 0x20;
		if (read_damaged(data, size, msg, sizeof(msg)) == 0)
			fail_msg("byte %zu flipped: the stream was accepted", off);
		assert_true(msg[0]);
		data[off] ^= 0x20;
	}
	free(data);
}

static void test_every_truncation_is_refused(void **state)
{
	size_t size;
	uint8_t *data = sample(&size);
	char msg[256];

	(void)state;
	for (size_t len = 0; len < size; len++) {
		if (read_damaged(data, len, msg, sizeof(msg)) == 0)
			fail_msg("truncated to %zu: the stream was accepted", len);
		assert_true(msg[0]);
	}
	free(data);
}

static void test_header_messages(void **state)
{
	size_t size;
	uint8_t *data = sample(&size);
	char msg[256];

	(void)state;
	data[0] = 'X';
	assert_int_equal(read_damaged(data, size, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "magic"));
	data[0] = 'F';
	put_le32(data + 8, 2);
	assert_int_equal(read_damaged(data, size, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "version 2"));
	put_le32(data + 8, 1);
	put_le32(data + 16 + 4, STREAM_MAX_RECORD + 1); /* the first record's length */
	assert_int_equal(read_damaged(data, size, msg, sizeof(msg)), -EINVAL);
	assert_non_null(strstr(msg, "limit"));
	free(data);
}

static void test_record_too_big_to_write(void **state)
{
	struct stream_writer w = { .fd = -1 };
	struct iovec iov = { NULL, (size_t)STREAM_MAX_RECORD + 1 };

	(void)state;
	assert_int_equal(stream_write_recordv(&w, REC_RAM, &iov, 1), -E2BIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_every_flipped_byte_is_refused),
		cmocka_unit_test(test_every_truncation_is_refused),
		cmocka_unit_test(test_header_messages),
		cmocka_unit_test(test_record_too_big_to_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
