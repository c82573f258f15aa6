/* Unit tests for the emulated PC devices (src/devices/): each is driven
 * through its bus_ops with fake interrupt lines, machine links and output,
 * and every device's state must survive save -> load -> save byte for byte
 * (STYLE.md §12) while load refuses damaged records and leaves the device
 * as it was. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "arch/x86/layout.h"
#include "common/buf.h"
#include "common/util.h"
#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/device.h"
#include "devices/i8042.h"
#include "devices/rtc.h"
#include "devices/serial.h"

/* --- fakes --------------------------------------------------------------- */

struct fake_irq {
	unsigned calls;
	unsigned gsi;
	bool level;
};

static void fake_irq_set(void *ctx, unsigned gsi, bool level)
{
	struct fake_irq *f = ctx;

	f->calls++;
	f->gsi = gsi;
	f->level = level;
}

struct fake_machine {
	unsigned poweroff, reset;
};

static void fake_request(void *ctx, enum machine_request req)
{
	struct fake_machine *m = ctx;

	if (req == MACHINE_POWEROFF)
		m->poweroff++;
	else if (req == MACHINE_RESET)
		m->reset++;
	else
		fail_msg("unknown machine request %d", req);
}

/* A console sink that takes at most room bytes (SIZE_MAX: a reader that
 * keeps up; 0: one that stalled). */
struct fake_out {
	uint8_t bytes[256];
	unsigned n;
	size_t room;
	unsigned calls;
};

static size_t fake_out_take(void *ctx, const uint8_t *data, size_t len)
{
	struct fake_out *o = ctx;
	size_t n = MIN(len, o->room);

	o->calls++;
	assert_true(len > 0 && len <= SERIAL_FIFO);
	assert_true(o->n + n <= sizeof(o->bytes));
	memcpy(o->bytes + o->n, data, n);
	o->n += (unsigned)n;
	if (o->room != SIZE_MAX)
		o->room -= n;
	return n;
}

static uint64_t fake_ns;

static uint64_t fake_now_ns(void)
{
	return fake_ns;
}

static uint64_t rd(const struct bus_ops *ops, void *dev, uint64_t off, unsigned size)
{
	uint8_t d[8];
	uint64_t v = 0;

	memset(d, 0xcd, sizeof(d));
	ops->read(dev, off, d, size);
	memcpy(&v, d, size);
	return v;
}

static void wr(const struct bus_ops *ops, void *dev, uint64_t off, unsigned size, uint64_t v)
{
	uint8_t d[8];

	memcpy(d, &v, sizeof(d));
	ops->write(dev, off, d, size);
}

/* --- serial -------------------------------------------------------------- */

#define RBR 0
#define IER 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

struct serial_fix {
	struct serial s;
	struct fake_irq irq;
	struct fake_out out;
};

static void serial_fix_init(struct serial_fix *f)
{
	memset(f, 0, sizeof(*f));
	f->out.room = SIZE_MAX;
	serial_init(&f->s, (struct irq_line){ fake_irq_set, &f->irq, IRQ_COM1 }, fake_out_take,
		    &f->out);
}

static uint8_t sr(struct serial_fix *f, unsigned reg)
{
	return (uint8_t)rd(&serial_bus_ops, &f->s, reg, 1);
}

static void sw(struct serial_fix *f, unsigned reg, uint8_t v)
{
	wr(&serial_bus_ops, &f->s, reg, 1, v);
}

static void test_serial_reset_state(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	assert_int_equal(sr(&f, IIR), 0x01);
	assert_int_equal(sr(&f, LSR), 0x60); /* THRE | TEMT */
	assert_int_equal(sr(&f, MSR), 0xb0); /* DCD | DSR | CTS */
	assert_int_equal(sr(&f, IER), 0);
	assert_false(f.irq.level);
	/* A 4-byte access carries the register in its low byte. */
	assert_int_equal(rd(&serial_bus_ops, &f.s, LSR, 4), 0x60);
}

static void test_serial_transmit(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	sw(&f, RBR, 'o');
	sw(&f, RBR, 'k');
	sw(&f, RBR, '\n');
	assert_int_equal(f.out.n, 3);
	assert_memory_equal(f.out.bytes, "ok\n", 3);
	/* A sink that keeps up: each byte out at once, THR never busy. */
	assert_int_equal(f.out.calls, 3);
	assert_int_equal(serial_tx_pending(&f.s), 0);
	assert_int_equal(sr(&f, LSR), 0x60);
}

/* A stalled reader: the TX FIFO holds what the guest wrote, THRE clear,
 * up to 16 bytes (the 17th is lost, as on hardware); once the sink takes
 * some, they come out in order, and the FIFO running empty is the THRE
 * interrupt. */
static void test_serial_tx_backpressure(void **state)
{
	const char *msg = "0123456789abcdefX";
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	sw(&f, FCR, 0x07);
	sw(&f, IER, 0x02);
	assert_int_equal(sr(&f, IIR), 0xc2); /* THR empty at enable */
	f.out.room = 0;
	sw(&f, RBR, (uint8_t)msg[0]);
	assert_int_equal(f.out.n, 0);
	assert_int_equal(serial_tx_pending(&f.s), 1);
	assert_int_equal(sr(&f, LSR), 0x00); /* neither THRE nor TEMT */
	assert_false(f.irq.level);
	for (unsigned i = 1; i < 17; i++)
		sw(&f, RBR, (uint8_t)msg[i]);
	assert_int_equal(serial_tx_pending(&f.s), SERIAL_FIFO);
	assert_int_equal(sr(&f, IIR), 0xc1);
	/* Draining with no room changes nothing. */
	assert_int_equal(serial_tx_drain(&f.s), SERIAL_FIFO);
	assert_false(f.irq.level);
	/* A partial drain: the oldest bytes, THRE still clear. */
	f.out.room = 5;
	assert_int_equal(serial_tx_drain(&f.s), SERIAL_FIFO - 5);
	assert_int_equal(f.out.n, 5);
	assert_memory_equal(f.out.bytes, msg, 5);
	assert_false(sr(&f, LSR) & 0x60);
	assert_false(f.irq.level);
	/* Room again: the rest, in order, then THRE and its interrupt. */
	f.out.room = SIZE_MAX;
	assert_int_equal(serial_tx_drain(&f.s), 0);
	assert_int_equal(f.out.n, SERIAL_FIFO);
	assert_memory_equal(f.out.bytes, msg, SERIAL_FIFO);
	assert_true(f.irq.level);
	assert_int_equal(sr(&f, LSR), 0x60);
	assert_int_equal(sr(&f, IIR), 0xc2);
	assert_false(f.irq.level); /* acknowledged by the IIR read */
	assert_int_equal(serial_tx_drain(&f.s), 0);
	assert_false(f.irq.level);
}

/* FIFO off: THR holds one byte; a second written while it is busy is
 * lost. Writing THR acknowledges a pending THRE interrupt; enabling THRI
 * while THR is busy raises nothing until it empties. */
static void test_serial_tx_thr_only(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	f.out.room = 0;
	sw(&f, RBR, 'a');
	sw(&f, RBR, 'b');
	assert_int_equal(serial_tx_pending(&f.s), 1);
	sw(&f, IER, 0x02);
	assert_false(f.irq.level);
	assert_int_equal(sr(&f, IIR), 0x01);
	f.out.room = SIZE_MAX;
	assert_int_equal(serial_tx_drain(&f.s), 0);
	assert_int_equal(f.out.n, 1);
	assert_int_equal(f.out.bytes[0], 'a');
	assert_true(f.irq.level);
	f.out.room = 0;
	sw(&f, RBR, 'c');
	assert_false(f.irq.level); /* the write acknowledged it */
	assert_int_equal(sr(&f, IIR), 0x01);
}

/* FCR bit 2 empties the TX FIFO: what waited is gone, THR is empty. */
static void test_serial_tx_clear(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	sw(&f, FCR, 0x01);
	sw(&f, IER, 0x02);
	sr(&f, IIR);
	f.out.room = 0;
	sw(&f, RBR, 'a');
	sw(&f, RBR, 'b');
	assert_false(f.irq.level);
	sw(&f, FCR, 0x05);
	assert_int_equal(serial_tx_pending(&f.s), 0);
	assert_int_equal(sr(&f, LSR), 0x60);
	assert_true(f.irq.level);
	f.out.room = SIZE_MAX;
	assert_int_equal(serial_tx_drain(&f.s), 0);
	assert_int_equal(f.out.n, 0);
}

static void test_serial_divisor_latch(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	sw(&f, IER, 0x05);
	sw(&f, LCR, 0x83);
	assert_int_equal(sr(&f, RBR), 0x0c); /* 9600 baud at reset */
	sw(&f, RBR, 0x01);
	sw(&f, IER, 0x00);
	assert_int_equal(sr(&f, RBR), 0x01);
	assert_int_equal(sr(&f, IER), 0x00);
	assert_int_equal(f.out.n, 0); /* DLL writes are not transmitted */
	sw(&f, LCR, 0x03);
	assert_int_equal(sr(&f, LCR), 0x03);
	assert_int_equal(sr(&f, IER), 0x05); /* IER kept under the latch */
}

static void test_serial_scratch(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	for (unsigned v = 0; v < 256; v += 51) {
		sw(&f, SCR, (uint8_t)v);
		assert_int_equal(sr(&f, SCR), v);
	}
}

/* Linux's autoconfig: MCR 0x10 reads MSR high nibble 0, MCR 0x1A reads
 * 0x90 (loopback CTS and DCD). */
static void test_serial_loopback_probe(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	sw(&f, MCR, 0x10);
	assert_int_equal(sr(&f, MSR) & 0xf0, 0x00);
	sw(&f, MCR, 0x1a);
	assert_int_equal(sr(&f, MSR) & 0xf0, 0x90);
	sw(&f, MCR, 0x1f);
	assert_int_equal(sr(&f, MSR) & 0xf0, 0xf0);
	sw(&f, MCR, 0x11); /* DTR -> DSR */
	assert_int_equal(sr(&f, MSR) & 0xf0, 0x20);
	sw(&f, MCR, 0x14); /* OUT1 -> RI */
	assert_int_equal(sr(&f, MSR) & 0xf0, 0x40);
	assert_int_equal(sr(&f, MCR), 0x14);
	sw(&f, MCR, 0x0b);
	assert_int_equal(sr(&f, MSR), 0xb0);
}

static void test_serial_loopback_data(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	f.out.room = 0; /* a stalled console does not matter to loopback */
	sw(&f, MCR, 0x10);
	sw(&f, RBR, 'x');
	assert_int_equal(f.out.n, 0);
	assert_int_equal(f.out.calls, 0);
	assert_int_equal(serial_tx_pending(&f.s), 0);
	assert_true(sr(&f, LSR) & 0x01);
	assert_int_equal(sr(&f, RBR), 'x');
	assert_false(sr(&f, LSR) & 0x01);
	/* Without a FIFO the second byte overruns the first. */
	sw(&f, RBR, 'a');
	sw(&f, RBR, 'b');
	assert_int_equal(sr(&f, LSR), 0x63); /* DR | OE | THRE | TEMT */
	assert_int_equal(sr(&f, LSR), 0x61); /* OE cleared by the read */
	assert_int_equal(sr(&f, RBR), 'a');
}

static void test_serial_fifo_iir(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	sw(&f, FCR, 0x01);
	assert_int_equal(sr(&f, IIR), 0xc1);
	sw(&f, FCR, 0xc7);
	assert_int_equal(sr(&f, IIR) & 0xc0, 0xc0);
	sw(&f, FCR, 0x00);
	assert_int_equal(sr(&f, IIR), 0x01);
}

static void test_serial_rx_fifo(void **state)
{
	struct serial_fix f;
	uint8_t in[20];

	(void)state;
	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)('A' + i);
	serial_fix_init(&f);
	/* FIFO off: one byte of room. */
	assert_int_equal(serial_rx_room(&f.s), 1);
	assert_int_equal(serial_receive(&f.s, in, 3), 1);
	assert_int_equal(serial_rx_room(&f.s), 0);
	assert_int_equal(serial_receive(&f.s, in, 3), 0);
	assert_int_equal(sr(&f, RBR), 'A');

	sw(&f, FCR, 0x01);
	assert_int_equal(serial_rx_room(&f.s), SERIAL_FIFO);
	assert_int_equal(serial_receive(&f.s, in, sizeof(in)), SERIAL_FIFO);
	assert_int_equal(serial_rx_room(&f.s), 0);
	assert_false(sr(&f, LSR) & 0x02); /* refusing is not an overrun */
	for (unsigned i = 0; i < SERIAL_FIFO; i++) {
		assert_true(sr(&f, LSR) & 0x01);
		assert_int_equal(sr(&f, RBR), in[i]);
	}
	assert_false(sr(&f, LSR) & 0x01);
	assert_int_equal(sr(&f, RBR), 0); /* empty FIFO */
	/* Wrap around the ring. */
	assert_int_equal(serial_receive(&f.s, in, 10), 10);
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(sr(&f, RBR), in[i]);
	assert_int_equal(serial_receive(&f.s, in + 10, 10), 10);
	assert_int_equal(serial_rx_room(&f.s), 1);
	for (unsigned i = 5; i < 20; i++)
		assert_int_equal(sr(&f, RBR), in[i]);
	/* FCR bit 1 empties the FIFO. */
	assert_int_equal(serial_receive(&f.s, in, 4), 4);
	sw(&f, FCR, 0x03);
	assert_false(sr(&f, LSR) & 0x01);
	assert_int_equal(serial_rx_room(&f.s), SERIAL_FIFO);
}

static void test_serial_rx_irq(void **state)
{
	struct serial_fix f;
	uint8_t in[2] = { 'p', 'q' };

	(void)state;
	serial_fix_init(&f);
	sw(&f, FCR, 0x01);
	assert_int_equal(serial_receive(&f.s, in, 2), 2);
	assert_false(f.irq.level); /* IER off */
	f.irq.calls = 0;
	sw(&f, IER, 0x01);
	assert_int_equal(f.irq.calls, 1);
	assert_true(f.irq.level);
	assert_int_equal(f.irq.gsi, IRQ_COM1);
	assert_int_equal(sr(&f, IIR), 0xc4);
	assert_int_equal(sr(&f, RBR), 'p');
	assert_true(f.irq.level);
	assert_int_equal(f.irq.calls, 1); /* no change, no call */
	assert_int_equal(sr(&f, RBR), 'q');
	assert_false(f.irq.level);
	assert_int_equal(f.irq.calls, 2);
	assert_int_equal(sr(&f, IIR), 0xc1);
	/* Input arriving raises it again. */
	assert_int_equal(serial_receive(&f.s, in, 1), 1);
	assert_true(f.irq.level);
	assert_int_equal(f.irq.calls, 3);
}

static void test_serial_thre_irq(void **state)
{
	struct serial_fix f;

	(void)state;
	serial_fix_init(&f);
	f.irq.calls = 0;
	/* Enabling THRI with THR empty raises it at once. */
	sw(&f, IER, 0x02);
	assert_true(f.irq.level);
	assert_int_equal(f.irq.calls, 1);
	assert_int_equal(sr(&f, IIR), 0x02);
	/* Reading IIR acknowledged it. */
	assert_false(f.irq.level);
	assert_int_equal(sr(&f, IIR), 0x01);
	/* Each transmitted byte raises it again. */
	sw(&f, RBR, 'z');
	assert_true(f.irq.level);
	/* Rewriting IER with THRI still on does not re-raise. */
	assert_int_equal(sr(&f, IIR), 0x02);
	sw(&f, IER, 0x02);
	assert_false(f.irq.level);
	/* RX has priority over THRE. */
	sw(&f, IER, 0x03);
	sw(&f, RBR, 'z');
	assert_int_equal(serial_receive(&f.s, (const uint8_t *)"r", 1), 1);
	assert_int_equal(sr(&f, IIR), 0x04);
	sr(&f, RBR);
	assert_int_equal(sr(&f, IIR), 0x02);
	assert_int_equal(sr(&f, IIR), 0x01);
	assert_false(f.irq.level);
	/* Disabling the source lowers the line. */
	sw(&f, IER, 0x00);
	sw(&f, RBR, 'z');
	sw(&f, IER, 0x00);
	assert_false(f.irq.level);
}

/* --- i8042 --------------------------------------------------------------- */

struct i8042_fix {
	struct i8042 k;
	struct fake_machine m;
};

static void i8042_fix_init(struct i8042_fix *f)
{
	memset(f, 0, sizeof(*f));
	i8042_init(&f->k, (struct machine_link){ fake_request, &f->m });
}

/* Offsets are relative to port 0x60 (one range 0x60-0x64). */
static uint8_t kst(struct i8042_fix *f)
{
	return (uint8_t)rd(&i8042_bus_ops, &f->k, PORT_I8042_CMD - PORT_I8042_DATA, 1);
}

static uint8_t kdata(struct i8042_fix *f)
{
	return (uint8_t)rd(&i8042_bus_ops, &f->k, 0, 1);
}

static void kcmd(struct i8042_fix *f, uint8_t v)
{
	wr(&i8042_bus_ops, &f->k, PORT_I8042_CMD - PORT_I8042_DATA, 1, v);
}

static void kwdata(struct i8042_fix *f, uint8_t v)
{
	wr(&i8042_bus_ops, &f->k, 0, 1, v);
}

static void test_i8042_self_test(void **state)
{
	struct i8042_fix f;

	(void)state;
	i8042_fix_init(&f);
	/* SYS, keylock off (Linux warns "Keylock active" otherwise), empty */
	assert_int_equal(kst(&f), 0x14);
	kcmd(&f, 0xaa);
	assert_int_equal(kst(&f) & 0x01, 0x01);
	assert_int_equal(kdata(&f), 0x55);
	assert_int_equal(kst(&f) & 0x01, 0);
	kcmd(&f, 0xab);
	assert_int_equal(kdata(&f), 0x00);
	assert_int_equal(f.m.reset + f.m.poweroff, 0);
}

static void test_i8042_reset(void **state)
{
	struct i8042_fix f;

	(void)state;
	i8042_fix_init(&f);
	kcmd(&f, 0xfe);
	assert_int_equal(f.m.reset, 1);
	assert_int_equal(f.m.poweroff, 0);
	/* Writing the output port with bit 0 clear pulses reset too. */
	kcmd(&f, 0xd1);
	assert_int_equal(kst(&f) & 0x08, 0x08);
	kwdata(&f, 0x03);
	assert_int_equal(f.m.reset, 1);
	kcmd(&f, 0xd0);
	assert_int_equal(kdata(&f), 0x03);
	kcmd(&f, 0xd1);
	kwdata(&f, 0x02);
	assert_int_equal(f.m.reset, 2);
}

static void test_i8042_command_byte(void **state)
{
	struct i8042_fix f;

	(void)state;
	i8042_fix_init(&f);
	kcmd(&f, 0x20);
	assert_int_equal(kdata(&f), 0x30);
	kcmd(&f, 0x60);
	kwdata(&f, 0x45);
	assert_int_equal(kst(&f) & 0x08, 0); /* no command pending */
	kcmd(&f, 0x20);
	assert_int_equal(kdata(&f), 0x45);
	/* 0xD2 echoes the byte as if the keyboard had sent it. */
	kcmd(&f, 0xd2);
	kwdata(&f, 0x9c);
	assert_int_equal(kst(&f) & 0x01, 0x01);
	assert_int_equal(kdata(&f), 0x9c);
	/* A byte for the (absent) keyboard is swallowed. */
	kwdata(&f, 0xff);
	assert_int_equal(kst(&f) & 0x01, 0);
	/* Ports 0x61-0x63 are not the controller's. */
	assert_int_equal(rd(&i8042_bus_ops, &f.k, 1, 1), 0xff);
}

/* --- ACPI PM and 0xCF9 --------------------------------------------------- */

#define PM1_STS 0
#define PM1_EN 2
#define PM1_CNT 4
#define PM_TMR 8

struct pm_fix {
	struct acpi_pm pm;
	struct fake_machine m;
	struct fake_irq sci;
};

static void pm_fix_init(struct pm_fix *f)
{
	memset(f, 0, sizeof(*f));
	acpi_pm_init(&f->pm, (struct machine_link){ fake_request, &f->m },
		     (struct irq_line){ fake_irq_set, &f->sci, IRQ_SCI }, ACPI_SLP_TYP_S5);
	fake_ns = 0;
	f->pm.now_ns = fake_now_ns;
	acpi_pm_device_ops.reset(&f->pm); /* the timer starts at 0 on the fake clock */
}

static void test_pm_poweroff(void **state)
{
	struct pm_fix f;

	(void)state;
	pm_fix_init(&f);
	wr(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2, (5u << 10) | (1u << 13));
	assert_int_equal(f.m.poweroff, 1);
	assert_int_equal(f.m.reset, 0);
	/* SLP_EN reads 0, SLP_TYP and SCI_EN stay. */
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2), (5u << 10) | 1);
}

static void test_pm_other_sleep_types(void **state)
{
	(void)state;
	for (unsigned typ = 0; typ < 8; typ++) {
		struct pm_fix f;

		pm_fix_init(&f);
		/* SLP_TYP without SLP_EN never sleeps. */
		wr(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2, typ << 10);
		assert_int_equal(f.m.poweroff, 0);
		if (typ == ACPI_SLP_TYP_S5)
			continue;
		wr(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2, (typ << 10) | (1u << 13));
		if (f.m.poweroff || f.m.reset)
			fail_msg("SLP_TYP %u with SLP_EN made a machine request", typ);
	}
}

static void test_pm_sci_en(void **state)
{
	struct pm_fix f;

	(void)state;
	pm_fix_init(&f);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2) & 1, 1);
	wr(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2, 0);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 2), 1);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_CNT, 1), 1);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2), 0);
	wr(&acpi_pm_bus_ops, &f.pm, PM1_EN, 2, 0x0121);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_EN, 2), 0x0121);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_EN + 1, 1), 0x01);
	assert_false(f.sci.level); /* nothing pending */
}

static void test_pm_power_button(void **state)
{
	struct pm_fix f;

	(void)state;
	pm_fix_init(&f);
	/* Pressed while not enabled: status only, no SCI. */
	acpi_pm_power_button(&f.pm);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2), 0x0100);
	assert_false(f.sci.level);
	/* Enabling it raises the SCI for the pending press. */
	wr(&acpi_pm_bus_ops, &f.pm, PM1_EN, 2, 0x0100);
	assert_true(f.sci.level);
	/* Writing 0 leaves it; writing the bit clears status and SCI. */
	wr(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2, 0);
	assert_true(f.sci.level);
	wr(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2, 0x0100);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2), 0);
	assert_false(f.sci.level);
	/* Pressed while enabled: SCI at once. */
	acpi_pm_power_button(&f.pm);
	assert_true(f.sci.level);
	assert_int_equal(f.m.poweroff, 0); /* the guest decides */
}

static void test_pm_timer(void **state)
{
	struct pm_fix f;
	uint32_t t;

	(void)state;
	pm_fix_init(&f);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM_TMR, 4), 0);
	fake_ns = 1000000000ull;
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM_TMR, 4), 3579545);
	assert_int_equal(acpi_pm_timer(&f.pm), 3579545);
	fake_ns += 1000000; /* 1 ms */
	assert_int_equal(acpi_pm_timer(&f.pm), 3579545 + 3579);
	/* Bytes of the register. */
	t = acpi_pm_timer(&f.pm);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM_TMR + i, 1), (t >> (8 * i)) & 0xff);
	/* Read-only. */
	wr(&acpi_pm_bus_ops, &f.pm, PM_TMR, 4, 0);
	assert_int_equal(acpi_pm_timer(&f.pm), t);
	/* Monotonic between wraps, wraps at 2^32 ticks (after ~1200 s). */
	fake_ns = 1200ull * 1000000000ull;
	assert_int_equal(acpi_pm_timer(&f.pm), (uint32_t)(1200ull * 3579545ull));
	assert_true(acpi_pm_timer(&f.pm) < 3579545ull * 2);
	/* Centuries of uptime do not overflow the arithmetic. */
	fake_ns = 3000000000ull * 1000000000ull;
	assert_int_equal(acpi_pm_timer(&f.pm), (uint32_t)(3000000000ull * 3579545ull));
	/* Sub-second rounding is down and never exceeds the whole second. */
	fake_ns = 999999999;
	assert_int_equal(acpi_pm_timer(&f.pm), 3579544);
}

static void test_pm_sci_level(void **state)
{
	struct pm_fix f;
	struct buf b = { 0 };

	(void)state;
	pm_fix_init(&f);
	/* A saved state with TMR_STS pending and enabled. */
	buf_put_u16(&b, 0x0001);
	buf_put_u16(&b, 0x0001);
	buf_put_u16(&b, 0x0001);
	buf_put_u8(&b, 0);
	buf_put_u32(&b, 0);
	assert_int_equal(acpi_pm_device_ops.load(&f.pm, 1, b.data, b.len), 0);
	assert_true(f.sci.level);
	assert_int_equal(f.sci.gsi, IRQ_SCI);
	/* Write 1 to clear. */
	wr(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2, 0x0001);
	assert_false(f.sci.level);
	assert_int_equal(rd(&acpi_pm_bus_ops, &f.pm, PM1_STS, 2), 0);
	buf_free(&b);
}

static void test_cf9(void **state)
{
	struct pm_fix f;

	(void)state;
	pm_fix_init(&f);
	assert_int_equal(rd(&acpi_cf9_bus_ops, &f.pm, 0, 1), 0);
	wr(&acpi_cf9_bus_ops, &f.pm, 0, 1, 0x02);
	assert_int_equal(f.m.reset, 0);
	assert_int_equal(rd(&acpi_cf9_bus_ops, &f.pm, 0, 1), 0x02);
	wr(&acpi_cf9_bus_ops, &f.pm, 0, 1, 0x06);
	assert_int_equal(f.m.reset, 1);
	assert_int_equal(f.m.poweroff, 0);
	wr(&acpi_cf9_bus_ops, &f.pm, 0, 1, 0x0e);
	assert_int_equal(f.m.reset, 2);
	assert_int_equal(rd(&acpi_cf9_bus_ops, &f.pm, 0, 1), 0x0a);
}

/* --- RTC ----------------------------------------------------------------- */

struct rtc_fix {
	struct rtc r;
};

static uint8_t rtc_rd(struct rtc *r, uint8_t reg)
{
	wr(&rtc_bus_ops, r, 0, 1, reg);
	return (uint8_t)rd(&rtc_bus_ops, r, 1, 1);
}

static void rtc_wr(struct rtc *r, uint8_t reg, uint8_t v)
{
	wr(&rtc_bus_ops, r, 0, 1, reg);
	wr(&rtc_bus_ops, r, 1, 1, v);
}

static uint8_t bcd(unsigned v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* Sets the date as Linux's mc146818_set_time() does: SET on, then year,
 * month, day, hours, minutes, seconds, SET off. Values in the current mode. */
static void rtc_set_date(struct rtc *r, unsigned year, unsigned mon, unsigned mday,
			 unsigned hour, unsigned min, unsigned sec)
{
	uint8_t b = rtc_rd(r, 0x0b);
	bool binary = b & 0x04;
	uint8_t (*enc)(unsigned) = bcd;

	rtc_wr(r, 0x0b, b | 0x80);
	if (binary) {
		rtc_wr(r, 0x09, (uint8_t)(year % 100));
		rtc_wr(r, 0x08, (uint8_t)mon);
		rtc_wr(r, 0x07, (uint8_t)mday);
		rtc_wr(r, 0x04, (uint8_t)hour);
		rtc_wr(r, 0x02, (uint8_t)min);
		rtc_wr(r, 0x00, (uint8_t)sec);
		rtc_wr(r, 0x32, (uint8_t)(year / 100));
	} else {
		rtc_wr(r, 0x09, enc(year % 100));
		rtc_wr(r, 0x08, enc(mon));
		rtc_wr(r, 0x07, enc(mday));
		rtc_wr(r, 0x04, enc(hour));
		rtc_wr(r, 0x02, enc(min));
		rtc_wr(r, 0x00, enc(sec));
		rtc_wr(r, 0x32, enc(year / 100));
	}
	rtc_wr(r, 0x0b, b);
}

/* Day 1 exists in every month: after this, rtc_set_date() moves to any
 * date without passing through an invalid one. */
static void rtc_day1(struct rtc *r)
{
	rtc_wr(r, 0x07, 1);
}

static void test_rtc_reset_state(void **state)
{
	struct rtc r;

	(void)state;
	rtc_init(&r, MiB(256), GiB(2));
	assert_int_equal(rtc_rd(&r, 0x0a), 0x26);
	assert_int_equal(rtc_rd(&r, 0x0b), 0x02);
	assert_int_equal(rtc_rd(&r, 0x0d), 0x80);
	assert_int_equal(rtc_rd(&r, 0x0c), 0x00);
	/* Memory sizes as PC firmware reads them. */
	assert_int_equal(rtc_rd(&r, 0x15) | rtc_rd(&r, 0x16) << 8, 640);
	assert_int_equal(rtc_rd(&r, 0x17) | rtc_rd(&r, 0x18) << 8, 0xffff);
	assert_int_equal(rtc_rd(&r, 0x30) | rtc_rd(&r, 0x31) << 8, 0xffff);
	assert_int_equal(rtc_rd(&r, 0x34) | rtc_rd(&r, 0x35) << 8, (MiB(256) - MiB(16)) >> 16);
	assert_int_equal(rtc_rd(&r, 0x5b) | rtc_rd(&r, 0x5c) << 8 | rtc_rd(&r, 0x5d) << 16,
			 GiB(2) >> 16);
	/* The index port is write-only. */
	assert_int_equal(rd(&rtc_bus_ops, &r, 0, 1), 0xff);

	rtc_init(&r, MiB(8), 0);
	assert_int_equal(rtc_rd(&r, 0x17) | rtc_rd(&r, 0x18) << 8, 7 * 1024);
	assert_int_equal(rtc_rd(&r, 0x34) | rtc_rd(&r, 0x35) << 8, 0);
}

static void test_rtc_now(void **state)
{
	struct rtc r;
	struct tm before, after;
	time_t t0, t1;
	uint8_t y, mo, d, h, mi;

	(void)state;
	rtc_init(&r, MiB(64), 0);
	do {
		t0 = time(NULL);
		y = rtc_rd(&r, 0x09), mo = rtc_rd(&r, 0x08), d = rtc_rd(&r, 0x07);
		h = rtc_rd(&r, 0x04), mi = rtc_rd(&r, 0x02);
		t1 = time(NULL);
	} while (t0 != t1);
	gmtime_r(&t0, &before);
	gmtime_r(&t1, &after);
	/* Offset 0: the host's UTC, BCD, 24-hour. */
	assert_int_equal(y, bcd((unsigned)before.tm_year % 100));
	assert_int_equal(mo, bcd((unsigned)before.tm_mon + 1));
	assert_int_equal(d, bcd((unsigned)before.tm_mday));
	assert_int_equal(h, bcd((unsigned)before.tm_hour));
	assert_int_equal(mi, bcd((unsigned)before.tm_min));
	assert_int_equal(rtc_rd(&r, 0x32), bcd((unsigned)(before.tm_year + 1900) / 100));
}

static void test_rtc_bcd_binary(void **state)
{
	struct rtc r;
	time_t want;
	struct tm tm = { .tm_year = 121, .tm_mon = 5, .tm_mday = 15, .tm_hour = 10,
			 .tm_min = 20, .tm_sec = 30 };

	(void)state;
	rtc_init(&r, MiB(64), 0);
	rtc_wr(&r, 0x0b, 0x06); /* binary, 24 h */
	rtc_day1(&r);
	rtc_set_date(&r, 2021, 6, 15, 10, 20, 30);
	want = timegm(&tm);
	/* Writing the time moved the offset from the host clock. */
	assert_true(llabs((long long)(r.s.offset - (want - time(NULL)))) <= 2);
	assert_int_equal(rtc_rd(&r, 0x09), 21);
	assert_int_equal(rtc_rd(&r, 0x08), 6);
	assert_int_equal(rtc_rd(&r, 0x07), 15);
	assert_int_equal(rtc_rd(&r, 0x06), 3); /* Tuesday, 1 = Sunday */
	assert_int_equal(rtc_rd(&r, 0x04), 10);
	assert_int_equal(rtc_rd(&r, 0x02), 20);
	assert_true(rtc_rd(&r, 0x00) >= 30 && rtc_rd(&r, 0x00) <= 32);
	assert_int_equal(rtc_rd(&r, 0x32), 20);
	/* The same time in BCD. */
	rtc_wr(&r, 0x0b, 0x02);
	assert_int_equal(rtc_rd(&r, 0x09), 0x21);
	assert_int_equal(rtc_rd(&r, 0x08), 0x06);
	assert_int_equal(rtc_rd(&r, 0x07), 0x15);
	assert_int_equal(rtc_rd(&r, 0x04), 0x10);
	assert_int_equal(rtc_rd(&r, 0x02), 0x20);
	assert_int_equal(rtc_rd(&r, 0x32), 0x20);
	/* Writes in BCD. */
	rtc_wr(&r, 0x02, 0x45);
	assert_int_equal(rtc_rd(&r, 0x02), 0x45);
	rtc_wr(&r, 0x0b, 0x06);
	assert_int_equal(rtc_rd(&r, 0x02), 45);
}

static void test_rtc_12_hour(void **state)
{
	struct rtc r;

	(void)state;
	rtc_init(&r, MiB(64), 0);
	rtc_wr(&r, 0x0b, 0x02);
	rtc_day1(&r);
	rtc_set_date(&r, 2021, 6, 15, 14, 0, 0);
	rtc_wr(&r, 0x0b, 0x00); /* BCD, 12 h */
	assert_int_equal(rtc_rd(&r, 0x04), 0x82); /* 2 PM */
	rtc_wr(&r, 0x04, 0x12);                  /* 12 AM */
	rtc_wr(&r, 0x0b, 0x02);
	assert_int_equal(rtc_rd(&r, 0x04), 0x00);
	rtc_wr(&r, 0x0b, 0x00);
	assert_int_equal(rtc_rd(&r, 0x04), 0x12);
	rtc_wr(&r, 0x04, 0x92); /* 12 PM */
	rtc_wr(&r, 0x0b, 0x02);
	assert_int_equal(rtc_rd(&r, 0x04), 0x12);
	assert_int_equal(rtc_rd(&r, 0x07), 0x15); /* the date did not move */
}

/* Setting a date the way Linux does must give that date whatever the RTC
 * read before: here Jan 31 -> Feb 28 (Feb 31 must not be normalised to
 * Mar 3 on the way). */
static void test_rtc_set_date_sequence(void **state)
{
	struct rtc r;

	(void)state;
	rtc_init(&r, MiB(64), 0);
	rtc_wr(&r, 0x0b, 0x06);
	rtc_day1(&r);
	rtc_set_date(&r, 2021, 1, 31, 12, 0, 0);
	assert_int_equal(rtc_rd(&r, 0x08), 1);
	assert_int_equal(rtc_rd(&r, 0x07), 31);
	rtc_set_date(&r, 2021, 2, 28, 12, 0, 0);
	assert_int_equal(rtc_rd(&r, 0x07), 28);
	assert_int_equal(rtc_rd(&r, 0x08), 2);
}

static void test_rtc_status_registers(void **state)
{
	struct rtc r;
	struct buf b = { 0 };
	uint8_t cmos[128];

	(void)state;
	rtc_init(&r, MiB(64), 0);
	/* UIP (A bit 7), C and D are read-only. */
	rtc_wr(&r, 0x0a, 0xa6);
	assert_int_equal(rtc_rd(&r, 0x0a), 0x26);
	rtc_wr(&r, 0x0c, 0xff);
	assert_int_equal(rtc_rd(&r, 0x0c), 0);
	rtc_wr(&r, 0x0d, 0x00);
	assert_int_equal(rtc_rd(&r, 0x0d), 0x80);
	/* Reading C acknowledges what it held. */
	memcpy(cmos, r.s.cmos, sizeof(cmos));
	cmos[0x0c] = 0xd0;
	buf_put_u8(&b, 0x0c);
	buf_put_u64(&b, 0);
	buf_put(&b, cmos, sizeof(cmos));
	assert_int_equal(rtc_device_ops.load(&r, 1, b.data, b.len), 0);
	assert_int_equal(rd(&rtc_bus_ops, &r, 1, 1), 0xd0);
	assert_int_equal(rd(&rtc_bus_ops, &r, 1, 1), 0x00);
	buf_free(&b);
	/* Plain CMOS bytes, whatever the NMI mask bit in the index. */
	rtc_wr(&r, 0x40, 0x5a);
	assert_int_equal(rtc_rd(&r, 0x40), 0x5a);
	assert_int_equal(rtc_rd(&r, 0xc0), 0x5a);
	rtc_wr(&r, 0x01, 0x33); /* alarm seconds */
	assert_int_equal(rtc_rd(&r, 0x01), 0x33);
}

/* --- bus and device list ------------------------------------------------- */

static void test_bus(void **state)
{
	static const struct bus_ops no_read = { .read = NULL, .write = NULL };
	static struct bus b = { .name = "pio" };
	struct serial_fix f;
	uint8_t d[4];
	uint32_t v;

	(void)state;
	serial_fix_init(&f);
	assert_int_equal(bus_register(&b, PORT_COM1, 8, &serial_bus_ops, &f.s), 0);
	assert_int_equal(bus_register(&b, PORT_COM1 + 7, 2, &serial_bus_ops, &f.s), -EEXIST);
	assert_int_equal(bus_register(&b, PORT_COM1 - 1, 2, &serial_bus_ops, &f.s), -EEXIST);
	assert_int_equal(bus_register(&b, PORT_COM1 - 8, 100, &serial_bus_ops, &f.s), -EEXIST);
	assert_int_equal(bus_register(&b, PORT_COM1 + 2, 1, &serial_bus_ops, &f.s), -EEXIST);
	assert_int_equal(bus_register(&b, PORT_COM1 - 8, 8, &no_read, NULL), 0); /* adjacent */
	assert_int_equal(bus_register(&b, 0x1000, 0, &no_read, NULL), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, &no_read, NULL), -EINVAL);
	assert_int_equal(b.n, 2);

	/* Dispatch with the offset inside the range. */
	d[0] = 'q';
	assert_true(bus_write(&b, PORT_COM1 + SCR, d, 1));
	assert_true(bus_read(&b, PORT_COM1 + SCR, d, 1));
	assert_int_equal(d[0], 'q');
	assert_true(bus_write(&b, PORT_COM1, (const uint8_t *)"!", 1));
	assert_int_equal(f.out.n, 1);
	assert_int_equal(f.out.bytes[0], '!');

	/* Unclaimed: all ones. */
	memset(d, 0, sizeof(d));
	assert_false(bus_read(&b, 0x80, d, 4));
	memcpy(&v, d, 4);
	assert_int_equal(v, 0xffffffff);
	assert_false(bus_write(&b, 0x80, d, 1));
	/* An access hanging over the end of a range is not the device's. */
	assert_false(bus_read(&b, PORT_COM1 + 7, d, 2));
	/* A claimed range without a read op reads all ones. */
	d[0] = 0;
	assert_true(bus_read(&b, PORT_COM1 - 1, d, 1));
	assert_int_equal(d[0], 0xff);
	assert_true(bus_write(&b, PORT_COM1 - 1, d, 1));

	/* Full. */
	for (unsigned i = b.n; i < BUS_MAX_RANGES; i++)
		assert_int_equal(bus_register(&b, 0x10000 + i, 1, &no_read, NULL), 0);
	assert_int_equal(bus_register(&b, 0x20000, 1, &no_read, NULL), -ENOSPC);
}

static void test_device_register(void **state)
{
	static struct device_list l;
	int a, b;

	(void)state;
	assert_int_equal(device_register(&l, &serial_device_ops, 0, &a), 0);
	assert_int_equal(device_register(&l, &serial_device_ops, 0, &b), -EEXIST);
	assert_int_equal(device_register(&l, &serial_device_ops, 1, &b), 0);
	assert_int_equal(device_register(&l, &rtc_device_ops, 0, &b), 0);
	assert_int_equal(l.n, 3);
	assert_ptr_equal(l.items[0].dev, &a);
	assert_int_equal(l.items[1].instance, 1);
	for (unsigned i = l.n; i < DEVICE_MAX; i++)
		assert_int_equal(device_register(&l, &i8042_device_ops, i, &a), 0);
	assert_int_equal(device_register(&l, &i8042_device_ops, 1000, &a), -ENOSPC);
}

/* --- save / load, for every device --------------------------------------- */

/* A device under test: its ops, a fresh instance, and a way to put one into
 * a state away from reset (so that the round trip means something). */
struct dev_case {
	const char *name;
	const struct device_ops *ops;
	size_t size;
	void (*fresh)(void *dev);
	void (*busy)(void *dev);
	/* Out-of-range edits of a good record: each must be refused. */
	void (*corrupt[8])(struct buf *rec);
};

static void serial_fresh(void *dev)
{
	serial_fix_init(dev);
}

static void serial_busy(void *dev)
{
	struct serial_fix *f = dev;
	uint8_t in[16];

	for (unsigned i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(0x30 + i);
	serial_fix_init(f);
	sw(f, FCR, 0x81);
	sw(f, LCR, 0x83);
	sw(f, RBR, 0x01);
	sw(f, IER, 0x00);
	sw(f, LCR, 0x03);
	sw(f, IER, 0x03);
	sw(f, MCR, 0x0b);
	sw(f, SCR, 0x99);
	/* A FIFO whose oldest byte is not at index 0. */
	serial_receive(&f->s, in, 12);
	for (unsigned i = 0; i < 7; i++)
		sr(f, RBR);
	serial_receive(&f->s, in, 9);
	/* A stalled console: a TX FIFO whose oldest byte is not at index 0
	 * either ("c", "w", "x" wait). */
	f->out.room = 0;
	sw(f, RBR, 'a');
	sw(f, RBR, 'b');
	sw(f, RBR, 'c');
	f->out.room = 2;
	serial_tx_drain(&f->s);
	f->out.room = 0;
	sw(f, RBR, 'w');
	sw(f, RBR, 'x');
}

/* Record layout (version 2; fresh: both FIFOs empty): 10 register bytes,
 * rx_count, the RX bytes, tx_count, the TX bytes. */
static void serial_bad_count(struct buf *rec)
{
	/* A complete record holding 17 FIFO bytes. */
	rec->data[10] = SERIAL_FIFO + 1;
	for (unsigned i = 0; i < SERIAL_FIFO + 1; i++)
		buf_put_u8(rec, 0);
}
static void serial_bad_count_short(struct buf *rec) { rec->data[10]++; }
static void serial_bad_ier(struct buf *rec) { rec->data[0] = 0x10; }
static void serial_bad_mcr(struct buf *rec) { rec->data[2] = 0x20; }
static void serial_bad_lsr_err(struct buf *rec) { rec->data[8] = 0x01; }
static void serial_bad_thr(struct buf *rec) { rec->data[9] = 2; }
static void serial_bad_tx_count(struct buf *rec)
{
	/* A complete record holding 17 TX FIFO bytes. */
	rec->data[11] = SERIAL_FIFO + 1;
	for (unsigned i = 0; i < SERIAL_FIFO + 1; i++)
		buf_put_u8(rec, 'A');
}
static void serial_bad_thr_busy(struct buf *rec)
{
	/* THRE pending while a byte waits in the TX FIFO. */
	rec->data[9] = 1;
	rec->data[11] = 1;
	buf_put_u8(rec, 'A');
}

static void i8042_fresh(void *dev)
{
	i8042_fix_init(dev);
}

static void i8042_busy(void *dev)
{
	struct i8042_fix *f = dev;

	i8042_fix_init(f);
	kcmd(f, 0x60);
	kwdata(f, 0x47);
	kcmd(f, 0xaa);
	kcmd(f, 0xd1); /* leaves a command waiting for its byte */
}

/* Record layout: cmd_byte, pending, out, out_full, outport. */
static void i8042_bad_full(struct buf *rec) { rec->data[3] = 2; }
static void i8042_bad_pending(struct buf *rec) { rec->data[1] = 0xaa; }

/* Both states at the same instant of the fake clock (0): the timer is
 * part of the state, and reset restarts it from 0. */
static void pm_fresh(void *dev)
{
	pm_fix_init(dev);
}

static void pm_busy(void *dev)
{
	struct pm_fix *f = dev;

	pm_fix_init(f);
	wr(&acpi_pm_bus_ops, &f->pm, PM1_EN, 2, 0x0100);
	wr(&acpi_pm_bus_ops, &f->pm, PM1_CNT, 2, 3u << 10);
	wr(&acpi_cf9_bus_ops, &f->pm, 0, 1, 0x08);
}

/* Record layout: sts u16, en u16, cnt u16, cf9 u8, timer u32. */
static void pm_bad_slp_en(struct buf *rec) { rec->data[5] |= 0x20; }
static void pm_bad_cf9(struct buf *rec) { rec->data[6] = 0x04; }

static void rtc_fresh(void *dev)
{
	rtc_init(dev, MiB(512), GiB(1));
}

static void rtc_busy(void *dev)
{
	struct rtc *r = dev;

	rtc_init(r, MiB(512), GiB(1));
	rtc_wr(r, 0x0b, 0x06);
	rtc_day1(r);
	rtc_set_date(r, 2031, 7, 4, 1, 2, 3);
	rtc_wr(r, 0x50, 0xab);
	wr(&rtc_bus_ops, r, 0, 1, 0x8f); /* NMI masked, register 0x0f selected */
}

static const struct dev_case dev_cases[] = {
	{ "serial", &serial_device_ops, sizeof(struct serial_fix), serial_fresh, serial_busy,
	  { serial_bad_count, serial_bad_count_short, serial_bad_ier, serial_bad_mcr,
	    serial_bad_lsr_err, serial_bad_thr, serial_bad_tx_count, serial_bad_thr_busy } },
	{ "i8042", &i8042_device_ops, sizeof(struct i8042_fix), i8042_fresh, i8042_busy,
	  { i8042_bad_full, i8042_bad_pending } },
	{ "acpi-pm", &acpi_pm_device_ops, sizeof(struct pm_fix), pm_fresh, pm_busy,
	  { pm_bad_slp_en, pm_bad_cf9 } },
	{ "rtc", &rtc_device_ops, sizeof(struct rtc), rtc_fresh, rtc_busy, { NULL } },
};

/* The device's own struct (the fixtures put it first). */
static void save(const struct dev_case *c, void *dev, struct buf *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(c->ops->save(dev, out), 0);
	assert_true(out->len > 0);
}

static void test_save_load_save(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(dev_cases); i++) {
		const struct dev_case *c = &dev_cases[i];
		void *a = calloc(1, c->size), *b = calloc(1, c->size);
		struct buf r1, r2, r3;

		c->busy(a);
		save(c, a, &r1);
		c->fresh(b);
		save(c, b, &r3);
		if (r1.len == r3.len && !memcmp(r1.data, r3.data, r1.len))
			fail_msg("%s: the busy state saves like a fresh one", c->name);
		assert_int_equal(c->ops->load(b, c->ops->version, r1.data, r1.len), 0);
		save(c, b, &r2);
		if (r1.len != r2.len || memcmp(r1.data, r2.data, r1.len))
			fail_msg("%s: save -> load -> save differs (%zu vs %zu bytes)", c->name,
				 r1.len, r2.len);
		/* Loading its own record again changes nothing. */
		assert_int_equal(c->ops->load(b, c->ops->version, r2.data, r2.len), 0);
		buf_free(&r3);
		save(c, b, &r3);
		assert_int_equal(r3.len, r1.len);
		assert_memory_equal(r3.data, r1.data, r1.len);
		buf_free(&r1);
		buf_free(&r2);
		buf_free(&r3);
		free(a);
		free(b);
	}
}

/* The reset op gives the same state as a fresh device. */
static void test_reset_is_fresh(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(dev_cases); i++) {
		const struct dev_case *c = &dev_cases[i];
		void *a = calloc(1, c->size), *b = calloc(1, c->size);
		struct buf r1, r2;

		c->busy(a);
		c->ops->reset(a);
		c->fresh(b);
		save(c, a, &r1);
		save(c, b, &r2);
		if (r1.len != r2.len || memcmp(r1.data, r2.data, r1.len))
			fail_msg("%s: reset state differs from a fresh device", c->name);
		buf_free(&r1);
		buf_free(&r2);
		free(a);
		free(b);
	}
}

/* Tries one bad record on a device in the busy state. Returns NULL when
 * load returned want and left the device as it was, else why not (in
 * why). */
static const char *refusal_mismatch(const struct dev_case *c, uint32_t version,
				    const uint8_t *data, size_t len, int want, const char *what,
				    char *why, size_t n)
{
	void *dev = calloc(1, c->size), *copy = malloc(c->size);
	int ret;

	assert_true(dev && copy);
	c->busy(dev);
	memcpy(copy, dev, c->size);
	ret = c->ops->load(dev, version, data, len);
	if (ret != want)
		snprintf(why, n, "%s: %s: load = %d, want %d", c->name, what, ret, want);
	else if (memcmp(dev, copy, c->size))
		snprintf(why, n, "%s: %s: a refused load changed the device", c->name, what);
	else
		why = NULL;
	free(dev);
	free(copy);
	return why;
}

static void expect_refused(const struct dev_case *c, uint32_t version, const uint8_t *data,
			   size_t len, int want, const char *what)
{
	char why[256];

	if (refusal_mismatch(c, version, data, len, want, what, why, sizeof(why)))
		fail_msg("%s", why);
}

static void test_load_rejects(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(dev_cases); i++) {
		const struct dev_case *c = &dev_cases[i];
		void *a = calloc(1, c->size);
		struct buf rec, longer = { 0 };
		char what[64];

		/* A record different from the busy state, so a change shows. */
		c->fresh(a);
		save(c, a, &rec);
		expect_refused(c, c->ops->version + 1, rec.data, rec.len, -EPROTO, "version + 1");
		expect_refused(c, 0, rec.data, rec.len, -EPROTO, "version 0");
		for (size_t n = 0; n < rec.len; n++) {
			/* An exact-size copy: ASan sees any read past the record. */
			uint8_t *cut = malloc(n ? n : 1);

			memcpy(cut, rec.data, n);
			snprintf(what, sizeof(what), "truncated to %zu of %zu bytes", n, rec.len);
			expect_refused(c, c->ops->version, cut, n, -EINVAL, what);
			free(cut);
		}
		buf_put(&longer, rec.data, rec.len);
		buf_put_u8(&longer, 0);
		expect_refused(c, c->ops->version, longer.data, longer.len, -EINVAL,
			       "a trailing byte");
		for (unsigned k = 0; k < ARRAY_SIZE(c->corrupt) && c->corrupt[k]; k++) {
			struct buf bad = { 0 };

			buf_put(&bad, rec.data, rec.len);
			c->corrupt[k](&bad);
			snprintf(what, sizeof(what), "out-of-range field #%u", k);
			expect_refused(c, c->ops->version, bad.data, bad.len, -EINVAL, what);
			buf_free(&bad);
		}
		buf_free(&longer);
		buf_free(&rec);
		free(a);
	}
}

/* Both serial FIFOs' content survives in order, and the interrupt line is
 * driven from the loaded state: the bytes the source's console had not
 * taken come out on the destination's. */
static void test_serial_migrates_fifo(void **state)
{
	struct serial_fix a, b;
	struct buf rec;

	(void)state;
	serial_busy(&a);
	save(&dev_cases[0], &a, &rec);
	serial_fix_init(&b);
	b.irq.calls = 0;
	assert_int_equal(serial_device_ops.version, 2);
	assert_int_equal(serial_device_ops.load(&b.s, 2, rec.data, rec.len), 0);
	assert_true(b.irq.level);
	assert_int_equal(b.irq.calls, 1);
	assert_int_equal(b.out.n, 0); /* a load sends nothing by itself */
	assert_int_equal(serial_tx_pending(&b.s), 3);
	assert_int_equal(sr(&a, IIR), sr(&b, IIR));
	assert_int_equal(sr(&a, LSR), sr(&b, LSR));
	assert_false(sr(&b, LSR) & 0x20);
	for (unsigned i = 0; i < SERIAL_FIFO + 1; i++)
		assert_int_equal(sr(&a, RBR), sr(&b, RBR));
	assert_int_equal(sr(&a, SCR), sr(&b, SCR));
	assert_int_equal(serial_tx_drain(&b.s), 0);
	assert_int_equal(b.out.n, 3);
	assert_memory_equal(b.out.bytes, "cwx", 3);
	assert_int_equal(sr(&b, LSR), 0x60);
	assert_int_equal(sr(&b, IIR), 0xc2); /* RX read empty above: THRE shows */
	buf_free(&rec);
}

/* A version-1 record (an older ferry's: no TX FIFO) loads, with THR
 * empty; a version-2 record is not taken for one. */
static void test_serial_loads_v1(void **state)
{
	/* ier lcr mcr msr scr dll dlm fcr lsr_err thr_ipending, rx_count, rx */
	const uint8_t v1[] = { 0x03, 0x03, 0x0b, 0xb0, 0x42, 0x01, 0x00, 0x81, 0x00, 0x01,
			       2, 'h', 'i' };
	struct serial_fix f;
	struct buf rec;

	(void)state;
	serial_fix_init(&f);
	assert_int_equal(serial_device_ops.load(&f.s, 1, v1, sizeof(v1)), 0);
	assert_int_equal(serial_tx_pending(&f.s), 0);
	assert_int_equal(sr(&f, SCR), 0x42);
	assert_int_equal(sr(&f, LSR), 0x61);
	assert_int_equal(sr(&f, IIR), 0xc4);
	assert_int_equal(sr(&f, RBR), 'h');
	assert_int_equal(sr(&f, RBR), 'i');
	assert_int_equal(sr(&f, IIR), 0xc2);
	/* Saved again, it is a version-2 record with an empty TX FIFO. */
	save(&dev_cases[0], &f, &rec);
	assert_int_equal(rec.len, 10 + 1 + 1);
	assert_int_equal(rec.data[11], 0);
	/* Read as version 1, a version-2 record has a trailing byte; a
	 * version-1 record read as version 2 is short. */
	expect_refused(&dev_cases[0], 1, rec.data, rec.len, -EINVAL, "v2 record as v1");
	expect_refused(&dev_cases[0], 2, v1, sizeof(v1), -EINVAL, "v1 record as v2");
	buf_free(&rec);
}

/* The PM timer continues from its saved value on a host whose clock
 * started elsewhere. */
static void test_pm_timer_migrates(void **state)
{
	struct pm_fix a, b;
	struct buf rec;
	uint32_t t;

	(void)state;
	pm_fix_init(&a);
	fake_ns = 5000000000ull;
	t = acpi_pm_timer(&a.pm);
	save(&dev_cases[2], &a, &rec);
	pm_fix_init(&b);
	fake_ns = 123000000000ull;
	assert_int_equal(acpi_pm_device_ops.load(&b.pm, 1, rec.data, rec.len), 0);
	assert_int_equal(acpi_pm_timer(&b.pm), t);
	{
		struct buf again;

		save(&dev_cases[2], &b, &again);
		assert_int_equal(again.len, rec.len);
		assert_memory_equal(again.data, rec.data, rec.len);
		buf_free(&again);
	}
	fake_ns += 1000000000ull;
	assert_int_equal(acpi_pm_timer(&b.pm), t + 3579545u);
	buf_free(&rec);
}

/* The RTC keeps the guest's wall clock across a migration. */
static void test_rtc_migrates(void **state)
{
	struct rtc a, b;
	struct buf rec;

	(void)state;
	rtc_busy(&a);
	save(&dev_cases[3], &a, &rec);
	rtc_init(&b, MiB(64), 0); /* the record brings the source's CMOS */
	assert_int_equal(rtc_device_ops.load(&b, 1, rec.data, rec.len), 0);
	assert_int_equal(rtc_rd(&b, 0x09), 31);
	assert_int_equal(rtc_rd(&b, 0x08), 7);
	assert_int_equal(rtc_rd(&b, 0x07), 4);
	assert_int_equal(rtc_rd(&b, 0x50), 0xab);
	/* The loaded memory sizes are the source's. */
	assert_int_equal(rtc_rd(&b, 0x34) | rtc_rd(&b, 0x35) << 8, (MiB(512) - MiB(16)) >> 16);
	buf_free(&rec);
}

/* Fields no running device can hold, found by reading rtc.c and
 * acpi_pm.c. Each test is one finding. */

/* The RTC's offset beyond any date a guest can write: reading the clock
 * then overflows time_t arithmetic (INT64_MAX: signed overflow in
 * rtc_now()) or makes gmtime_r() fail and leaves struct tm uninitialised
 * (1e17 s). Guest-writable dates span years 0..16599 (century byte up to
 * BCD 0xff), i.e. |offset| < 2^39 s. */
static void test_rtc_load_rejects_huge_offset(void **state)
{
	static const int64_t bad[] = { INT64_MAX, INT64_MIN, 100000000000000000ll,
				       -100000000000000000ll };
	struct rtc r;
	struct buf rec;
	char what[64], why[256], all[1024] = "";

	(void)state;
	rtc_busy(&r);
	save(&dev_cases[3], &r, &rec);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		put_le64(rec.data + 1, (uint64_t)bad[i]);
		snprintf(what, sizeof(what), "offset %lld s", (long long)bad[i]);
		if (refusal_mismatch(&dev_cases[3], 1, rec.data, rec.len, -EINVAL, what, why,
				     sizeof(why)))
			snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s; ", why);
	}
	buf_free(&rec);
	if (all[0])
		fail_msg("%s", all);
}

/* UIP (register A bit 7) is read-only (writes mask it); a record with it
 * set would show the guest an update in progress forever (Linux's
 * mc146818_get_time() then gives up). */
static void test_rtc_load_rejects_uip(void **state)
{
	struct rtc r;
	struct buf rec;
	char why[256];
	const char *bad;

	(void)state;
	rtc_busy(&r);
	save(&dev_cases[3], &r, &rec);
	rec.data[9 + 0x0a] |= 0x80;
	bad = refusal_mismatch(&dev_cases[3], 1, rec.data, rec.len, -EINVAL, "register A UIP",
			       why, sizeof(why));
	buf_free(&rec);
	if (bad)
		fail_msg("%s", bad);
}

/* SCI_EN is forced on by every PM1_CNT write and at reset; a record
 * without it tells the guest ACPI mode is off. */
static void test_pm_load_rejects_sci_en_clear(void **state)
{
	struct pm_fix f;
	struct buf rec;
	char why[256];
	const char *bad;

	(void)state;
	pm_busy(&f);
	save(&dev_cases[2], &f, &rec);
	rec.data[4] &= (uint8_t)~1;
	bad = refusal_mismatch(&dev_cases[2], 1, rec.data, rec.len, -EINVAL,
			       "PM1_CNT without SCI_EN", why, sizeof(why));
	buf_free(&rec);
	if (bad)
		fail_msg("%s", bad);
}

/* Whatever date a guest sets, its own save must load again: a century of
 * 0xFF in binary mode (year 25,5xx) is clamped, not refused at restore. */
static void test_rtc_far_future_still_loads(void **state)
{
	struct rtc a, b;
	struct buf rec = { 0 };

	(void)state;
	rtc_init(&a, MiB(64), 0);
	rtc_init(&b, MiB(64), 0);
	rtc_wr(&a, 0x0b, 0x06); /* binary, 24 h */
	rtc_wr(&a, 0x32, 0xff);
	assert_int_equal(rtc_device_ops.save(&a, &rec), 0);
	assert_int_equal(rtc_device_ops.load(&b, 1, rec.data, rec.len), 0);
	rtc_wr(&a, 0x32, 0x00);
	buf_free(&rec);
	assert_int_equal(rtc_device_ops.save(&a, &rec), 0);
	assert_int_equal(rtc_device_ops.load(&b, 1, rec.data, rec.len), 0);
	buf_free(&rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_reset_state),
		cmocka_unit_test(test_serial_transmit),
		cmocka_unit_test(test_serial_tx_backpressure),
		cmocka_unit_test(test_serial_tx_thr_only),
		cmocka_unit_test(test_serial_tx_clear),
		cmocka_unit_test(test_serial_divisor_latch),
		cmocka_unit_test(test_serial_scratch),
		cmocka_unit_test(test_serial_loopback_probe),
		cmocka_unit_test(test_serial_loopback_data),
		cmocka_unit_test(test_serial_fifo_iir),
		cmocka_unit_test(test_serial_rx_fifo),
		cmocka_unit_test(test_serial_rx_irq),
		cmocka_unit_test(test_serial_thre_irq),
		cmocka_unit_test(test_i8042_self_test),
		cmocka_unit_test(test_i8042_reset),
		cmocka_unit_test(test_i8042_command_byte),
		cmocka_unit_test(test_pm_poweroff),
		cmocka_unit_test(test_pm_other_sleep_types),
		cmocka_unit_test(test_pm_sci_en),
		cmocka_unit_test(test_pm_power_button),
		cmocka_unit_test(test_pm_timer),
		cmocka_unit_test(test_pm_sci_level),
		cmocka_unit_test(test_cf9),
		cmocka_unit_test(test_rtc_reset_state),
		cmocka_unit_test(test_rtc_now),
		cmocka_unit_test(test_rtc_bcd_binary),
		cmocka_unit_test(test_rtc_12_hour),
		cmocka_unit_test(test_rtc_set_date_sequence),
		cmocka_unit_test(test_rtc_status_registers),
		cmocka_unit_test(test_bus),
		cmocka_unit_test(test_device_register),
		cmocka_unit_test(test_save_load_save),
		cmocka_unit_test(test_reset_is_fresh),
		cmocka_unit_test(test_load_rejects),
		cmocka_unit_test(test_serial_migrates_fifo),
		cmocka_unit_test(test_serial_loads_v1),
		cmocka_unit_test(test_pm_timer_migrates),
		cmocka_unit_test(test_rtc_migrates),
		cmocka_unit_test(test_rtc_load_rejects_huge_offset),
		cmocka_unit_test(test_rtc_load_rejects_uip),
		cmocka_unit_test(test_pm_load_rejects_sci_en_clear),
		cmocka_unit_test(test_rtc_far_future_still_loads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
