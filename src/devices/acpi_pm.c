#include "devices/acpi_pm.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

#define PM1_EVT_STS 0
#define PM1_EVT_EN 2
#define PM1_CNT 4
#define PM_TMR 8

#define PM1_CNT_SCI_EN 0x0001
#define PM1_CNT_SLP_EN 0x2000
#define PM1_CNT_SLP_TYP(v) (((v) >> 10) & 7)
#define PM1_STS_TMR 0x0001
#define PM1_STS_PWRBTN 0x0100
#define PM1_STS_WAK 0x8000

static uint32_t acpi_pm_ticks(const struct acpi_pm *pm)
{
	uint64_t ns = pm->now_ns();

	/* ns * 3579545 / 1e9 without overflow for centuries of uptime. */
	return (uint32_t)((ns / 1000000000ull) * ACPI_PM_TIMER_HZ +
			  (ns % 1000000000ull) * ACPI_PM_TIMER_HZ / 1000000000ull);
}

uint32_t acpi_pm_timer(const struct acpi_pm *pm)
{
	return acpi_pm_ticks(pm) + pm->s.tmr_base;
}

static void acpi_pm_update_sci(struct acpi_pm *pm)
{
	irq_line_set(&pm->sci, (pm->s.pm1_sts & pm->s.pm1_en) != 0);
}

void acpi_pm_power_button(struct acpi_pm *pm)
{
	/* ACPI 6 4.8.3.1.1: PWRBTN_STS is set on a press; with PWRBTN_EN the
	 * SCI is raised until the guest writes the bit back. */
	pm->s.pm1_sts |= PM1_STS_PWRBTN;
	acpi_pm_update_sci(pm);
}

static void acpi_pm_cnt_write(struct acpi_pm *pm, uint16_t v)
{
	/* SCI_EN stays set: ferry has no SMI, ACPI mode is permanent. */
	pm->s.pm1_cnt = (uint16_t)((v & ~PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN);
	if ((v & PM1_CNT_SLP_EN) && PM1_CNT_SLP_TYP(v) == pm->s5_typ)
		machine_request(&pm->machine, MACHINE_POWEROFF);
	/* Other sleep states are not supported: the write is ignored, the
	 * guest keeps running, as with a chipset that lacks them. */
}

static uint32_t acpi_pm_reg_read(struct acpi_pm *pm, unsigned off)
{
	switch (off) {
	case PM1_EVT_STS: return pm->s.pm1_sts;
	case PM1_EVT_EN: return pm->s.pm1_en;
	case PM1_CNT: return pm->s.pm1_cnt;
	case PM_TMR: return acpi_pm_timer(pm);
	default: return 0;
	}
}

static void acpi_pm_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = dev;
	uint64_t v = 0;

	/* Byte accesses to the middle of a register read its upper part. */
	if (off >= PM_TMR)
		v = (uint64_t)acpi_pm_reg_read(pm, PM_TMR) >> ((off - PM_TMR) * 8);
	else
		v = acpi_pm_reg_read(pm, (unsigned)(off & ~1ull)) >> ((off & 1) * 8);
	memcpy(data, &v, size);
}

static void acpi_pm_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = dev;
	uint16_t v = size >= 2 ? get_le16(data) : data[0];

	switch (off) {
	case PM1_EVT_STS:
		pm->s.pm1_sts &= (uint16_t)~v; /* write 1 to clear */
		break;
	case PM1_EVT_EN:
		pm->s.pm1_en = v;
		break;
	case PM1_CNT:
		acpi_pm_cnt_write(pm, v);
		break;
	default:
		break; /* the timer is read-only */
	}
	acpi_pm_update_sci(pm);
}

const struct bus_ops acpi_pm_bus_ops = {
	.read = acpi_pm_read,
	.write = acpi_pm_write,
};

static void acpi_cf9_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = dev;

	(void)off;
	memset(data, 0, size);
	data[0] = pm->s.cf9;
}

static void acpi_cf9_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct acpi_pm *pm = dev;

	(void)off, (void)size;
	/* Bit 2 starts the reset that bit 1 chose (hard or soft): both are a
	 * reset of the whole machine here. */
	if (data[0] & 0x04)
		machine_request(&pm->machine, MACHINE_RESET);
	pm->s.cf9 = data[0] & 0x0a;
}

const struct bus_ops acpi_cf9_bus_ops = {
	.read = acpi_cf9_read,
	.write = acpi_cf9_write,
};

static void acpi_pm_reset(void *dev)
{
	struct acpi_pm *pm = dev;

	memset(&pm->s, 0, sizeof(pm->s));
	pm->s.pm1_cnt = PM1_CNT_SCI_EN;
	pm->s.tmr_base = (uint32_t)0 - acpi_pm_ticks(pm); /* the timer starts at 0 */
	acpi_pm_update_sci(pm);
}

void acpi_pm_init(struct acpi_pm *pm, struct machine_link machine, struct irq_line sci,
		  uint8_t s5_typ)
{
	memset(pm, 0, sizeof(*pm));
	pm->machine = machine;
	pm->sci = sci;
	pm->s5_typ = s5_typ;
	pm->now_ns = time_now_ns;
	acpi_pm_reset(pm);
}

/* The timer is saved as its current value, so that it continues from there
 * on another host whose clock started elsewhere. */
static int acpi_pm_save(void *dev, struct buf *out)
{
	struct acpi_pm *pm = dev;

	buf_put_u16(out, pm->s.pm1_sts);
	buf_put_u16(out, pm->s.pm1_en);
	buf_put_u16(out, pm->s.pm1_cnt);
	buf_put_u8(out, pm->s.cf9);
	buf_put_u32(out, acpi_pm_timer(pm));
	return buf_finish(out);
}

static int acpi_pm_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct acpi_pm *pm = dev;
	struct acpi_pm_state s;
	struct reader r;
	uint32_t timer;

	if (version != 1)
		return -EPROTO;
	reader_init(&r, data, len);
	s.pm1_sts = reader_u16(&r);
	s.pm1_en = reader_u16(&r);
	s.pm1_cnt = reader_u16(&r);
	s.cf9 = reader_u8(&r);
	timer = reader_u32(&r);
	if (reader_finish(&r) || (s.pm1_cnt & PM1_CNT_SLP_EN) || !(s.pm1_cnt & PM1_CNT_SCI_EN) ||
	    (s.cf9 & ~0x0a))
		return -EINVAL;
	s.tmr_base = timer - acpi_pm_ticks(pm);
	pm->s = s;
	acpi_pm_update_sci(pm);
	return 0;
}

const struct device_ops acpi_pm_device_ops = {
	.name = "acpi-pm",
	.version = 1,
	.save = acpi_pm_save,
	.load = acpi_pm_load,
	.reset = acpi_pm_reset,
};
