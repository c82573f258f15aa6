#include "devices/rtc.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

#define RTC_SEC 0x00
#define RTC_MIN 0x02
#define RTC_HOUR 0x04
#define RTC_WDAY 0x06
#define RTC_MDAY 0x07
#define RTC_MON 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d
#define RTC_CENTURY 0x32

#define REG_A_UIP 0x80
#define REG_B_SET 0x80
#define REG_B_24H 0x02
#define REG_B_BINARY 0x04
#define RTC_MAX_OFFSET (1ll << 40) /* ~34,800 years: guest writes are clamped to it */

static uint8_t rtc_to_guest(const struct rtc *r, int v)
{
	return (r->s.cmos[RTC_REG_B] & REG_B_BINARY) ? (uint8_t)v : (uint8_t)(((v / 10) << 4) | (v % 10));
}

static int rtc_from_guest(const struct rtc *r, uint8_t v)
{
	return (r->s.cmos[RTC_REG_B] & REG_B_BINARY) ? v : ((v >> 4) * 10 + (v & 0x0f));
}

static void rtc_now(const struct rtc *r, struct tm *tm)
{
	time_t t = time(NULL) + (time_t)r->s.offset;

	gmtime_r(&t, tm);
}

static uint8_t rtc_hour_out(const struct rtc *r, int hour)
{
	if (r->s.cmos[RTC_REG_B] & REG_B_24H)
		return rtc_to_guest(r, hour);
	/* 12-hour mode: 12, 1..11 with bit 7 for PM. */
	return (uint8_t)(rtc_to_guest(r, hour % 12 ? hour % 12 : 12) | (hour >= 12 ? 0x80 : 0));
}

static int rtc_hour_in(const struct rtc *r, uint8_t v)
{
	int h;

	if (r->s.cmos[RTC_REG_B] & REG_B_24H)
		return rtc_from_guest(r, v);
	h = rtc_from_guest(r, v & 0x7f) % 12;
	return (v & 0x80) ? h + 12 : h;
}

static uint8_t rtc_time_reg(const struct rtc *r, unsigned reg)
{
	struct tm tm;

	rtc_now(r, &tm);
	switch (reg) {
	case RTC_SEC: return rtc_to_guest(r, tm.tm_sec);
	case RTC_MIN: return rtc_to_guest(r, tm.tm_min);
	case RTC_HOUR: return rtc_hour_out(r, tm.tm_hour);
	case RTC_WDAY: return rtc_to_guest(r, tm.tm_wday + 1);
	case RTC_MDAY: return rtc_to_guest(r, tm.tm_mday);
	case RTC_MON: return rtc_to_guest(r, tm.tm_mon + 1);
	case RTC_YEAR: return rtc_to_guest(r, tm.tm_year % 100);
	default: return rtc_to_guest(r, (tm.tm_year + 1900) / 100);
	}
}

/* Whatever date the guest writes, the offset stays within what a saved
 * rtc record may hold, so that a VM's own save always restores. */
static void rtc_set_offset(struct rtc *r, int64_t offset)
{
	r->s.offset = MAX(MIN(offset, RTC_MAX_OFFSET), -RTC_MAX_OFFSET);
}

/* A write to a time register moves the guest's clock: recompute the
 * offset so that the register now reads the written value. */
static void rtc_set_time_reg(struct rtc *r, unsigned reg, uint8_t v)
{
	struct tm tm;
	time_t now = time(NULL), t;

	rtc_now(r, &tm);
	switch (reg) {
	case RTC_SEC: tm.tm_sec = rtc_from_guest(r, v); break;
	case RTC_MIN: tm.tm_min = rtc_from_guest(r, v); break;
	case RTC_HOUR: tm.tm_hour = rtc_hour_in(r, v); break;
	case RTC_MDAY: tm.tm_mday = rtc_from_guest(r, v); break;
	case RTC_MON: tm.tm_mon = rtc_from_guest(r, v) - 1; break;
	case RTC_YEAR: tm.tm_year = (tm.tm_year / 100) * 100 + rtc_from_guest(r, v); break;
	case RTC_CENTURY: tm.tm_year = (rtc_from_guest(r, v) - 19) * 100 + tm.tm_year % 100; break;
	default: return; /* day of week follows from the date */
	}
	t = timegm(&tm);
	if (t != (time_t)-1)
		rtc_set_offset(r, (int64_t)(t - now));
}

static bool rtc_is_time_reg(unsigned reg)
{
	switch (reg) {
	case RTC_SEC: case RTC_MIN: case RTC_HOUR: case RTC_WDAY:
	case RTC_MDAY: case RTC_MON: case RTC_YEAR: case RTC_CENTURY:
		return true;
	default:
		return false; /* alarms (1, 3, 5) are plain CMOS bytes */
	}
}

/* While register B's SET bit is on, the clock is frozen: the time registers
 * hold what the guest writes, one at a time, and only clearing SET makes
 * them the new time (so "Jan 31" -> "Feb 28" never passes "Feb 31"). */
static const uint8_t rtc_time_regs[] = { RTC_SEC, RTC_MIN, RTC_HOUR, RTC_WDAY, RTC_MDAY,
					 RTC_MON, RTC_YEAR, RTC_CENTURY };

static void rtc_freeze(struct rtc *r)
{
	for (unsigned i = 0; i < sizeof(rtc_time_regs); i++)
		r->s.cmos[rtc_time_regs[i]] = rtc_time_reg(r, rtc_time_regs[i]);
}

static void rtc_thaw(struct rtc *r)
{
	const uint8_t *c = r->s.cmos;
	struct tm tm = {
		.tm_sec = rtc_from_guest(r, c[RTC_SEC]),
		.tm_min = rtc_from_guest(r, c[RTC_MIN]),
		.tm_hour = rtc_hour_in(r, c[RTC_HOUR]),
		.tm_mday = rtc_from_guest(r, c[RTC_MDAY]),
		.tm_mon = rtc_from_guest(r, c[RTC_MON]) - 1,
		.tm_year = rtc_from_guest(r, c[RTC_CENTURY]) * 100 + rtc_from_guest(r, c[RTC_YEAR]) -
			   1900,
	};
	time_t t = timegm(&tm);

	if (t != (time_t)-1)
		rtc_set_offset(r, (int64_t)(t - time(NULL)));
}

static void rtc_write_b(struct rtc *r, uint8_t v)
{
	uint8_t old = r->s.cmos[RTC_REG_B];

	if ((old & REG_B_SET) && !(v & REG_B_SET))
		rtc_thaw(r); /* in the mode the registers were written in */
	r->s.cmos[RTC_REG_B] = v;
	if (!(old & REG_B_SET) && (v & REG_B_SET))
		rtc_freeze(r);
}

static void rtc_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct rtc *r = dev;
	unsigned reg = r->s.index & 0x7f;

	memset(data, 0, size);
	if (off == 0) {
		data[0] = 0xff;
		return;
	}
	if (rtc_is_time_reg(reg) && !(r->s.cmos[RTC_REG_B] & REG_B_SET)) {
		data[0] = rtc_time_reg(r, reg);
	} else if (reg == RTC_REG_C) {
		data[0] = r->s.cmos[reg];
		r->s.cmos[reg] = 0; /* reading C acknowledges */
	} else {
		data[0] = r->s.cmos[reg];
	}
}

static void rtc_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct rtc *r = dev;
	unsigned reg = r->s.index & 0x7f;

	(void)size;
	if (off == 0) {
		r->s.index = data[0];
		return;
	}
	if (rtc_is_time_reg(reg) && (r->s.cmos[RTC_REG_B] & REG_B_SET))
		r->s.cmos[reg] = data[0];
	else if (rtc_is_time_reg(reg))
		rtc_set_time_reg(r, reg, data[0]);
	else if (reg == RTC_REG_B)
		rtc_write_b(r, data[0]);
	else if (reg == RTC_REG_A)
		r->s.cmos[reg] = data[0] & ~REG_A_UIP; /* UIP is read-only */
	else if (reg == RTC_REG_C || reg == RTC_REG_D)
		return; /* read-only */
	else
		r->s.cmos[reg] = data[0];
}

const struct bus_ops rtc_bus_ops = {
	.read = rtc_read,
	.write = rtc_write,
};

static void rtc_put16(struct rtc *r, unsigned reg, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	r->s.cmos[reg] = (uint8_t)v;
	r->s.cmos[reg + 1] = (uint8_t)(v >> 8);
}

static void rtc_reset(void *dev)
{
	struct rtc *r = dev;
	uint64_t above_1m = r->ram_low > 0x100000 ? (r->ram_low - 0x100000) >> 10 : 0;
	uint64_t above_16m = r->ram_low > 0x1000000 ? (r->ram_low - 0x1000000) >> 16 : 0;
	uint64_t above_4g = r->ram_high >> 16;

	memset(&r->s, 0, sizeof(r->s));
	r->s.cmos[RTC_REG_A] = 0x26; /* 32.768 kHz time base, 1024 Hz rate */
	r->s.cmos[RTC_REG_B] = REG_B_24H;
	r->s.cmos[RTC_REG_D] = 0x80; /* valid RAM and time */
	rtc_put16(r, 0x15, 640);     /* base memory, KiB */
	rtc_put16(r, 0x17, above_1m);
	rtc_put16(r, 0x30, above_1m);
	rtc_put16(r, 0x34, above_16m);
	r->s.cmos[0x5b] = (uint8_t)above_4g;
	r->s.cmos[0x5c] = (uint8_t)(above_4g >> 8);
	r->s.cmos[0x5d] = (uint8_t)(above_4g >> 16);
}

void rtc_init(struct rtc *r, uint64_t ram_low, uint64_t ram_high)
{
	memset(r, 0, sizeof(*r));
	r->ram_low = ram_low;
	r->ram_high = ram_high;
	rtc_reset(r);
}

static int rtc_save(void *dev, struct buf *out)
{
	const struct rtc_state *s = &((struct rtc *)dev)->s;

	buf_put_u8(out, s->index);
	buf_put_u64(out, (uint64_t)s->offset);
	buf_put(out, s->cmos, sizeof(s->cmos));
	return buf_finish(out);
}

static int rtc_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct rtc_state s;
	struct reader r;

	if (version != 1)
		return -EPROTO;
	reader_init(&r, data, len);
	s.index = reader_u8(&r);
	s.offset = (int64_t)reader_u64(&r);
	reader_get(&r, s.cmos, sizeof(s.cmos));
	if (reader_finish(&r) || s.offset > RTC_MAX_OFFSET || s.offset < -RTC_MAX_OFFSET ||
	    (s.cmos[RTC_REG_A] & REG_A_UIP))
		return -EINVAL;
	((struct rtc *)dev)->s = s;
	return 0;
}

const struct device_ops rtc_device_ops = {
	.name = "rtc",
	.version = 1,
	.save = rtc_save,
	.load = rtc_load,
	.reset = rtc_reset,
};
