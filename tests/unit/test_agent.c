/* Unit tests for the Linux agent's parsers (guest/linux): its options
 * (options.h) and /dev/kmsg records (kmsg.h), tables of inputs and what
 * each parser makes of them; and its ping counting (net.h). The agent itself is tested as a host process
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
#include "net.h"
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
	bool reboot;
	uint64_t reboot_s;
	uint64_t disk_kib;
	uint32_t ip;
	unsigned prefix;
	uint32_t ping;
};

/* A command line that does not parse, the token that is bad being all of it. */
#define BAD_OPT(s) { .cmdline = (s), .ret = -EINVAL, .bad = (s) }

static void test_options(void **state)
{
	static const struct opt_case cases[] = {
		{ .cmdline = "", .beat_ms = 100 },
		{ .cmdline = "console=ttyS0 loglevel=4 quiet", .beat_ms = 100 },
		{ .cmdline = "console=ttyS0 ferry.dirty=16@8 ferry.poweroff=10", .dirty = true,
		  .ws_mib = 16, .rate_mib = 8, .poweroff = true, .poweroff_s = 10, .beat_ms = 100 },
		{ .cmdline = "\tferry.dirty=256@0\nferry.beat_ms=250 ", .dirty = true, .ws_mib = 256,
		  .beat_ms = 250 },
		{ .cmdline = "ferry.poweroff=0", .poweroff = true, .beat_ms = 100 },
		{ .cmdline = "ferry.reboot=7", .reboot = true, .reboot_s = 7, .beat_ms = 100 },
		{ .cmdline = "ferry.iopl=3 ferry.unknown=x", .beat_ms = 100 },
		{ .cmdline = "ferry.disk-writer=512", .beat_ms = 100, .disk_kib = 512 },
		{ .cmdline = "ferry.ping=198.18.5.1 ferry.ip=198.18.5.2/24", .beat_ms = 100,
		  .ip = 0xc6120502, .prefix = 24, .ping = 0xc6120501 },
		{ .cmdline = "ferry.ip=10.0.0.1/32", .beat_ms = 100, .ip = 0x0a000001, .prefix = 32 },
		{ .cmdline = "ferry.ip=255.255.255.254/1 ferry.ping=128.0.0.0", .beat_ms = 100,
		  .ip = 0xfffffffe, .prefix = 1, .ping = 0x80000000 },
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
		BAD_OPT("ferry.reboot=x"),
		BAD_OPT("ferry.reboot"),
		BAD_OPT("ferry.disk-writer=0"),
		BAD_OPT("ferry.disk-writer=16777217"),
		BAD_OPT("ferry.disk-writer"),
		BAD_OPT("ferry.ip=10.0.0.2"),
		BAD_OPT("ferry.ip=10.0.0.2/0"),
		BAD_OPT("ferry.ip=10.0.0.2/33"),
		BAD_OPT("ferry.ip=0.0.0.0/8"),
		BAD_OPT("ferry.ip=10.0.0/24"),
		BAD_OPT("ferry.ip=10.0.0.256/24"),
		BAD_OPT("ferry.ip=10.0.0.02/24"),
		BAD_OPT("ferry.ip=10.0.0.2./24"),
		BAD_OPT("ferry.ip=10..0.2/24"),
		BAD_OPT("ferry.ip=10.0.0.2/24x"),
		BAD_OPT("ferry.ping=junk"),
		BAD_OPT("ferry.ping=0.0.0.0"),
		/* ferry.ping without ferry.ip, to itself, outside its subnet */
		{ .cmdline = "ferry.ping=10.0.0.1", .ret = -EINVAL, .bad = "ferry.ping" },
		{ .cmdline = "ferry.ip=10.0.0.2/24 ferry.ping=10.0.0.2", .ret = -EINVAL,
		  .bad = "ferry.ping" },
		{ .cmdline = "ferry.ip=10.0.0.2/24 ferry.ping=10.0.1.1", .ret = -EINVAL,
		  .bad = "ferry.ping" },
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
		assert_int_equal(o.reboot, c->reboot);
		assert_int_equal(o.reboot_s, c->reboot_s);
		assert_int_equal(o.disk_kib, c->disk_kib);
		assert_int_equal(o.ip, c->ip);
		assert_int_equal(o.prefix, c->prefix);
		assert_int_equal(o.ping, c->ping);
	}
}

/* The test guest's options the agent has not got are noted, whatever
 * their value, and never make the command line bad. */
static void test_options_unsupported(void **state)
{
	struct agent_options o;
	char bad[64] = "";

	(void)state;
	assert_int_equal(options_parse("ferry.dirty=1@1", &o, bad, sizeof(bad)), 0);
	assert_false(o.unsupported[UNSUP_DISK_BENCH]);
	assert_true(o.dirty);
	assert_int_equal(options_parse("ferry.disk-bench=junk", &o, bad, sizeof(bad)), 0);
	assert_true(o.unsupported[UNSUP_DISK_BENCH]);
	assert_int_equal(options_parse("ferry.disk-bench", &o, bad, sizeof(bad)), 0);
	assert_true(o.unsupported[UNSUP_DISK_BENCH]);
	assert_string_equal(options_unsupported_name(UNSUP_DISK_BENCH), "ferry.disk-bench");
}

#define MS 1000000ULL

static void assert_counts(struct pinger *p, uint64_t sent, uint64_t recv, uint64_t lost)
{
	assert_int_equal(p->sent, sent);
	assert_int_equal(p->recv, recv);
	assert_int_equal(p->lost, lost);
}

/* Requests every 10 ms; a reply counts once; a request is lost once it is
 * more than 1 s old without a reply, and found again if one comes. */
static void test_ping_counting(void **state)
{
	static struct pinger p;

	(void)state;
	p = (struct pinger){ 0 };
	for (uint64_t i = 0; i < 200; i++)
		ping_sent(&p, 1000 * MS + i * 10 * MS);        /* seqs 0 .. 199 */
	for (uint16_t s = 0; s < 200; s += 2)
		ping_reply(&p, s);                             /* the even ones */
	ping_reply(&p, 0);                                     /* a duplicate */
	ping_reply(&p, 200);                                   /* never sent */
	ping_reply(&p, 65535);                                 /* never sent */
	assert_counts(&p, 200, 100, 0);
	ping_judge(&p, 1000 * MS + 1000 * MS);         /* none older than 1 s */
	assert_counts(&p, 200, 100, 0);
	ping_judge(&p, 1000 * MS + 1000 * MS + 95 * MS);       /* seqs 0 .. 9 judged */
	assert_counts(&p, 200, 100, 5);
	ping_reply(&p, 3);                                     /* late: found again */
	ping_reply(&p, 3);
	assert_counts(&p, 200, 101, 4);
	ping_judge(&p, 10000 * MS);                            /* all judged */
	assert_counts(&p, 200, 101, 99);
	ping_judge(&p, 20000 * MS);                            /* once each */
	assert_counts(&p, 200, 101, 99);
}

/* Sequence numbers wrap at 16 bits; only the last PING_WINDOW requests
 * are remembered. */
static void test_ping_wrap(void **state)
{
	static struct pinger p;
	uint64_t n = 65536 + 100;

	(void)state;
	p = (struct pinger){ 0 };
	for (uint64_t i = 0; i < n; i++)
		ping_sent(&p, i * 10 * MS);
	/* the window's requests older than 1 s (all but the last 100) */
	ping_judge(&p, n * 10 * MS);
	assert_counts(&p, n, 0, PING_WINDOW - 100);
	ping_reply(&p, 50);                    /* seq 65586 (65536 + 50), not lost */
	assert_counts(&p, n, 1, PING_WINDOW - 100);
	ping_reply(&p, (uint16_t)(n - 1 - PING_WINDOW));       /* forgotten */
	assert_counts(&p, n, 1, PING_WINDOW - 100);
	ping_reply(&p, (uint16_t)(n - PING_WINDOW));           /* the oldest remembered */
	assert_counts(&p, n, 2, PING_WINDOW - 101);
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
		cmocka_unit_test(test_ping_counting),
		cmocka_unit_test(test_ping_wrap),
		cmocka_unit_test(test_kmsg_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
