/*
 * The agent's disks, through Linux's virtio_blk: the test guest's start-up
 * lines for each /dev/vdX (guest/README.md, "Console protocol": size and
 * digest, serial, read-only and the write it refuses), and its disk
 * writer (ferry.disk-writer): the same 4 KiB records (guest/record.h)
 * around the first writable disk, so scripts/check-disk-records.py reads
 * them.
 *
 * The writer is one thread with one request in flight (O_DIRECT, each
 * pwrite returns once the device completed it), so the disk always holds
 * an unbroken run of records whatever moment the VM stops at. Order of
 * work, as the test guest's: each write is followed by the read-back of a
 * record chosen at random among the last slots written, and an fdatasync
 * (the device's FLUSH) comes every 16 records or every second. The
 * schedule is time-based (CLOCK_BOOTTIME, RATE/4 records a second); a
 * backlog over one second (a paused VM) is dropped, not caught up.
 */
#ifndef FERRY_AGENT_DISK_H
#define FERRY_AGENT_DISK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define DISK_NAME_MAX 32

struct disk_writer {
	char name[DISK_NAME_MAX];       /* "vda" */
	int fd;                         /* /dev/NAME, O_RDWR | O_DIRECT */
	uint64_t slots, nonce, rate_kib;
	uint64_t *wbuf, *rbuf, *want;   /* one record each, 4 KiB aligned */
	uint64_t rng;
	uint64_t log_window;            /* DISK-CORRUPT line rate limit (ns) */
	unsigned log_lines;
	pthread_t thread;
	bool running;
	atomic_bool stop;
	_Atomic uint64_t written;       /* records whose write completed */
	_Atomic uint64_t corrupt;       /* bad read-backs and failed requests */
};

/* One line set per virtio disk (/sys/block/vd*, in name order): size and
 * SHA-256 (of the whole disk up to 64 MiB, read before "ready"), serial,
 * read-only and whether a write to it is refused. The first writable
 * disk's name goes to writable (empty if none). Returns how many disks. */
unsigned disks_report(char writable[DISK_NAME_MAX]);

/* Starts the writer on /dev/name at rate_kib KiB/s (> 0) and prints its
 * "disk-writer" line. 0, or -errno with nothing running (reported as an
 * error line). */
int dwriter_start(struct disk_writer *d, const char *name, uint64_t rate_kib);

/* Stops the writer (within 10 ms and its request), flushes, closes. */
void dwriter_stop(struct disk_writer *d);

#endif
