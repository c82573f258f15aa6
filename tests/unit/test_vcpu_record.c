/* Unit tests for src/arch/x86/vcpu_record.h's LAPIC fix-up: which saved
 * LAPIC pages get the expired one-shot timer's interrupt put in IRR (KVM
 * holds it back while the vCPU is out of KVM_RUN), as a table of register
 * pages and the answer each must get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arch/x86/vcpu_record.h"
#include "common/util.h"

#define VEC 0x40
#define ONESHOT (0u << 17)
#define PERIODIC (1u << 17)
#define DEADLINE (2u << 17)
#define MASKED (1u << 16)

struct lapic_case {
	const char *what;
	uint32_t svr, lvtt, tmict, tmcct;
	unsigned irr_vec, isr_vec; /* 0: none */
	bool raised;
};

static void page(uint8_t *regs, const struct lapic_case *c)
{
	memset(regs, 0, 1024);
	put_le32(regs + 0x0f0, c->svr);
	put_le32(regs + 0x320, c->lvtt);
	put_le32(regs + 0x380, c->tmict);
	put_le32(regs + 0x390, c->tmcct);
	if (c->irr_vec)
		put_le32(regs + 0x200 + 0x10 * (c->irr_vec / 32), 1u << (c->irr_vec % 32));
	if (c->isr_vec)
		put_le32(regs + 0x100 + 0x10 * (c->isr_vec / 32), 1u << (c->isr_vec % 32));
}

static void test_expired_timer(void **state)
{
	static const struct lapic_case cases[] = {
		{ "one-shot, run out, nothing pending", 0x1ff, ONESHOT | VEC, 1000, 0, 0, 0, true },
		{ "another vector in IRR", 0x1ff, ONESHOT | VEC, 1000, 0, 0x51, 0, true },
		{ "still counting", 0x1ff, ONESHOT | VEC, 1000, 10, 0, 0, false },
		{ "never armed", 0x1ff, ONESHOT | VEC, 0, 0, 0, 0, false },
		{ "already in IRR", 0x1ff, ONESHOT | VEC, 1000, 0, VEC, 0, false },
		{ "being handled (ISR)", 0x1ff, ONESHOT | VEC, 1000, 0, 0, VEC, false },
		{ "masked", 0x1ff, MASKED | ONESHOT | VEC, 1000, 0, 0, 0, false },
		{ "periodic", 0x1ff, PERIODIC | VEC, 1000, 0, 0, 0, false },
		/* armed and run out but for its mode: the mode check refuses it */
		{ "TSC deadline", 0x1ff, DEADLINE | VEC, 1000, 0, 0, 0, false },
		{ "APIC software-disabled", 0x0ff, ONESHOT | VEC, 1000, 0, 0, 0, false },
		{ "reserved vector", 0x1ff, ONESHOT | 0x0e, 1000, 0, 0, 0, false },
	};
	uint8_t regs[1024];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct lapic_case *c = &cases[i];
		unsigned v = c->lvtt & 0xff;
		bool now;

		page(regs, c);
		if (x86_lapic_raise_expired_timer(regs) != c->raised)
			fail_msg("%s: expected %s", c->what, c->raised ? "raised" : "left alone");
		now = get_le32(regs + 0x200 + 0x10 * (v / 32)) & (1u << (v % 32));
		assert_int_equal(now, c->raised || c->irr_vec == v);
		/* Raising is done once: the page it leaves is left alone. */
		assert_false(x86_lapic_raise_expired_timer(regs));
		if (c->irr_vec && c->irr_vec != v) /* other IRR bits are kept */
			assert_true(get_le32(regs + 0x200 + 0x10 * (c->irr_vec / 32)) &
				    (1u << (c->irr_vec % 32)));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expired_timer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
