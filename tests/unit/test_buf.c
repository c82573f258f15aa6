/* Unit tests for src/common/buf.h (state writer and bounds-checked reader)
 * and src/common/util.h (parse_u64, range_within, file_read_all). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/util.h"

/* --- buf ---------------------------------------------------------------- */

static void test_buf_little_endian(void **state)
{
	static const uint8_t want[] = {
		0xab,
		0x34, 0x12,
		0x78, 0x56, 0x34, 0x12,
		0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
		'x', 'y', 'z',
	};
	struct buf b = { 0 };

	(void)state;
	buf_put_u8(&b, 0xab);
	buf_put_u16(&b, 0x1234);
	buf_put_u32(&b, 0x12345678);
	buf_put_u64(&b, 0x0123456789abcdefull);
	buf_put(&b, "xyz", 3);
	assert_int_equal(buf_finish(&b), 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	assert_true(b.cap >= b.len);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
}

static void test_buf_grows(void **state)
{
	struct buf b = { 0 };

	(void)state;
	for (unsigned i = 0; i < 100000; i++)
		buf_put_u32(&b, i);
	assert_int_equal(buf_finish(&b), 0);
	assert_int_equal(b.len, 400000);
	for (unsigned i = 0; i < 100000; i += 997)
		assert_int_equal(get_le32(b.data + 4 * i), i);
	buf_free(&b);
}

/* An empty append to an empty buffer: buf_put() calls
 * memcpy(NULL + 0, p, 0), undefined behaviour that UBSan reports. */
static void test_buf_empty_put(void **state)
{
	struct buf b = { 0 };

	(void)state;
	buf_put(&b, "", 0);
	assert_int_equal(buf_finish(&b), 0);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_buf_oom_is_sticky(void **state)
{
	struct buf b = { 0 };

	(void)state;
	buf_put_u8(&b, 1);
	/* What a failed realloc leaves: later appends are dropped. */
	b.oom = true;
	buf_put_u32(&b, 2);
	assert_int_equal(b.len, 1);
	assert_int_equal(buf_finish(&b), -ENOMEM);
	buf_free(&b);
	assert_false(b.oom);
}

/* --- reader --------------------------------------------------------------- */

static void test_reader_round_trip(void **state)
{
	struct buf b = { 0 };
	struct reader r;
	char s[4];

	(void)state;
	buf_put_u8(&b, 0xfe);
	buf_put_u16(&b, 0xbeef);
	buf_put_u32(&b, 0xdeadbeef);
	buf_put_u64(&b, UINT64_MAX - 1);
	buf_put(&b, "abcd", 4);
	reader_init(&r, b.data, b.len);
	assert_int_equal(reader_u8(&r), 0xfe);
	assert_int_equal(reader_u16(&r), 0xbeef);
	assert_int_equal(reader_u32(&r), 0xdeadbeef);
	assert_true(reader_u64(&r) == UINT64_MAX - 1);
	reader_get(&r, s, 4);
	assert_memory_equal(s, "abcd", 4);
	assert_false(r.short_read);
	assert_int_equal(reader_finish(&r), 0);
	buf_free(&b);
}

static void test_reader_truncated(void **state)
{
	static const uint8_t in[] = { 1, 2, 3 };
	struct reader r;

	(void)state;
	reader_init(&r, in, sizeof(in));
	assert_int_equal(reader_u16(&r), 0x0201);
	/* Two bytes wanted, one left: reads as zero and stays failed. */
	assert_int_equal(reader_u16(&r), 0);
	assert_true(r.short_read);
	assert_int_equal(reader_u8(&r), 0); /* even though one byte is left */
	assert_int_equal(reader_finish(&r), -EINVAL);
}

static void test_reader_trailing(void **state)
{
	static const uint8_t in[] = { 1, 2, 3 };
	struct reader r;

	(void)state;
	reader_init(&r, in, sizeof(in));
	assert_int_equal(reader_u16(&r), 0x0201);
	assert_false(r.short_read);
	assert_int_equal(reader_finish(&r), -EINVAL);
	assert_int_equal(reader_u8(&r), 3);
	assert_int_equal(reader_finish(&r), 0);
}

static void test_reader_past_end(void **state)
{
	static const uint8_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t out[4] = { 9, 9, 9, 9 };
	struct reader r;

	(void)state;
	reader_init(&r, in, sizeof(in));
	assert_int_equal(reader_u32(&r), 0x04030201);
	reader_get(&r, out, 0); /* an empty get at any in-bounds offset is fine */
	assert_false(r.short_read);
	assert_int_equal(reader_u16(&r), 0x0605);
	/* Four wanted, two left: nothing is consumed, out reads as zeros. */
	reader_get(&r, out, 4);
	assert_true(r.short_read);
	assert_memory_equal(out, ((uint8_t[4]){ 0 }), 4);
	assert_int_equal(r.off, 6);
	assert_int_equal(reader_finish(&r), -EINVAL);
}

static void test_reader_empty(void **state)
{
	struct reader r;

	(void)state;
	reader_init(&r, "", 0);
	assert_int_equal(reader_finish(&r), 0);
	assert_int_equal(reader_u8(&r), 0);
	assert_int_equal(reader_finish(&r), -EINVAL);
}

/* --- util ----------------------------------------------------------------- */

static void test_range_within(void **state)
{
	static const struct {
		uint64_t off, len, size;
		bool ok;
	} cases[] = {
		{ 0, 0, 0, true },
		{ 0, 10, 10, true },
		{ 10, 0, 10, true },
		{ 11, 0, 10, false },
		{ 5, 6, 10, false },
		{ 9, 1, 10, true },
		{ 1, UINT64_MAX, 10, false },
		{ UINT64_MAX, 1, UINT64_MAX, false },
		{ UINT64_MAX, 0, UINT64_MAX, true },
		{ 0, UINT64_MAX, UINT64_MAX, true },
		{ 2, UINT64_MAX - 1, UINT64_MAX, false },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		bool got = range_within(cases[i].off, cases[i].len, cases[i].size);

		if (got != cases[i].ok)
			fail_msg("range_within(%#llx, %#llx, %#llx) = %d", (unsigned long long)cases[i].off,
				 (unsigned long long)cases[i].len, (unsigned long long)cases[i].size, got);
	}
}

static void test_parse_u64(void **state)
{
	static const struct {
		const char *s;
		int ret;
		uint64_t v;
	} cases[] = {
		{ "0", 0, 0 },
		{ "42", 0, 42 },
		{ "007", 0, 7 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "99999999999999999999999", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 },
		{ " 1", -EINVAL, 0 },
		{ "1 ", -EINVAL, 0 },
		{ "1k", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
		{ "1.5", -EINVAL, 0 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		uint64_t v = 12345;
		int ret = parse_u64(cases[i].s, &v);

		if (ret != cases[i].ret)
			fail_msg("parse_u64(\"%s\") = %d, want %d", cases[i].s, ret, cases[i].ret);
		if (ret == 0 && v != cases[i].v)
			fail_msg("parse_u64(\"%s\") gave %llu", cases[i].s, (unsigned long long)v);
		if (ret != 0 && v != 12345)
			fail_msg("parse_u64(\"%s\") wrote *out on error", cases[i].s);
	}
	assert_int_equal(parse_u64(NULL, &(uint64_t){ 0 }), -EINVAL);
}

/* A temporary file holding n bytes of a pattern; returns its path. */
static char *tmpfile_with(size_t n)
{
	char *path = strdup("/tmp/ferry-test-buf-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)(i * 7);

		assert_int_equal(write(fd, &c, 1), 1);
	}
	close(fd);
	return path;
}

static void test_file_read_all(void **state)
{
	char *path = tmpfile_with(1000);
	uint8_t *data = NULL;
	size_t size = 0;

	(void)state;
	assert_int_equal(file_read_all(path, 1000, &data, &size), 0);
	assert_int_equal(size, 1000);
	for (size_t i = 0; i < size; i++)
		assert_int_equal(data[i], (uint8_t)(i * 7));
	free(data);
	data = NULL;
	assert_int_equal(file_read_all(path, 999, &data, &size), -EFBIG);
	assert_null(data);
	unlink(path);
	assert_int_equal(file_read_all(path, 1000, &data, &size), -ENOENT);
	free(path);
}

static void test_file_read_all_empty(void **state)
{
	char *path = tmpfile_with(0);
	uint8_t *data = NULL;
	size_t size = 99;

	(void)state;
	assert_int_equal(file_read_all(path, 0, &data, &size), 0);
	assert_int_equal(size, 0);
	assert_non_null(data);
	free(data);
	unlink(path);
	free(path);
}

static void test_file_read_all_not_regular(void **state)
{
	uint8_t *data = NULL;
	size_t size = 0;

	(void)state;
	assert_int_equal(file_read_all("/tmp", 1 << 20, &data, &size), -EISDIR);
	assert_int_equal(file_read_all("/dev/null", 1 << 20, &data, &size), -EINVAL);
	assert_null(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_little_endian),
		cmocka_unit_test(test_buf_grows),
		cmocka_unit_test(test_buf_oom_is_sticky),
		cmocka_unit_test(test_reader_round_trip),
		cmocka_unit_test(test_reader_truncated),
		cmocka_unit_test(test_reader_trailing),
		cmocka_unit_test(test_reader_past_end),
		cmocka_unit_test(test_reader_empty),
		cmocka_unit_test(test_range_within),
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_file_read_all),
		cmocka_unit_test(test_file_read_all_empty),
		cmocka_unit_test(test_file_read_all_not_regular),
		/* Last: under UBSan (halt_on_error) it ends the run. */
		cmocka_unit_test(test_buf_empty_put),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
