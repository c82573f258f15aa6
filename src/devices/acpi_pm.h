/* The PC's power registers: ACPI PM1a event and control blocks, the ACPI PM
 * timer (3.579545 MHz), and the reset control register at 0xCF9. Writing
 * SLP_EN with SLP_TYP = S5 (the value the DSDT's \_S5 declares) powers the
 * machine off; 0xCF9 with the reset bit resets it. */
#ifndef FERRY_DEVICES_ACPI_PM_H
#define FERRY_DEVICES_ACPI_PM_H

#include <stdint.h>

#include "devices/bus.h"
#include "devices/device.h"

#define ACPI_PM_TIMER_HZ 3579545ull

struct acpi_pm_state {
	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;
	uint8_t cf9;
	uint32_t tmr_base; /* timer value at host time 0 (mod 2^32) */
};

struct acpi_pm {
	struct acpi_pm_state s;
	struct machine_link machine;
	struct irq_line sci;
	uint8_t s5_typ;           /* SLP_TYP meaning "soft off" */
	uint64_t (*now_ns)(void); /* host clock, replaceable in tests */
};

extern const struct bus_ops acpi_pm_bus_ops; /* 12 ports at PORT_ACPI_PM */
extern const struct bus_ops acpi_cf9_bus_ops; /* 1 port at 0xCF9 */
extern const struct device_ops acpi_pm_device_ops;

void acpi_pm_init(struct acpi_pm *pm, struct machine_link machine, struct irq_line sci,
		  uint8_t s5_typ);

/* Presses the fixed-feature power button: PWRBTN_STS, and an SCI when the
 * guest enabled it (PWRBTN_EN). The caller holds the VM's I/O lock. */
void acpi_pm_power_button(struct acpi_pm *pm);

/* Current PM timer value (24 bits significant per FADT flag: 32). */
uint32_t acpi_pm_timer(const struct acpi_pm *pm);

#endif
