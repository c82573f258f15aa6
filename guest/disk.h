/*
 * The disks of the workload (ring 3): virtio-blk devices found on PCI bus
 * 0, named vda, vdb, ... in scan order, checked at start (digest, serial,
 * read-only), and optionally driven by the record writer (disk_writer.c)
 * or the benchmark (disk_bench.c). See guest/README.md for the console
 * lines and the record layout.
 */
#ifndef FERRY_GUEST_DISK_H
#define FERRY_GUEST_DISK_H

#include "types.h"
#include "virtio_blk.h"

#define DISK_MAX        8
#define DISK_HASH_MAX   (64 * MiB)      /* larger disks are not digested */
#define DISK_IO_BYTES   MiB             /* the shared I/O buffer */

/* Print a line per virtio function among found[0..n) (a scan of PCI bus
 * 0 for the virtio vendor ID), set up every virtio-blk device with its
 * interrupts aimed at CPU irq_cpu, and check
 * each disk: size, digest (up to DISK_HASH_MAX), serial, and for a
 * read-only one a write of sector 0 that must be refused. CPU 0, before
 * "ready". A disk that misbehaves is dropped with a warning. */
void disk_init(const struct pci_dev *found, u32 n, u32 irq_cpu);

/* The first disk (the first writable one if writable); NULL if none. */
struct vblk *disk_first(bool writable);

/* One line per disk with its interrupt counts ("ferry-agent disk=vdX
 * irqs=N config_irqs=M"), e.g. before power-off. */
void disk_report(void);

/* DISK_IO_BYTES, 4 KiB aligned, for one user at a time (start-up checks,
 * then the benchmark). */
extern u8 disk_io_buf[];

/*
 * Record writer (ferry.disk-writer=RATE KiB/s): 4 KiB records written in
 * sequence around the disk, each read back later and checked. dwriter_init
 * prints the start line (CPU 0, before "ready"); dwriter_tick runs on one
 * CPU only, from its 10 ms tick loop, and never waits for the device for
 * more than DWRITER_BUDGET_US at a time; while a request is in flight,
 * dwriter_wake() asks that CPU to come back after DWRITER_POLL_US rather
 * than at its next tick, so a slow request does not cost a whole tick.
 */
#define DWRITER_BUDGET_US       1000
#define DWRITER_POLL_US         1000

struct dwriter_stats {
	volatile u64 written;   /* records whose write completed OK */
	volatile u64 corrupt;   /* bad read-backs + failed requests */
};

extern struct dwriter_stats dwriter_stats;

int dwriter_init(struct vblk *b, u64 rate_kib);
bool dwriter_active(void);
void dwriter_tick(u64 now);
u64 dwriter_wake(u64 now);      /* TSC deadline; ~0 when nothing is pending */

/* ferry.disk-bench=SECONDS on disk b: four phases of SECONDS each (4 KiB
 * random read and write at queue depth 32, 128 KiB sequential read and
 * write at depth 8), one result line, then power-off. Writes only on a
 * writable disk (else their figures are 0). CPU 0. */
NORETURN void disk_bench(struct vblk *b, u64 seconds);

#endif
