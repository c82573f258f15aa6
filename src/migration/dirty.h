/* Which guest pages changed: KVM's dirty log (manual protect: harvesting
 * does not write-protect; clearing a chunk, just before sending it, does)
 * OR the VMM's own bitmap for pages ferry itself writes (guest_mem's
 * vmm_dirty, set through mem_mark_dirty), which follows the same rule: a
 * sync reads both, only the chunk's clear resets them — so bits read by a
 * sync whose pass never runs (the last one before the switch-over) are
 * read again by the final sync, not lost. STYLE.md §14: a failed send puts
 * the harvested bits back.
 *
 * One bitmap over the memfd's pages: slot 0's pages first, then slot 1's
 * (the low RAM size is a whole number of MiB, so slot 1 starts on a word). */
#ifndef FERRY_MIGRATION_DIRTY_H
#define FERRY_MIGRATION_DIRTY_H

#include <stdbool.h>
#include <stdint.h>

struct guest_mem;

/* The VMM's own bitmap, on or off (from one thread at a time; safe while
 * device threads call mem_mark_dirty). An enable starts from no page
 * marked. dirty_log_start/stop do this; exported for tests. */
int dirty_vmm_enable(struct guest_mem *mem, bool on);

/* ORs the VMM's dirty bits into bitmap (words of it), leaving them set:
 * like KVM's log with manual protect, a bit is cleared only just before
 * its page is read (dirty_vmm_clear), so a bit read by a sync whose pass
 * never runs (the switch-over) is read again by the next one. */
void dirty_vmm_read(struct guest_mem *mem, uint64_t *bitmap, uint64_t words);

/* Clears the VMM's bits that are set in bits, over words [w, w + n). */
void dirty_vmm_clear(struct guest_mem *mem, const uint64_t *bits, uint64_t w, uint64_t n);

/* ORs bits [w, w + n) back into the VMM's bitmap (a failed send). */
void dirty_vmm_put_back(struct guest_mem *mem, const uint64_t *bits, uint64_t w, uint64_t n);

struct dirty_log {
	struct guest_mem *mem;
	int vm_fd;
	uint64_t pages;     /* of the memfd */
	uint64_t low_pages; /* in slot 0 */
	uint64_t *bitmap;   /* the last harvest, one bit per memfd page */
	bool kvm_logging;   /* KVM's log is on (slots flagged) */
};

/* Turns logging on: every page counts as dirty until its chunk is cleared
 * (KVM_DIRTY_LOG_INITIALLY_SET), so the first pass sends everything and
 * write-protects as it goes. Returns 0 or -errno with a message logged. */
int dirty_log_start(struct dirty_log *d, struct guest_mem *mem, int vm_fd);

/* Harvests KVM's log and the VMM's bitmap into d->bitmap. Returns the
 * number of dirty pages, or -errno. */
int64_t dirty_log_sync(struct dirty_log *d);

/* Re-arms tracking for the pages of words [w, w + n) of d->bitmap that are
 * set there (KVM_CLEAR_DIRTY_LOG): a write after this is logged again.
 * Call just before reading those pages. Returns 0 or -errno. */
int dirty_log_clear(struct dirty_log *d, uint64_t w, uint64_t n);

/* Puts back page bits that were harvested but not sent (a failed send),
 * so the next harvest has them again. */
void dirty_log_put_back(struct dirty_log *d, uint64_t w, uint64_t n);

/* Turns logging off and frees the bitmap. Safe to call twice. */
void dirty_log_stop(struct dirty_log *d);

/* Guest-physical address of memfd page idx. */
uint64_t dirty_page_gpa(const struct dirty_log *d, uint64_t idx);

#endif
