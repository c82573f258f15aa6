#include "migration/state.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "arch/x86/cpu_state.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "common/util.h"
#include "vm/vcpu.h"
#include "vm/vm.h"

#define PAGE_SIZE 4096u
#define INFO_MAX_STRING 65536u
#define DEVICE_MAX_NAME 64u

/* A stretch of guest RAM and where it is mapped. */
struct ram_range {
	uint64_t gpa;
	uint64_t len;
	uint8_t *hva;
};

static unsigned ram_ranges(const struct guest_mem *m, struct ram_range r[2])
{
	unsigned n = 0;

	r[n++] = (struct ram_range){ 0, m->low_size, m->host };
	if (m->high_size)
		r[n++] = (struct ram_range){ MEM_HIGH_BASE, m->high_size, m->host + m->low_size };
	return n;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;

	for (unsigned i = 0; i < PAGE_SIZE / 8; i += 4)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
			return false;
	return true;
}

/* ---- saving ---- */

static void put_string(struct buf *b, const char *s)
{
	size_t len = s ? strlen(s) : 0;

	buf_put_u32(b, (uint32_t)len);
	buf_put(b, s, len);
}

int state_write_info(struct vm *vm, struct stream_writer *w)
{
	struct ram_range r[2];
	unsigned n = ram_ranges(&vm->mem, r);
	struct buf b = { 0 };
	int ret;

	buf_put_u64(&b, vm->mem.size);
	buf_put_u32(&b, PAGE_SIZE);
	buf_put_u32(&b, vm->ncpus);
	buf_put_u32(&b, n);
	for (unsigned i = 0; i < n; i++) {
		buf_put_u64(&b, r[i].gpa);
		buf_put_u64(&b, r[i].len);
	}
	put_string(&b, vm->cfg.name);
	put_string(&b, vm->cfg.cmdline);
	put_string(&b, vm->cfg.kernel);
	put_string(&b, vm->cfg.serial);
	/* Since the CPU spec: the destination builds the same CPUID again
	 * when the guest reboots there (the vCPUs' own records carry the
	 * CPUID the guest runs with now). */
	put_string(&b, vm->cfg.cpu ? vm->cfg.cpu : "host");
	ret = buf_finish(&b) ?: stream_write_record(w, REC_VM_INFO, b.data, b.len);
	buf_free(&b);
	return ret;
}

/* Up to RAM_MAX_BATCH pages on their way into one RAM record. */
struct state_ram_batch {
	uint8_t head[8];
	uint8_t desc[RAM_MAX_BATCH * 8];
	struct iovec iov[2 + RAM_MAX_BATCH];
	unsigned n;     /* descriptors */
	unsigned nfull; /* of which full pages (iov[2..]) */
	uint64_t bytes; /* payload of the records written */
	uint8_t *copy;  /* RAM_MAX_BATCH pages, when the guest runs */
};

struct state_ram_batch *state_ram_batch_new(bool copy)
{
	struct state_ram_batch *b = calloc(1, sizeof(*b));

	if (b && copy && !(b->copy = aligned_alloc(PAGE_SIZE, RAM_MAX_BATCH * PAGE_SIZE))) {
		free(b);
		b = NULL;
	}
	return b;
}

void state_ram_batch_free(struct state_ram_batch *b)
{
	if (b)
		free(b->copy);
	free(b);
}

int state_ram_batch_flush(struct stream_writer *w, struct state_ram_batch *b)
{
	int ret;

	if (!b->n)
		return 0;
	put_le32(b->head, b->n);
	put_le32(b->head + 4, 0);
	b->iov[0] = (struct iovec){ b->head, sizeof(b->head) };
	b->iov[1] = (struct iovec){ b->desc, 8u * b->n };
	ret = stream_write_recordv(w, REC_RAM, b->iov, 2 + b->nfull);
	b->bytes += 8 + 8u * b->n + (uint64_t)b->nfull * PAGE_SIZE;
	b->n = 0;
	b->nfull = 0;
	return ret;
}

int state_ram_batch_add(struct stream_writer *w, struct state_ram_batch *b, uint64_t gpa,
			const uint8_t *page, bool zero)
{
	put_le64(b->desc + 8 * b->n, gpa | (zero ? RAM_PAGE_ZERO : RAM_PAGE_FULL));
	if (!zero && b->copy) {
		/* A running guest may write the page at any time: the record's
		 * checksum and the bytes sent must be of one snapshot of it. */
		uint8_t *dst = b->copy + (size_t)b->nfull * PAGE_SIZE;

		memcpy(dst, page, PAGE_SIZE);
		page = dst;
	}
	if (!zero)
		b->iov[2 + b->nfull++] = (struct iovec){ (void *)page, PAGE_SIZE };
	if (++b->n == RAM_MAX_BATCH)
		return state_ram_batch_flush(w, b);
	return 0;
}

bool state_page_is_zero(const uint8_t *p)
{
	return page_is_zero(p);
}

/* The next stretch of a RAM range that holds data, from off on, as
 * offsets in the range (mem_next_data). */
static bool ram_next_data(const struct vm *vm, const struct ram_range *r, uint64_t off,
			  uint64_t *start, uint64_t *end)
{
	uint64_t base = (uint64_t)(r->hva - vm->mem.host);

	if (!mem_next_data(&vm->mem, base + off, base + r->len, start, end))
		return false;
	*start -= base;
	*end -= base;
	return true;
}

/* Writes every page that holds data. Pages the guest never touched are
 * holes in the memfd: skipped without reading (and so without allocating)
 * them; touched pages that are all zero are skipped too, since a restored
 * VM's RAM starts zeroed. */
static int save_ram(struct vm *vm, struct stream_writer *w, struct state_stats *st)
{
	struct ram_range r[2];
	unsigned n = ram_ranges(&vm->mem, r);
	struct state_ram_batch *b = state_ram_batch_new(false);
	uint64_t start, end;
	int ret = 0;

	if (!b)
		return -ENOMEM;
	for (unsigned i = 0; i < n && !ret; i++) {
		for (uint64_t off = 0; !ret && ram_next_data(vm, &r[i], off, &start, &end); off = end) {
			for (uint64_t a = start; a < end && !ret; a += PAGE_SIZE) {
				if (page_is_zero(r[i].hva + a))
					continue;
				st->pages_full++;
				ret = state_ram_batch_add(w, b, r[i].gpa + a, r[i].hva + a, false);
			}
		}
	}
	st->pages_skipped = vm->mem.size / PAGE_SIZE - st->pages_full;
	if (!ret)
		ret = state_ram_batch_flush(w, b);
	state_ram_batch_free(b);
	return ret;
}

#define EXTENTS_MAX 65536u

int state_write_ram_extents(struct vm *vm, struct stream_writer *w, uint64_t *data_bytes)
{
	struct ram_range r[2];
	unsigned n = ram_ranges(&vm->mem, r), count = 0;
	struct buf b = { 0 };
	uint64_t start, end, total = 0;
	int ret;

	buf_put_u32(&b, 0); /* count, filled in below */
	buf_put_u32(&b, 0);
	for (unsigned i = 0; i < n && count < EXTENTS_MAX; i++)
		for (uint64_t off = 0; count < EXTENTS_MAX && ram_next_data(vm, &r[i], off, &start, &end);
		     off = end, count++) {
			buf_put_u64(&b, r[i].gpa + start);
			buf_put_u64(&b, end - start);
			total += end - start;
		}
	if (data_bytes)
		*data_bytes = total;
	ret = buf_finish(&b);
	if (ret == 0) {
		put_le32(b.data, count);
		ret = stream_write_record(w, REC_RAM_EXTENTS | STREAM_REC_OPTIONAL, b.data, b.len);
	}
	buf_free(&b);
	return ret;
}

static int save_device(struct stream_writer *w, const struct device *d)
{
	struct buf b = { 0 };
	int ret;

	put_string(&b, d->ops->name);
	buf_put_u32(&b, d->instance);
	buf_put_u32(&b, d->ops->version);
	ret = d->ops->save(d->dev, &b);
	if (ret == 0)
		ret = buf_finish(&b) ?: stream_write_record(w, REC_DEVICE, b.data, b.len);
	else
		log_error("saving device %s: %s", d->ops->name, strerror(-ret));
	buf_free(&b);
	return ret;
}

static int save_devices(struct vm *vm, struct stream_writer *w, bool after_vcpus)
{
	for (unsigned i = 0; i < vm->devices.n; i++) {
		const struct device *d = &vm->devices.items[i];
		int ret;

		if (d->after_vcpus != after_vcpus)
			continue;
		ret = save_device(w, d);
		if (ret)
			return ret;
	}
	return 0;
}

static int save_vcpus(struct vm *vm, struct stream_writer *w)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct buf b = { 0 };
		int ret;

		buf_put_u32(&b, i);
		buf_put_u32(&b, X86_VCPU_STATE_VERSION);
		ret = x86_vcpu_save(vm->kvm.fd, vm->vcpus[i].fd, &b);
		if (ret == 0)
			ret = buf_finish(&b) ?: stream_write_record(w, REC_VCPU, b.data, b.len);
		else
			log_error("saving vCPU %u: %s", i, strerror(-ret));
		buf_free(&b);
		if (ret)
			return ret;
	}
	return 0;
}

int state_save(struct vm *vm, int fd, struct state_stats *st)
{
	struct stream_writer w;
	int ret;

	memset(st, 0, sizeof(*st));
	/* The order docs/stream-format.md gives: in-kernel irqchip and PIT and
	 * the emulated devices, then the vCPUs (their LAPICs after the
	 * irqchip), then the clock, last so that it neither jumps nor runs
	 * backwards. */
	ret = stream_writer_start(&w, fd);
	ret = ret ?: state_write_info(vm, &w);
	ret = ret ?: state_write_ram_extents(vm, &w, NULL);
	ret = ret ?: save_ram(vm, &w, st);
	ret = ret ?: state_write_final(vm, &w);
	st->bytes = w.offset;
	return ret;
}

int state_write_final(struct vm *vm, struct stream_writer *w)
{
	int ret;

	/* The order docs/stream-format.md gives (see state_save). */
	ret = save_devices(vm, w, false);
	ret = ret ?: save_vcpus(vm, w);
	ret = ret ?: save_devices(vm, w, true);
	ret = ret ?: stream_write_record(w, REC_END, NULL, 0);
	return ret;
}

/* ---- loading ---- */

static int load_fail(struct stream_reader *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int load_fail(struct stream_reader *r, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
	return err;
}

static char *get_string(struct reader *rd)
{
	uint32_t len = reader_u32(rd);
	char *s;

	if (rd->short_read || len > INFO_MAX_STRING || !range_within(rd->off, len, rd->len)) {
		rd->short_read = true;
		return NULL;
	}
	s = malloc(len + 1);
	if (!s) {
		rd->short_read = true;
		return NULL;
	}
	reader_get(rd, s, len);
	s[len] = 0;
	return s;
}

static int parse_info(struct stream_reader *r, const uint8_t *p, size_t len,
		      struct state_info *info)
{
	struct reader rd;
	uint64_t low, high;
	uint32_t page, nranges;

	reader_init(&rd, p, len);
	info->ram_size = reader_u64(&rd);
	page = reader_u32(&rd);
	info->ncpus = reader_u32(&rd);
	nranges = reader_u32(&rd);
	if (rd.short_read)
		return load_fail(r, -EINVAL, "VM_INFO record is truncated");
	if (page != PAGE_SIZE)
		return load_fail(r, -EINVAL, "page size %u; ferry uses %u", page, PAGE_SIZE);
	if (info->ram_size == 0 || info->ram_size % MiB(1))
		return load_fail(r, -EINVAL, "RAM size %llu is not a whole number of MiB",
				 (unsigned long long)info->ram_size);
	if (info->ncpus == 0 || info->ncpus > STATE_MAX_VCPUS)
		return load_fail(r, -EINVAL, "VM_INFO has %u vCPUs (1 to %u)", info->ncpus,
				 STATE_MAX_VCPUS);
	/* The ranges must be the layout ferry builds for this RAM size. */
	low = mem_low_size(info->ram_size);
	high = info->ram_size - low;
	if (nranges != (high ? 2u : 1u) || reader_u64(&rd) != 0 || reader_u64(&rd) != low ||
	    (high && (reader_u64(&rd) != MEM_HIGH_BASE || reader_u64(&rd) != high)))
		return load_fail(r, -EINVAL, "RAM layout in VM_INFO does not match a %llu MiB VM",
				 (unsigned long long)(info->ram_size >> 20));
	info->name = get_string(&rd);
	info->cmdline = get_string(&rd);
	info->kernel = get_string(&rd);
	info->serial = get_string(&rd);
	/* Absent from the streams of earlier versions: the host's CPU. */
	info->cpu = rd.off < rd.len || rd.short_read ? get_string(&rd) : strdup("host");
	if (!info->cpu)
		rd.short_read = true;
	if (reader_finish(&rd))
		return load_fail(r, -EINVAL, "VM_INFO record is malformed");
	return 0;
}

int state_read_info(struct stream_reader *r, int fd, struct state_info *info)
{
	int ret;

	memset(info, 0, sizeof(*info));
	ret = stream_reader_start(r, fd);
	return ret ?: state_read_info_record(r, info);
}

int state_read_info_record(struct stream_reader *r, struct state_info *info)
{
	const uint8_t *p;
	uint32_t type;
	size_t len;
	int ret;

	memset(info, 0, sizeof(*info));
	ret = stream_read_record(r, &type, &p, &len);
	if (ret)
		return ret;
	if (type != REC_VM_INFO)
		return load_fail(r, -EINVAL, "the stream starts with a %s record, not VM_INFO",
				 stream_rec_name(type));
	ret = parse_info(r, p, len, info);
	if (ret)
		state_info_free(info);
	return ret;
}

void state_info_free(struct state_info *info)
{
	free(info->name);
	free(info->cmdline);
	free(info->kernel);
	free(info->serial);
	free(info->cpu);
	memset(info, 0, sizeof(*info));
}

/* Writes the record's full pages into the memfd, one pwritev per run of
 * contiguous pages. A write that fills a whole page lets shmem allocate it
 * without zeroing it first and without a page fault per page: on a fresh
 * VM's RAM that costs more than the copy itself. Returns 0 or -errno. */
static int write_pages(struct vm *vm, const uint8_t *desc, uint32_t n, const uint8_t *data)
{
	struct iovec iov[RAM_MAX_BATCH];
	uint64_t start = 0;
	unsigned cnt = 0;

	for (uint32_t i = 0; i <= n; i++) {
		uint64_t d = i < n ? get_le64(desc + 8 * i) : 0;
		uint64_t gpa = d & ~(uint64_t)(PAGE_SIZE - 1);
		bool full = i < n && (d & (PAGE_SIZE - 1)) == RAM_PAGE_FULL;

		if (full && cnt && gpa == start + (uint64_t)cnt * PAGE_SIZE &&
		    mem_gpa_to_hva(&vm->mem, start, (uint64_t)(cnt + 1) * PAGE_SIZE)) {
			iov[cnt++] = (struct iovec){ (void *)data, PAGE_SIZE };
			data += PAGE_SIZE;
			continue;
		}
		if (cnt) {
			off_t off = (uint8_t *)mem_gpa_to_hva(&vm->mem, start, PAGE_SIZE) - vm->mem.host;
			size_t want = (size_t)cnt * PAGE_SIZE;
			ssize_t done = pwritev(vm->mem.memfd, iov, (int)cnt, off);

			if (done != (ssize_t)want)
				return done < 0 ? -errno : -EIO;
		}
		cnt = 0;
		if (full) {
			start = gpa;
			iov[cnt++] = (struct iovec){ (void *)data, PAGE_SIZE };
			data += PAGE_SIZE;
		} else if (i < n) {
			memset(mem_gpa_to_hva(&vm->mem, gpa, PAGE_SIZE), 0, PAGE_SIZE);
		}
	}
	return 0;
}

/* True when [gpa, gpa + 4 KiB) is RAM in a VM of ram_size bytes. */
static bool ram_page_valid(uint64_t ram_size, uint64_t gpa)
{
	uint64_t low = mem_low_size(ram_size);

	return mem_layout_offset(low, ram_size - low, gpa, PAGE_SIZE) >= 0;
}

int state_ram_record_check(uint64_t ram_size, const uint8_t *p, size_t len, uint32_t *pages,
			   uint32_t *full, char *err, size_t errlen)
{
	uint32_t n;

	*full = 0;
	if (len < 8 || (n = get_le32(p)) == 0 || n > RAM_MAX_BATCH || get_le32(p + 4) ||
	    len < 8 + 8ull * n) {
		snprintf(err, errlen, "RAM record has a bad page count");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint64_t d = get_le64(p + 8 + 8 * i), gpa = d & ~(uint64_t)(PAGE_SIZE - 1);
		unsigned enc = d & (PAGE_SIZE - 1);

		if (enc != RAM_PAGE_FULL && enc != RAM_PAGE_ZERO) {
			snprintf(err, errlen, "RAM page 0x%llx has unknown encoding %u",
				 (unsigned long long)gpa, enc);
			return -EINVAL;
		}
		if (!ram_page_valid(ram_size, gpa)) {
			snprintf(err, errlen, "RAM page 0x%llx is outside the VM's RAM",
				 (unsigned long long)gpa);
			return -EINVAL;
		}
		*full += enc == RAM_PAGE_FULL;
	}
	if (len != 8 + 8ull * n + (uint64_t)*full * PAGE_SIZE) {
		snprintf(err, errlen, "RAM record length does not match its pages");
		return -EINVAL;
	}
	*pages = n;
	return 0;
}

static int load_ram(struct vm *vm, struct stream_reader *r, const uint8_t *p, size_t len)
{
	uint32_t n, full;
	int ret;

	/* Check every descriptor before copying any page; the full pages'
	 * count is already matched against the length there. */
	if (state_ram_record_check(vm->mem.size, p, len, &n, &full, r->error, sizeof(r->error)))
		return -EINVAL;
	ret = write_pages(vm, p + 8, n, p + 8 + 8ull * n);
	if (ret)
		return load_fail(r, ret, "writing guest RAM: %s", strerror(-ret));
	return 0;
}

/* Where the loader is: devices before the vCPUs, the vCPUs, devices after. */
/* Allocates guest RAM that the stream says holds data, in a thread of its
 * own, ahead of the records that fill it: first-touch allocation then
 * overlaps the transfer instead of following it (RAM_EXTENTS). */
struct prefault {
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
	int memfd;
	unsigned n;
	uint64_t *ext; /* memfd offset, length pairs */
};

static void *prefault_thread(void *arg)
{
	struct prefault *pf = arg;

	pthread_setname_np(pthread_self(), "prefault");
	for (unsigned i = 0; i < pf->n; i++)
		for (uint64_t o = 0; o < pf->ext[2 * i + 1]; o += MiB(2)) {
			if (__atomic_load_n(&pf->stop, __ATOMIC_RELAXED))
				return NULL;
			if (fallocate(pf->memfd, 0, (off_t)(pf->ext[2 * i] + o),
				      (off_t)MIN(MiB(2), pf->ext[2 * i + 1] - o)) < 0)
				return NULL; /* a hint: the writes allocate anyway */
		}
	return NULL;
}

static void prefault_stop(struct prefault *pf)
{
	if (pf->started) {
		__atomic_store_n(&pf->stop, true, __ATOMIC_RELAXED);
		pthread_join(pf->thread, NULL);
		pf->started = false;
	}
	free(pf->ext);
	pf->ext = NULL;
}

/* A hint: a malformed one is ignored, never an error... but a record
 * that passed its checksum yet is malformed says the writer is broken. */
static int load_extents(struct vm *vm, struct stream_reader *r, struct prefault *pf,
			const uint8_t *p, size_t len)
{
	uint32_t n;

	if (pf->started || pf->ext)
		return load_fail(r, -EINVAL, "a second RAM_EXTENTS record");
	if (len < 8 || (n = get_le32(p)) > EXTENTS_MAX || len != 8 + 16ull * n)
		return load_fail(r, -EINVAL, "RAM_EXTENTS record is malformed");
	pf->ext = calloc(n ? 2 * n : 1, sizeof(uint64_t));
	if (!pf->ext)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t gpa = get_le64(p + 8 + 16 * i), l = get_le64(p + 16 + 16 * i);
		int64_t off = mem_layout_offset(vm->mem.low_size, vm->mem.high_size, gpa, l);

		if (off < 0 || gpa % PAGE_SIZE || l % PAGE_SIZE)
			return load_fail(r, -EINVAL, "RAM_EXTENTS names 0x%llx+0x%llx, outside RAM",
					 (unsigned long long)gpa, (unsigned long long)l);
		pf->ext[2 * pf->n] = (uint64_t)off;
		pf->ext[2 * pf->n++ + 1] = l;
	}
	pf->memfd = vm->mem.memfd;
	pf->started = pthread_create(&pf->thread, NULL, prefault_thread, pf) == 0;
	return 0;
}

struct load_progress {
	struct prefault prefault;
	uint64_t last_ram_gpa; /* first page of the last RAM record */
	bool dev_seen[DEVICE_MAX];
	bool *cpu_seen;
	unsigned early_left; /* devices still due before the vCPUs */
	unsigned cpus_left;
	unsigned late_left;
};

/* Devices that come from options rather than from the stream. */
static const char *device_hint(const char *name)
{
	if (!strncmp(name, "virtio-blk", 10))
		return " (give this VM the same --disk options, in the same order, as the source)";
	if (!strncmp(name, "virtio-net", 10))
		return " (give this VM the same --net options, in the same order, as the source)";
	return "";
}

static int load_device(struct vm *vm, struct stream_reader *r, struct load_progress *lp,
		       const uint8_t *p, size_t len)
{
	struct reader rd;
	char name[DEVICE_MAX_NAME + 1];
	uint32_t nlen, instance, version;
	struct device *d = NULL;
	unsigned i;
	int ret;

	reader_init(&rd, p, len);
	nlen = reader_u32(&rd);
	if (nlen > DEVICE_MAX_NAME || !range_within(rd.off, nlen, len))
		return load_fail(r, -EINVAL, "DEVICE record has a bad name");
	reader_get(&rd, name, nlen);
	name[nlen] = 0;
	if (strlen(name) != nlen)
		return load_fail(r, -EINVAL, "DEVICE record has a NUL in its name");
	instance = reader_u32(&rd);
	version = reader_u32(&rd);
	if (rd.short_read)
		return load_fail(r, -EINVAL, "DEVICE record is truncated");
	for (i = 0; i < vm->devices.n; i++) {
		d = &vm->devices.items[i];
		if (!strcmp(d->ops->name, name) && d->instance == instance)
			break;
	}
	if (i == vm->devices.n)
		return load_fail(r, -EINVAL, "the stream has state for device %s/%u, which this VM "
				 "does not have%s", name, instance, device_hint(name));
	if (lp->dev_seen[i])
		return load_fail(r, -EINVAL, "device %s/%u appears twice", name, instance);
	if (d->after_vcpus && lp->cpus_left)
		return load_fail(r, -EINVAL, "device %s comes before the vCPUs it must follow", name);
	if (!d->after_vcpus && lp->cpus_left < vm->ncpus)
		return load_fail(r, -EINVAL, "device %s comes after the vCPUs", name);
	ret = d->ops->load(d->dev, version, p + rd.off, len - rd.off);
	if (ret == -EPROTO)
		return load_fail(r, ret, "device %s: state version %u is not supported (this ferry "
				 "writes %u)", name, version, d->ops->version);
	if (ret)
		return load_fail(r, ret, "device %s: invalid state record (%s)", name, strerror(-ret));
	lp->dev_seen[i] = true;
	if (d->after_vcpus)
		lp->late_left--;
	else
		lp->early_left--;
	return 0;
}

static int load_vcpu(struct vm *vm, struct stream_reader *r, struct load_progress *lp,
		     const uint8_t *p, size_t len)
{
	uint32_t idx, version;
	char why[512];
	int ret;

	if (len < 8)
		return load_fail(r, -EINVAL, "VCPU record is truncated");
	idx = get_le32(p);
	version = get_le32(p + 4);
	if (idx >= vm->ncpus)
		return load_fail(r, -EINVAL, "VCPU record for vCPU %u; the VM has %u", idx, vm->ncpus);
	if (lp->cpu_seen[idx])
		return load_fail(r, -EINVAL, "vCPU %u appears twice", idx);
	if (lp->early_left)
		return load_fail(r, -EINVAL, "vCPU %u comes before the devices it must follow", idx);
	ret = x86_vcpu_load(vm->kvm.fd, vm->vcpus[idx].fd, version, p + 8, len - 8,
			    lp->cpus_left == vm->ncpus, why, sizeof(why));
	if (ret)
		return load_fail(r, ret, "vCPU %u: %s", idx, why);
	lp->cpu_seen[idx] = true;
	lp->cpus_left--;
	return 0;
}

static int load_end(struct vm *vm, struct stream_reader *r, struct load_progress *lp)
{
	for (unsigned i = 0; i < vm->devices.n; i++)
		if (!lp->dev_seen[i])
			return load_fail(r, -EINVAL, "the stream has no state for device %s/%u%s",
					 vm->devices.items[i].ops->name,
					 vm->devices.items[i].instance,
					 device_hint(vm->devices.items[i].ops->name));
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (!lp->cpu_seen[i])
			return load_fail(r, -EINVAL, "the stream has no state for vCPU %u", i);
	return 0;
}

static int load_records(struct vm *vm, struct stream_reader *r, struct load_progress *lp)
{
	uint64_t read_ns = 0, ram_ns = 0, nram = 0, state_ns = 0;

	for (;;) {
		const uint8_t *p;
		uint32_t type;
		size_t len;
		uint64_t t = time_now_ns();
		int ret = stream_read_record(r, &type, &p, &len);

		read_ns += time_now_ns() - t;
		if (ret)
			return ret;
		if (type == REC_END)
			log_debug("load: %llu RAM records; %llu ms reading and checking records, "
				  "%llu ms writing RAM, %llu us loading devices and vCPUs",
				  (unsigned long long)nram, (unsigned long long)read_ns / 1000000,
				  (unsigned long long)ram_ns / 1000000,
				  (unsigned long long)state_ns / 1000);
		switch (type) {
		case REC_RAM:
			/* The first pass sends RAM in address order; a record that
			 * goes back starts another pass: every page with data has
			 * arrived, and allocating ahead only takes CPU from the
			 * loader from now on. */
			if (len >= 16 && (get_le64(p + 8) & ~0xfffull) < lp->last_ram_gpa)
				prefault_stop(&lp->prefault);
			if (len >= 16)
				lp->last_ram_gpa = get_le64(p + 8) & ~0xfffull;
			t = time_now_ns();
			ret = load_ram(vm, r, p, len);
			ram_ns += time_now_ns() - t;
			nram++;
			break;
		case REC_DEVICE:
		case REC_VCPU:
			t = time_now_ns();
			ret = type == REC_DEVICE ? load_device(vm, r, lp, p, len)
						 : load_vcpu(vm, r, lp, p, len);
			state_ns += time_now_ns() - t;
			break;
		case REC_END: return load_end(vm, r, lp);
		case REC_RAM_EXTENTS | STREAM_REC_OPTIONAL:
			ret = load_extents(vm, r, &lp->prefault, p, len);
			break;
		case REC_VM_INFO:
			return load_fail(r, -EINVAL, "a second VM_INFO record");
		default:
			if (!(type & STREAM_REC_OPTIONAL))
				return load_fail(r, -EINVAL, "unknown mandatory record type %u", type);
		}
		if (ret)
			return ret;
	}
}

int state_load(struct vm *vm, struct stream_reader *r, bool expect_eof)
{
	struct load_progress lp = { .cpus_left = vm->ncpus };
	int ret;

	lp.cpu_seen = calloc(vm->ncpus, sizeof(bool));
	if (!lp.cpu_seen)
		return load_fail(r, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->devices.n; i++) {
		if (vm->devices.items[i].after_vcpus)
			lp.late_left++;
		else
			lp.early_left++;
	}
	ret = load_records(vm, r, &lp);
	prefault_stop(&lp.prefault);
	if (ret == 0 && expect_eof && !stream_reader_at_eof(r))
		ret = load_fail(r, -EINVAL, "data after the END record");
	free(lp.cpu_seen);
	return ret;
}

uint32_t state_ram_hash(const struct vm *vm)
{
	static const uint8_t zero[PAGE_SIZE];
	struct ram_range r[2];
	unsigned n = ram_ranges(&vm->mem, r);
	uint64_t start, end;
	uint32_t crc = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t a = 0;

		for (uint64_t off = 0; ram_next_data(vm, &r[i], off, &start, &end); off = end) {
			for (; a < start; a += PAGE_SIZE) /* a hole reads as zeros */
				crc = crc32c(crc, zero, PAGE_SIZE);
			for (; a < end; a += PAGE_SIZE)
				crc = crc32c(crc, r[i].hva + a, PAGE_SIZE);
		}
		for (; a < r[i].len; a += PAGE_SIZE)
			crc = crc32c(crc, zero, PAGE_SIZE);
	}
	return crc;
}
