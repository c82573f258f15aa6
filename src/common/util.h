/* Small helpers shared by every layer: sizes, alignment, checked arithmetic,
 * little-endian access, whole-file reads. */
#ifndef FERRY_COMMON_UTIL_H
#define FERRY_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KiB(x) ((uint64_t)(x) << 10)
#define MiB(x) ((uint64_t)(x) << 20)
#define GiB(x) ((uint64_t)(x) << 30)

#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* True when [off, off + len) lies inside [0, size), without overflow. */
static inline bool range_within(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

static inline uint16_t get_le16(const void *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint32_t get_le32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t get_le64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void put_le16(void *p, uint16_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void put_le32(void *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

static inline void put_le64(void *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* Reads a whole regular file into a malloc'd buffer. Returns 0 or -errno;
 * on success *data must be freed by the caller. max_size bounds what is
 * accepted (-EFBIG beyond it). */
int file_read_all(const char *path, size_t max_size, uint8_t **data, size_t *size);

/* Parses a decimal unsigned integer that must fill the whole string.
 * Returns 0 or -EINVAL / -ERANGE. */
int parse_u64(const char *s, uint64_t *out);

/* Removes path if it is a socket (a stale one from an earlier run), and
 * nothing else: a socket path given by mistake never deletes a file. */
void unlink_stale_socket(const char *path);

/* Monotonic time in nanoseconds. */
uint64_t time_now_ns(void);

/* Wall-clock time in seconds and microseconds (for events). */
void time_wall(int64_t *sec, int64_t *usec);

#endif
