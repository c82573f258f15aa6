/*
 * The ACPI power button (QMP system_powerdown, `ferry shutdown`): Linux's
 * button driver makes it an input device with KEY_POWER, which evdev
 * gives a /dev/input/event* node. Needs the button and evdev modules
 * loaded and devtmpfs on /dev.
 */
#ifndef FERRY_AGENT_BUTTON_H
#define FERRY_AGENT_BUTTON_H

#include <stdbool.h>

#define BUTTONS_MAX 4

struct buttons {
	int fd[BUTTONS_MAX];    /* event devices with KEY_POWER, non-blocking */
	unsigned n;
};

/* Opens every /dev/input/event* that reports KEY_POWER (EVIOCGBIT), up
 * to BUTTONS_MAX. Returns 0 (b->n may be 0: none, or no /dev/input), or
 * -errno when /dev/input cannot be read. */
int buttons_open(struct buttons *b);

/* Reads the events waiting on fd: true if one is a press of KEY_POWER. */
bool button_pressed(int fd);

#endif
