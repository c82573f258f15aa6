/* Freestanding C library bits (ring 0 and ring 3): memory, strings and a
 * small formatter. Compiled without SSE so ring 0 may use it. */
#ifndef FERRY_GUEST_LIB_H
#define FERRY_GUEST_LIB_H

#include "types.h"
#include "pattern.h" /* mix64 */

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);

/* Format into buf (always NUL-terminated when size > 0). Supports %s %c %d
 * %u %x %p with optional '0' flag, width and l/ll/z modifiers. Returns the
 * length written (truncated to size - 1). */
int fmt_vsn(char *buf, size_t size, const char *fmt, va_list ap);
int fmt_sn(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parse a decimal u64 from [s, s + n); returns false on anything else
 * (empty, non-digit, overflow). */
bool parse_u64(const char *s, size_t n, u64 *out);

#endif
