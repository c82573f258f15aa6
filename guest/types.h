/* Basic types and limits shared by every file of the guest (ring 0 and 3). */
#ifndef FERRY_GUEST_TYPES_H
#define FERRY_GUEST_TYPES_H

#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int64_t s64;

#define PAGE_SIZE       ((u64)4096)
#define MiB             ((u64)1 << 20)

#define ALIGN_UP(x, a)  (((x) + (a) - 1) & ~((u64)(a) - 1))
#define ARRAY_SIZE(a)   (sizeof(a) / sizeof((a)[0]))
#define NORETURN        __attribute__((noreturn))
#define PACKED          __attribute__((packed))

/* Kernel image bounds, from guest.ld. */
extern char __image_start[], __image_end[];

#endif
