/* The CMOS RTC (MC146818): wall-clock time kept as an offset from the
 * host's clock, BCD/binary and 12/24-hour modes, status registers A-D and
 * the CMOS bytes (with the memory-size fields PC firmware reads). No
 * periodic, alarm or update interrupts yet. */
#ifndef FERRY_DEVICES_RTC_H
#define FERRY_DEVICES_RTC_H

#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

struct rtc_state {
	uint8_t cmos[128]; /* time registers are computed, not read from here */
	uint8_t index;     /* selected register; bit 7 masks NMI */
	int64_t offset;    /* guest time - host time, seconds */
};

struct rtc {
	struct rtc_state s;
	uint64_t ram_low, ram_high; /* for the memory-size bytes at reset */
};

extern const struct bus_ops rtc_bus_ops; /* ports 0x70-0x71 */
extern const struct device_ops rtc_device_ops;

void rtc_init(struct rtc *r, uint64_t ram_low, uint64_t ram_high);

#endif
