/* Unit tests for the Linux agent's parsers (guest/linux): its options
 * (options.h) and /dev/kmsg records (kmsg.h). Tables of inputs and what
 * each parser makes of them. The agent itself is tested as a host process
 * and in a VM (guest/linux/README.md, tests/e2e/test_linux_agent.py). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kmsg.h"
#include "options.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* One command line: the result, the offending token (for -EINVAL), and
 * the options that matter when it parses. */
struct opt_case {
	const char *cmdline;
	int ret;
	const char *bad;
	bool dirty;
	uint64_t ws_mib, rate_mib;
	bool poweroff;
	uint64_t poweroff_s, beat_ms;
};

/* A command line that does not parse, the token that is bad being all of it. */
#define BAD_OPT(s) { .cmdline = (s), .ret = -EINVAL, .bad = (s) }

static void test_options(void **state)
{
	static const struct opt_case cases[] = {
		{ "", 0, NULL, false, 0, 0, false, 0, 100 },
		{ "console=ttyS0 loglevel=4 quiet", 0, NULL, false, 0, 0, false, 0, 100 },
		{ "console=ttyS0 ferry.dirty=16@8 ferry.poweroff=10", 0, NULL,
		  true, 16, 8, true, 10, 100 },
		{ "\tferry.dirty=256@0\nferry.beat_ms=250 ", 0, NULL, true, 256, 0, false, 0, 250 },
		{ "ferry.poweroff=0", 0, NULL, false, 0, 0, true, 0, 100 },
		{ "ferry.iopl=3 ferry.unknown=x", 0, NULL, false, 0, 0, false, 0, 100 },
		BAD_OPT("ferry.dirty=16"),
		BAD_OPT("ferry.dirty=0@8"),
		BAD_OPT("ferry.dirty=16@"),
		BAD_OPT("ferry.dirty=@8"),
		BAD_OPT("ferry.dirty=16@8x"),
		BAD_OPT("ferry.dirty=16777217@1"),
		BAD_OPT("ferry.dirty=1@16777217"),
		BAD_OPT("ferry.dirty=99999999999999999999@1"),
		BAD_OPT("ferry.dirty"),
		{ .cmdline = "a=b ferry.poweroff=-1 c=d", .ret = -EINVAL,
		  .bad = "ferry.poweroff=-1" },
		BAD_OPT("ferry.poweroff=4294967297"),
		BAD_OPT("ferry.beat_ms=0"),
		BAD_OPT("ferry.inject="),
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct opt_case *c = &cases[i];
		struct agent_options o;
		char bad[64] = "";

		assert_int_equal(options_parse(c->cmdline, &o, bad, sizeof(bad)), c->ret);
		if (c->ret) {
			assert_string_equal(bad, c->bad);
			continue;
		}
		assert_int_equal(o.dirty, c->dirty);
		assert_int_equal(o.ws_mib, c->ws_mib);
		assert_int_equal(o.rate_mib, c->rate_mib);
		assert_int_equal(o.poweroff, c->poweroff);
		assert_int_equal(o.poweroff_s, c->poweroff_s);
		assert_int_equal(o.beat_ms, c->beat_ms);
	}
}

/* The test guest's options the agent has not got are noted, whatever
 * their value, and never make the command line bad. */
static void test_options_unsupported(void **state)
{
	struct agent_options o;
	char bad[64] = "";

	(void)state;
	assert_int_equal(options_parse("ferry.disk-writer=512 ferry.ip=10.0.0.2/24 "
				       "ferry.ping=junk ferry.dirty=1@1", &o, bad,
				       sizeof(bad)), 0);
	assert_true(o.unsupported[UNSUP_DISK_WRITER]);
	assert_true(o.unsupported[UNSUP_IP]);
	assert_true(o.unsupported[UNSUP_PING]);
	assert_false(o.unsupported[UNSUP_DISK_BENCH]);
	assert_true(o.dirty);
	assert_int_equal(options_parse("ferry.disk-bench", &o, bad, sizeof(bad)), 0);
	assert_true(o.unsupported[UNSUP_DISK_BENCH]);
	assert_string_equal(options_unsupported_name(UNSUP_DISK_WRITER), "ferry.disk-writer");
	assert_string_equal(options_unsupported_name(UNSUP_PING), "ferry.ping");
}

/* A bad token longer than the buffer is cut, NUL-terminated. */
static void test_options_bad_cut(void **state)
{
	struct agent_options o;
	char bad[8];

	(void)state;
	assert_int_equal(options_parse("ferry.dirty=xyz", &o, bad, sizeof(bad)), -EINVAL);
	assert_string_equal(bad, "ferry.d");
}

struct kmsg_case {
	const char *rec;
	int ret;
	unsigned pri;
	const char *text;
};

#define BAD_REC(s) { .rec = (s), .ret = -EINVAL }

static void test_kmsg_parse(void **state)
{
	static const struct kmsg_case cases[] = {
		{ "4,512,1234567,-;ACPI: button: bad thing\n", 0, 4, "ACPI: button: bad thing" },
		{ "6,513,1234568,-;virtio_blk virtio1: [vda] 32768 512-byte logical blocks\n"
		  " SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n", 0, 6,
		  "virtio_blk virtio1: [vda] 32768 512-byte logical blocks" },
		{ "3,1,0,c,caller=T1;x\n", 0, 3, "x" },        /* more fields */
		{ "12,2,0,-;user text\n", 0, 12, "user text" }, /* facility 1 */
		{ "0,3,0,-;\n", 0, 0, "" },
		BAD_REC("4,512,1234567,-;no newline"),
		BAD_REC("4,512,1234567,- no semicolon\n"),
		BAD_REC("x,1,0,-;text\n"),
		BAD_REC(";text\n"),
		BAD_REC("4x,1,0,-;text\n"),
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct kmsg_case *c = &cases[i];
		char rec[256];
		const char *text = NULL;
		unsigned pri = 99;

		snprintf(rec, sizeof(rec), "%s", c->rec);
		assert_int_equal(kmsg_parse(rec, strlen(rec), &pri, &text), c->ret);
		if (c->ret)
			continue;
		assert_int_equal(pri, c->pri);
		assert_string_equal(text, c->text);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_options_unsupported),
		cmocka_unit_test(test_options_bad_cut),
		cmocka_unit_test(test_kmsg_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
