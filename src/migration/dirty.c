#include "migration/dirty.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"
#include "common/util.h"
#include "vm/memory.h"

#define PAGE_SHIFT 12

static int set_slots_logging(struct dirty_log *d, bool on)
{
	const struct guest_mem *m = d->mem;
	uint32_t flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
	int ret = mem_set_slot_flags(m, d->vm_fd, flags);

	if (ret)
		log_error("%s dirty logging on guest RAM: %s", on ? "enabling" : "disabling",
			  strerror(-ret));
	return ret;
}

/* ---- the VMM's own bitmap (struct guest_mem's vmm_dirty) ---- */

static uint64_t vmm_dirty_words(const struct guest_mem *mem)
{
	return (mem->size >> 12) / 64 + 1;
}

int dirty_vmm_enable(struct guest_mem *mem, bool on)
{
	uint64_t *bm = atomic_load(&mem->vmm_dirty);

	if (!on) {
		atomic_store_explicit(&mem->vmm_dirty_on, false, memory_order_release);
		return 0;
	}
	if (!bm) {
		bm = calloc(vmm_dirty_words(mem), sizeof(uint64_t));
		if (!bm)
			return -ENOMEM;
		atomic_store(&mem->vmm_dirty, bm);
	} else {
		/* A marker that saw the last enable may still be setting a bit:
		 * atomic stores, and a stray bit only sends a page again. */
		for (uint64_t w = 0; w < vmm_dirty_words(mem); w++)
			__atomic_store_n(&bm[w], 0, __ATOMIC_RELAXED);
	}
	atomic_store_explicit(&mem->vmm_dirty_on, true, memory_order_release);
	return 0;
}

void dirty_vmm_read(struct guest_mem *mem, uint64_t *bitmap, uint64_t words)
{
	uint64_t *bm = mem_vmm_dirty_bits(mem);

	if (!bm)
		return;
	for (uint64_t w = 0; w < words; w++)
		bitmap[w] |= __atomic_load_n(&bm[w], __ATOMIC_RELAXED);
}

void dirty_vmm_clear(struct guest_mem *mem, const uint64_t *bits, uint64_t w, uint64_t n)
{
	uint64_t *bm = mem_vmm_dirty_bits(mem);

	if (!bm)
		return;
	for (uint64_t i = 0; i < n; i++)
		if (bits[i])
			__atomic_fetch_and(&bm[w + i], ~bits[i], __ATOMIC_RELAXED);
}

void dirty_vmm_put_back(struct guest_mem *mem, const uint64_t *bits, uint64_t w, uint64_t n)
{
	uint64_t *bm = mem_vmm_dirty_bits(mem);

	if (!bm)
		return;
	for (uint64_t i = 0; i < n; i++)
		if (bits[i])
			__atomic_fetch_or(&bm[w + i], bits[i], __ATOMIC_RELAXED);
}

/* ---- KVM's dirty log ---- */

int dirty_log_start(struct dirty_log *d, struct guest_mem *mem, int vm_fd)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
		.args = { KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET },
	};
	int ret;

	memset(d, 0, sizeof(*d));
	d->mem = mem;
	d->vm_fd = vm_fd;
	d->pages = mem->size >> PAGE_SHIFT;
	d->low_pages = mem->low_size >> PAGE_SHIFT;
	d->bitmap = calloc(d->pages / 64 + 1, sizeof(uint64_t));
	if (!d->bitmap)
		return -ENOMEM;
	if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) <= 0 ||
	    ioctl(vm_fd, KVM_ENABLE_CAP, &cap) < 0) {
		/* Every KVM since Linux 5.8 has it; without it the log would
		 * write-protect all of RAM at each harvest. */
		log_error("this KVM lacks KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (with "
			  "INITIALLY_SET), which live migration needs");
		free(d->bitmap);
		d->bitmap = NULL;
		return -ENOTSUP;
	}
	ret = dirty_vmm_enable(mem, true);
	ret = ret ?: set_slots_logging(d, true);
	if (ret) {
		dirty_vmm_enable(mem, false);
		free(d->bitmap);
		d->bitmap = NULL;
		return ret;
	}
	d->kvm_logging = true;
	return 0;
}

/* KVM_GET_DIRTY_LOG of one slot into its part of the bitmap. */
static int get_slot_log(struct dirty_log *d, uint32_t slot, uint64_t first_page)
{
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = d->bitmap + first_page / 64 };

	return ioctl(d->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

int64_t dirty_log_sync(struct dirty_log *d)
{
	uint64_t words = (d->pages + 63) / 64, count = 0;
	int ret;

	ret = get_slot_log(d, 0, 0);
	if (ret == 0 && d->pages > d->low_pages)
		ret = get_slot_log(d, 1, d->low_pages);
	if (ret) {
		log_error("KVM_GET_DIRTY_LOG: %s", strerror(-ret));
		return ret;
	}
	dirty_vmm_read(d->mem, d->bitmap, words);
	for (uint64_t w = 0; w < words; w++)
		count += (uint64_t)__builtin_popcountll(d->bitmap[w]);
	return (int64_t)count;
}

/* One KVM_CLEAR_DIRTY_LOG over words [w, w + n) that lie in one slot. */
static int clear_in_slot(struct dirty_log *d, uint32_t slot, uint64_t slot_first, uint64_t slot_pages,
			 uint64_t w, uint64_t n)
{
	uint64_t first = w * 64 - slot_first;
	uint64_t num = MIN(n * 64, slot_pages - first);
	struct kvm_clear_dirty_log c = {
		.slot = slot,
		.num_pages = (uint32_t)num,
		.first_page = first,
		.dirty_bitmap = d->bitmap + w,
	};

	return ioctl(d->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0 ? -errno : 0;
}

int dirty_log_clear(struct dirty_log *d, uint64_t w, uint64_t n)
{
	uint64_t low_words = d->low_pages / 64;
	int ret = 0;

	dirty_vmm_clear(d->mem, d->bitmap + w, w, n);
	if (!d->kvm_logging)
		return 0;
	/* Split at the slot boundary (a whole word: low RAM is whole MiB). */
	if (w < low_words) {
		uint64_t k = MIN(n, low_words - w);

		ret = clear_in_slot(d, 0, 0, d->low_pages, w, k);
		w += k;
		n -= k;
	}
	if (ret == 0 && n)
		ret = clear_in_slot(d, 1, d->low_pages, d->pages - d->low_pages, w, n);
	if (ret)
		log_error("KVM_CLEAR_DIRTY_LOG: %s", strerror(-ret));
	return ret;
}

void dirty_log_put_back(struct dirty_log *d, uint64_t w, uint64_t n)
{
	dirty_vmm_put_back(d->mem, d->bitmap + w, w, n);
}

void dirty_log_stop(struct dirty_log *d)
{
	if (d->kvm_logging)
		set_slots_logging(d, false);
	d->kvm_logging = false;
	if (d->mem)
		dirty_vmm_enable(d->mem, false);
	free(d->bitmap);
	d->bitmap = NULL;
}

uint64_t dirty_page_gpa(const struct dirty_log *d, uint64_t idx)
{
	if (idx < d->low_pages)
		return idx << PAGE_SHIFT;
	return MEM_HIGH_BASE + ((idx - d->low_pages) << PAGE_SHIFT);
}
