/*
 * The serial console (16550 at COM1, 0x3f8), shared by ring 0 and ring 3.
 * Ring 3 drives the UART directly: the TSS I/O bitmap opens 0x3f8-0x3ff
 * (IOPL=3 does not work on kvm_pvm). A spinlock keeps lines from different
 * CPUs from interleaving; every output call writes whole lines.
 */
#ifndef FERRY_GUEST_CONSOLE_H
#define FERRY_GUEST_CONSOLE_H

#include "types.h"

/* Program the UART (8N1, FIFO on). Ring 0, boot CPU, before any output. */
void console_init(void);

/* Write n bytes under the console lock. */
void console_write(const char *s, size_t n);

/* Format one line (at most 512 bytes, caller supplies the '\n') and write
 * it under the console lock. */
void console_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* For panics: take the lock if it can be had within a bounded spin, else
 * write anyway (the holder may be the CPU that faulted). */
void console_printf_force(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

#endif
