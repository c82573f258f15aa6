#include "arch/x86/cpu_state.h"

#include <errno.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "arch/x86/kvm_ioctl.h"
#include "common/log.h"
#include "common/util.h"

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_DM_NMI 0x400
#define APIC_DM_EXTINT 0x700
#define APIC_DM_MASK 0x700

#define X86_CR0_PE 0x1ull
#define X86_CR0_ET 0x10ull

int x86_vcpu_set_cpuid(int vcpu_fd, struct cpuid_table *t)
{
	return ioctl(vcpu_fd, KVM_SET_CPUID2, &t->head) < 0 ? -errno : 0;
}

static void lapic_set_mode(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t v = get_le32(&l->regs[reg]);

	put_le32(&l->regs[reg], (v & ~APIC_DM_MASK) | mode);
}

int x86_vcpu_init_lapic(int vcpu_fd)
{
	struct kvm_lapic_state l;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	lapic_set_mode(&l, APIC_LVT_LINT0, APIC_DM_EXTINT);
	lapic_set_mode(&l, APIC_LVT_LINT1, APIC_DM_NMI);
	return ioctl(vcpu_fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t selector, uint8_t type)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = 1,
		.s = 1,
		.l = 0,
		.g = 1,
	};
}

int x86_vcpu_set_pvh_entry(int vcpu_fd, uint64_t entry, uint64_t start_info)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	/* PVH: "CS: 32-bit read/execute, base 0, limit 4G; DS, ES, SS: 32-bit
	 * read/write, base 0, limit 4G; TR: 32-bit TSS (type 11), base 0,
	 * limit 0x67; CR0: PE set, PG clear; CR4: 0; EFLAGS: bits 9 (IF) and
	 * 17 (VM) clear; EBX: start_info" (Xen docs/misc/pvh.pandoc). */
	flat_segment(&sregs.cs, 0x10, 0xb);
	flat_segment(&sregs.ds, 0x18, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .selector = 0x20, .limit = 0x67, .type = 11,
					 .present = 1 };
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	regs.rip = entry;
	regs.rbx = start_info;
	regs.rflags = 0x2;
	return ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

uint64_t x86_vcpu_rip(int vcpu_fd)
{
	struct kvm_regs regs;

	return ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0 ? 0 : regs.rip;
}

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SPEC_CTRL 0x48
#define MSR_IA32_ARCH_CAPABILITIES 0x10a
#define MSR_MTRR_CAP 0xfe
#define MSR_MTRR_CAP_VCNT 0xff
#define MSR_MTRR_CAP_FIX 0x100
#define MSR_MTRR_PHYS_BASE0 0x200
#define MSR_MTRR_VAR_MAX 40 /* 0x200 + 2 * 40 = 0x250, the first fixed MTRR */
#define MSR_MTRR_FIX64K_00000 0x250
#define MSR_MTRR_FIX16K_80000 0x258
#define MSR_MTRR_FIX16K_A0000 0x259
#define MSR_MTRR_FIX4K_C0000 0x268
#define MSR_MTRR_FIX4K_F8000 0x26f
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_IA32_XSS 0xda0
#define MSR_TSC_AUX 0xc0000103
#define HV_X64_MSR_VP_RUNTIME 0x40000010
#define HV_X64_MSR_TIME_REF_COUNT 0x40000020

#define TSC_TOLERANCE_PPM 250 /* KVM's tsc_tolerance_ppm default */
#define MSR_BATCH 128 /* KVM takes fewer than 256 (MAX_IO_MSRS) per call */

/* The XSAVE area size this host's KVM reads and writes: 4 KiB, or more
 * when KVM_CAP_XSAVE2 says so (dynamic features such as AMX). */
static uint32_t xsave_size(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return n > (int)XSAVE_LEGACY_SIZE ? (uint32_t)n : XSAVE_LEGACY_SIZE;
}

/* ---- reading the state from KVM ---- */

static int cpuid_get(int vcpu_fd, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->head.nent = CPUID_MAX_ENTRIES;
	return KVM_IOCTL(vcpu_fd, KVM_GET_CPUID2, &t->head);
}

/* The vCPU's TSC rate; 0, or -errno (-EIO: KVM does not know it). */
static int tsc_khz_get(int vcpu_fd, uint32_t *khz)
{
	int r = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);

	if (r <= 0)
		return r < 0 ? -errno : -EIO;
	*khz = (uint32_t)r;
	return 0;
}

static int tsc_khz_get_logged(int vcpu_fd, uint32_t *khz)
{
	int ret = tsc_khz_get(vcpu_fd, khz);

	if (ret)
		log_error("KVM_GET_TSC_KHZ: %s", ret == -EIO ? "rate unknown" : strerror(-ret));
	return ret;
}

static int xsave_get(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *s)
{
	uint32_t size = xsave_size(kvm_fd);

	if (size > X86_STATE_XSAVE_MAX) {
		log_error("KVM's XSAVE area is %u bytes, more than ferry's %u", size,
			  X86_STATE_XSAVE_MAX);
		return -E2BIG;
	}
	s->xsave = calloc(1, size);
	if (!s->xsave)
		return -ENOMEM;
	s->xsave_size = size;
	if (size > XSAVE_LEGACY_SIZE)
		return KVM_IOCTL(vcpu_fd, KVM_GET_XSAVE2, s->xsave);
	return KVM_IOCTL(vcpu_fd, KVM_GET_XSAVE, s->xsave);
}

/* KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and emulates. */
static int msr_index_list(int kvm_fd, struct kvm_msr_list **out)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *l;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return KVM_IOCTL(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);
	l = calloc(1, sizeof(*l) + (size_t)probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = probe.nmsrs;
	if (KVM_IOCTL(kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return -EIO;
	}
	*out = l;
	return 0;
}

/* MSRs of KVM's list that are no state of the vCPU's, and are not saved. */
static const uint32_t msr_not_state[] = {
	/* Read-only for a guest; kvm_pvm refuses to set it, and it describes
	 * the host. */
	MSR_IA32_ARCH_CAPABILITIES,
	/* Hyper-V's, in KVM's list where KVM emulates Hyper-V (Debian's 6.1
	 * does; ferry offers guests no Hyper-V interface, CPUID 0x40000000
	 * says KVM). The partition reference counter KVM computes from the
	 * VM's kvm-clock at every read and ignores a write from userspace: it
	 * travels with the kvm-clock record. The VP runtime KVM counts as the
	 * CPU time of the thread that reads or writes it, from the value last
	 * written: the vCPU's time only on the vCPU's own thread, and ferry
	 * saves and loads from another. Saved, both would only make two saves
	 * of one paused VM differ. */
	HV_X64_MSR_TIME_REF_COUNT,
	HV_X64_MSR_VP_RUNTIME,
};

/* Appends index to the wanted list unless it is there already or is one
 * of msr_not_state. */
static void msr_want(uint32_t *want, uint32_t *n, uint32_t index)
{
	if (*n >= X86_STATE_MSR_MAX)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(msr_not_state); i++)
		if (index == msr_not_state[i])
			return;
	for (uint32_t i = 0; i < *n; i++)
		if (want[i] == index)
			return;
	want[(*n)++] = index;
}

/* Reads one MSR; false when the vCPU does not have it. */
static bool msr_read_one(int vcpu_fd, uint32_t index, uint64_t *value)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry e;
	} m = { .head.nmsrs = 1, .e.index = index };

	if (ioctl(vcpu_fd, KVM_GET_MSRS, &m) != 1)
		return false;
	*value = m.e.data;
	return true;
}

/* MSRs KVM_GET_MSR_INDEX_LIST leaves out that a guest may have changed:
 * the MTRRs (as many variable pairs as MTRRcap says), SPEC_CTRL, TSC_AUX,
 * XSS. Those the vCPU lacks fail to read and are dropped then; those still
 * at 0, their power-on value, are dropped too (msrs_drop_unused_extras). */
static void msr_want_extra(int vcpu_fd, uint32_t *want, uint32_t *n)
{
	uint64_t cap;

	if (msr_read_one(vcpu_fd, MSR_MTRR_CAP, &cap)) {
		unsigned vcnt = MIN((unsigned)(cap & MSR_MTRR_CAP_VCNT), MSR_MTRR_VAR_MAX);

		msr_want(want, n, MSR_MTRR_DEF_TYPE);
		if (cap & MSR_MTRR_CAP_FIX) {
			msr_want(want, n, MSR_MTRR_FIX64K_00000);
			msr_want(want, n, MSR_MTRR_FIX16K_80000);
			msr_want(want, n, MSR_MTRR_FIX16K_A0000);
			for (uint32_t i = MSR_MTRR_FIX4K_C0000; i <= MSR_MTRR_FIX4K_F8000; i++)
				msr_want(want, n, i);
		}
		for (uint32_t i = 0; i < 2 * vcnt; i++)
			msr_want(want, n, MSR_MTRR_PHYS_BASE0 + i);
	}
	msr_want(want, n, MSR_IA32_SPEC_CTRL);
	msr_want(want, n, MSR_TSC_AUX);
	msr_want(want, n, MSR_IA32_XSS);
}

/* Reads want[0..n) into s->msrs, keeping those that read. KVM_GET_MSRS
 * stops at the first MSR it cannot read and returns how many it read:
 * that one is skipped and the batch goes on after it. */
static int msrs_read(int vcpu_fd, const uint32_t *want, uint32_t n, struct kvm_msrs *out)
{
	struct kvm_msrs *b = x86_msrs_alloc(MSR_BATCH);
	uint32_t pos = 0, kept = 0;
	int ret = 0;

	if (!b)
		return -ENOMEM;
	while (pos < n) {
		uint32_t nb = MIN(n - pos, (uint32_t)MSR_BATCH);
		int r;

		b->nmsrs = nb;
		for (uint32_t i = 0; i < nb; i++)
			b->entries[i] = (struct kvm_msr_entry){ .index = want[pos + i] };
		r = ioctl(vcpu_fd, KVM_GET_MSRS, b);
		if (r < 0) {
			ret = -errno;
			log_error("KVM_GET_MSRS: %s", strerror(errno));
			goto out;
		}
		memcpy(&out->entries[kept], b->entries, (size_t)r * sizeof(b->entries[0]));
		kept += (uint32_t)r;
		pos += (uint32_t)r;
		if ((uint32_t)r < nb)
			log_debug("MSR 0x%x does not read on this vCPU: not saved", want[pos++]);
	}
	out->nmsrs = kept;
out:
	free(b);
	return ret;
}

static bool msr_listed(const struct kvm_msr_list *l, uint32_t index)
{
	for (uint32_t i = 0; i < l->nmsrs; i++)
		if (l->indices[i] == index)
			return true;
	return false;
}

/* An MSR outside KVM's list that reads 0 has its power-on value, which a
 * new vCPU has too: it is left out, since KVM may refuse to write it even
 * so (kvm_pvm reads XSS but refuses any write of it). One the guest did
 * set is kept, and then must load. */
static void msrs_drop_unused_extras(const struct kvm_msr_list *l, struct kvm_msrs *m)
{
	uint32_t kept = 0;

	for (uint32_t i = 0; i < m->nmsrs; i++)
		if (m->entries[i].data != 0 || msr_listed(l, m->entries[i].index))
			m->entries[kept++] = m->entries[i];
	m->nmsrs = kept;
}

static int msrs_get(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *s)
{
	struct kvm_msr_list *l = NULL;
	uint32_t *want = calloc(X86_STATE_MSR_MAX, sizeof(*want));
	uint32_t n = 0;
	int ret;

	if (!want)
		return -ENOMEM;
	ret = msr_index_list(kvm_fd, &l);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < l->nmsrs; i++)
		msr_want(want, &n, l->indices[i]);
	msr_want_extra(vcpu_fd, want, &n);
	s->msrs = x86_msrs_alloc(n);
	ret = s->msrs ? msrs_read(vcpu_fd, want, n, s->msrs) : -ENOMEM;
	if (ret == 0)
		msrs_drop_unused_extras(l, s->msrs);
out:
	free(l);
	free(want);
	return ret;
}

/* MP_STATE comes first: KVM_GET_MP_STATE makes KVM accept a pending INIT
 * or SIPI, which resets the registers; reading it last would save
 * registers from before that. */
static int vcpu_state_get(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *s)
{
	int ret = KVM_IOCTL(vcpu_fd, KVM_GET_MP_STATE, &s->mp);

	ret = ret ?: cpuid_get(vcpu_fd, &s->cpuid);
	ret = ret ?: tsc_khz_get_logged(vcpu_fd, &s->tsc_khz);
	ret = ret ?: KVM_IOCTL(vcpu_fd, KVM_GET_SREGS, &s->sregs);
	ret = ret ?: KVM_IOCTL(vcpu_fd, KVM_GET_REGS, &s->regs);
	ret = ret ?: xsave_get(kvm_fd, vcpu_fd, s);
	ret = ret ?: KVM_IOCTL(vcpu_fd, KVM_GET_XCRS, &s->xcrs);
	ret = ret ?: msrs_get(kvm_fd, vcpu_fd, s);
	ret = ret ?: KVM_IOCTL(vcpu_fd, KVM_GET_LAPIC, &s->lapic);
	ret = ret ?: KVM_IOCTL(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events);
	ret = ret ?: KVM_IOCTL(vcpu_fd, KVM_GET_DEBUGREGS, &s->dbg);
	return ret;
}

/* ---- giving the state to KVM ----
 *
 * Every step that refuses writes one line saying why into err (errlen
 * bytes) and returns -errno; nothing here logs. */

static int __attribute__((format(printf, 4, 5)))
set_fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static int kvm_set_named(int vcpu_fd, unsigned long req, void *arg, const char *name, char *err,
			 size_t errlen)
{
	int e;

	if (ioctl(vcpu_fd, req, arg) >= 0)
		return 0;
	e = errno;
	return set_fail(err, errlen, -e, "KVM refuses the saved state: %s: %s", name, strerror(e));
}

/* A KVM_SET_* of the load path; needs err and errlen in scope. */
#define KVM_SET(fd, req, arg) kvm_set_named((fd), (req), (arg), #req, err, errlen)

/* KVM treats rates within 250 ppm of the host's as the host's own
 * (tsc_tolerance_ppm): two hosts of one model differ by that much. */
static bool tsc_khz_close(uint32_t a, uint32_t b)
{
	uint64_t diff = a > b ? a - b : b - a;

	return diff * 1000000 <= (uint64_t)b * TSC_TOLERANCE_PPM;
}

static int tsc_khz_refuse(int kvm_fd, uint32_t khz, uint32_t cur, const char *why, char *err,
			  size_t errlen)
{
	return set_fail(err, errlen, -EOPNOTSUPP, "the saved vCPU's TSC ran at %u kHz and this "
			"host's runs at %u kHz, and KVM cannot give a vCPU another rate here (%s; "
			"KVM_CAP_TSC_CONTROL is %d): source and destination must share a TSC rate",
			khz, cur, why, ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL));
}

/* Without TSC scaling (KVM_CAP_TSC_CONTROL 0, as on kvm_pvm) KVM refuses a
 * lower rate, and "accepts" a higher one by letting the guest's TSC run at
 * the host's rate and jumping it forward at each entry (tsc catchup): a
 * guest moved between hosts whose TSCs tick at different rates would see
 * its time run wrong either way, so both are refused before KVM is asked
 * (a refused KVM_SET_TSC_KHZ still changes the rate KVM reports). */
static int tsc_khz_set(int kvm_fd, int vcpu_fd, uint32_t khz, char *err, size_t errlen)
{
	uint32_t cur = 0;
	int ret = tsc_khz_get(vcpu_fd, &cur);

	if (ret)
		return set_fail(err, errlen, ret, "KVM_GET_TSC_KHZ: %s",
				ret == -EIO ? "rate unknown" : strerror(-ret));
	if (cur == khz)
		return 0;
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) <= 0 && !tsc_khz_close(khz, cur))
		return tsc_khz_refuse(kvm_fd, khz, cur, "no TSC scaling", err, errlen);
	if (ioctl(vcpu_fd, KVM_SET_TSC_KHZ, (unsigned long)khz) < 0)
		return tsc_khz_refuse(kvm_fd, khz, cur, strerror(errno), err, errlen);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* KVM_SET_XSAVE reads as many bytes as this host's XSAVE area has: a
 * smaller saved area is padded with zeros (components absent from its
 * XSTATE_BV), a larger one is accepted only when the excess is unused. */
static int xsave_set(int kvm_fd, int vcpu_fd, const struct x86_vcpu_state *s, char *err,
		     size_t errlen)
{
	uint32_t size = xsave_size(kvm_fd);
	struct kvm_xsave *x;
	int ret;

	if (s->xsave_size > size &&
	    !all_zero((const uint8_t *)s->xsave + size, s->xsave_size - size))
		return set_fail(err, errlen, -EINVAL, "the saved XSAVE area (%u bytes) holds "
				"state beyond this host's %u bytes", s->xsave_size, size);
	x = calloc(1, size);
	if (!x)
		return set_fail(err, errlen, -ENOMEM, "out of memory");
	memcpy(x, s->xsave, MIN(size, s->xsave_size));
	ret = KVM_SET(vcpu_fd, KVM_SET_XSAVE, x);
	free(x);
	return ret;
}

/* KVM_SET_MSRS returns how many it set, stopping at the first it refuses:
 * every MSR must be set, or the guest would run with a lost setting. */
static int msrs_set(int vcpu_fd, const struct kvm_msrs *m, char *err, size_t errlen)
{
	struct kvm_msrs *b = x86_msrs_alloc(MSR_BATCH);
	int ret = 0;

	if (!b)
		return set_fail(err, errlen, -ENOMEM, "out of memory");
	for (uint32_t pos = 0; pos < m->nmsrs;) {
		uint32_t nb = MIN(m->nmsrs - pos, (uint32_t)MSR_BATCH);
		int r;

		b->nmsrs = nb;
		memcpy(b->entries, &m->entries[pos], nb * sizeof(b->entries[0]));
		r = ioctl(vcpu_fd, KVM_SET_MSRS, b);
		if (r < 0) {
			ret = set_fail(err, errlen, -errno, "KVM_SET_MSRS: %s", strerror(errno));
			break;
		}
		if ((uint32_t)r < nb) {
			ret = set_fail(err, errlen, -EINVAL, "KVM refuses MSR 0x%x = 0x%llx of the "
				       "saved vCPU state", b->entries[r].index,
				       (unsigned long long)b->entries[r].data);
			break;
		}
		pos += nb;
	}
	free(b);
	return ret;
}

/* The entry of index in m (the saved list holds each index once), or
 * NULL. */
static const struct kvm_msr_entry *msr_find(const struct kvm_msrs *m, uint32_t index)
{
	for (uint32_t i = 0; i < m->nmsrs; i++)
		if (m->entries[i].index == index)
			return &m->entries[i];
	return NULL;
}

/* Sets one MSR; 0, or -1 when KVM refuses it. */
static int msr_write_one(int vcpu_fd, uint32_t index, uint64_t data)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry e;
	} one = { .head.nmsrs = 1, .e = { .index = index, .data = data } };

	return ioctl(vcpu_fd, KVM_SET_MSRS, &one) == 1 ? 0 : -1;
}

/* KVM before Linux 6.7 ("Don't sync user-written TSC against startup
 * values" changed it) takes a userspace write of MSR_IA32_TSC that lies
 * within a second of the TSC it expects for the VM — the last value
 * written to any of its vCPUs, vCPU creation's 0 included, plus the time
 * since — for an attempt to synchronise the vCPUs, and gives the vCPU the
 * offset of the VM's current TSC generation instead of the value. That
 * is what makes the later vCPUs of a restored VM share the first one's
 * TSC (and KVM's master clock work). But the first one's value is
 * compared with the fresh VM's own TSC, counted from its creation: a
 * guest whose TSC is within a second of that (one saved, or migrated,
 * within a second or so of its start) would get the new VM's age for its
 * TSC, going back or forward by up to a second. So the first vCPU's TSC
 * is written once before, 2^62 cycles away from the saved value: that
 * write starts a generation of its own, and the saved value, too far from
 * it to be taken for a synchronisation, starts the restored one. Harmless
 * where KVM never matches a first userspace write (6.7 on), and where the
 * TSC offset is not applied (kvm_pvm's guests are said to read the host's
 * TSC): the saved value is written last either way. */
static int tsc_unsync(int vcpu_fd, const struct kvm_msrs *m, char *err, size_t errlen)
{
	const struct kvm_msr_entry *e = msr_find(m, MSR_IA32_TSC);

	if (e && msr_write_one(vcpu_fd, MSR_IA32_TSC, e->data ^ (1ull << 62)) < 0)
		return set_fail(err, errlen, -EINVAL, "KVM refuses to set MSR_IA32_TSC");
	return 0;
}

/* KVM drops a TSC deadline written while the LVT timer is not in
 * TSC-deadline mode, and the mode comes with the LAPIC, after the MSRs:
 * so the deadline is written again once the LAPIC is in place. */
static int tsc_deadline_set(int vcpu_fd, const struct kvm_msrs *m, char *err, size_t errlen)
{
	const struct kvm_msr_entry *e = msr_find(m, MSR_IA32_TSC_DEADLINE);

	if (e && msr_write_one(vcpu_fd, e->index, e->data) < 0)
		return set_fail(err, errlen, -EINVAL, "KVM refuses the saved TSC deadline "
				"(MSR 0x%x)", MSR_IA32_TSC_DEADLINE);
	return 0;
}

/* KVM takes the event fields that flags mark valid. NMI pending, the SIPI
 * vector, the interrupt shadow and SMM always are; the exception payload
 * and a pending triple fault only when the source had them enabled and they
 * say something (the destination VM must have enabled them too). */
static int events_set(int vcpu_fd, const struct kvm_vcpu_events *saved, char *err,
		      size_t errlen)
{
	struct kvm_vcpu_events e = *saved;

	e.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		  KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
	if ((saved->flags & KVM_VCPUEVENT_VALID_PAYLOAD) &&
	    (e.exception.pending || e.exception_has_payload))
		e.flags |= KVM_VCPUEVENT_VALID_PAYLOAD;
	if ((saved->flags & KVM_VCPUEVENT_VALID_TRIPLE_FAULT) && e.triple_fault.pending)
		e.flags |= KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
	return KVM_SET(vcpu_fd, KVM_SET_VCPU_EVENTS, &e);
}

/* kvm_amd provides /dev/kvm (and kvm_pvm, which ferry's kvm.c takes for
 * /dev/kvm when it is loaded, does not). */
bool x86_kvm_is_svm(void)
{
	return access("/sys/module/kvm_amd", F_OK) == 0 &&
	       access("/sys/module/kvm_pvm", F_OK) != 0;
}

/* TR's type as this host's KVM must be given it.
 *
 * KVM_GET_SREGS on SVM reports TR with the busy bit set whatever the VMCB
 * holds (svm_get_segment: "the busy flag in the tr selector isn't
 * exposed"): AMD CPUs keep TR's type as LTR read it, 9 (an available
 * TSS), and so does QEMU's emulated SVM. KVM_SET_SREGS writes the type
 * as given, so the saved 11 loaded verbatim leaves the destination's VMCB
 * with 11 where the source's held 9. AMD hardware does not look at it
 * again, but QEMU's emulated SVM (the test host, docs/testing.md) takes
 * TR's type as the TSS check of ring-3 port I/O: anything but 9 is a #GP
 * even for a port the TSS's I/O bitmap opens. So on SVM the busy bit is
 * cleared again (11 → 9, 3 → 1), which gives back what the VMCB had. Not
 * on VMX, whose VM entry requires a busy TSS in TR (type 11 in long mode,
 * 3 or 11 else), nor on kvm_pvm (not SVM, whatever the CPU), where saved
 * test guests were seen to run on as they are. */
static void tr_type_for_host(struct kvm_segment *tr)
{
	if ((tr->type == 11 || tr->type == 3) && x86_kvm_is_svm())
		tr->type &= ~2;
}

/* The load order, and why:
 *  1. CPUID: KVM derives the vCPU's features from it (which MSRs and XSAVE
 *     components exist, the reserved CR4/EFER bits); what follows is
 *     checked against it. Allowed only before the vCPU's first KVM_RUN.
 *  2. TSC kHz: before MSR_IA32_TSC, whose value is taken at that rate.
 *  3. SREGS: CR0/CR4/EFER (the mode REGS and MSRs are checked in) and the
 *     APIC base (the LAPIC must be enabled before its state goes in); TR's
 *     type as the host needs it (tr_type_for_host).
 *  4. REGS, 5. XSAVE, 6. XCRS.
 *  7. MSRS: MSR_IA32_TSC makes the guest's TSC continue from the saved
 *     value, so its clock goes on without a jump (the first vCPU's after
 *     tsc_unsync).
 *  8. MP_STATE, 9. LAPIC (after the irqchip, loaded before any vCPU), then
 *     the TSC deadline again (tsc_deadline_set says why).
 * 10. VCPU_EVENTS: after the LAPIC (a latched INIT is one of its pending
 *     events) and SREGS (whose interrupt bitmap also queues an interrupt).
 * 11. DEBUGREGS. */
static int vcpu_state_set(int kvm_fd, int vcpu_fd, struct x86_vcpu_state *s, bool first,
			  char *err, size_t errlen)
{
	int ret = KVM_SET(vcpu_fd, KVM_SET_CPUID2, &s->cpuid.head);

	ret = ret ?: tsc_khz_set(kvm_fd, vcpu_fd, s->tsc_khz, err, errlen);
	tr_type_for_host(&s->sregs.tr);
	ret = ret ?: KVM_SET(vcpu_fd, KVM_SET_SREGS, &s->sregs);
	ret = ret ?: KVM_SET(vcpu_fd, KVM_SET_REGS, &s->regs);
	ret = ret ?: xsave_set(kvm_fd, vcpu_fd, s, err, errlen);
	ret = ret ?: KVM_SET(vcpu_fd, KVM_SET_XCRS, &s->xcrs);
	if (first)
		ret = ret ?: tsc_unsync(vcpu_fd, s->msrs, err, errlen);
	ret = ret ?: msrs_set(vcpu_fd, s->msrs, err, errlen);
	ret = ret ?: KVM_SET(vcpu_fd, KVM_SET_MP_STATE, &s->mp);
	/* Streams of a ferry that did not raise it at save (x86_vcpu_save). */
	x86_lapic_raise_expired_timer((uint8_t *)s->lapic.regs);
	ret = ret ?: KVM_SET(vcpu_fd, KVM_SET_LAPIC, &s->lapic);
	ret = ret ?: tsc_deadline_set(vcpu_fd, s->msrs, err, errlen);
	ret = ret ?: events_set(vcpu_fd, &s->events, err, errlen);
	ret = ret ?: KVM_SET(vcpu_fd, KVM_SET_DEBUGREGS, &s->dbg);
	/* The guest was stopped (a save, a migration's pause) and its
	 * kvm-clock jumps by that time (x86_clock_ops): PVCLOCK_GUEST_STOPPED
	 * tells a Linux guest so, and its soft-lockup and RCU-stall watchdogs
	 * let the jump pass, as QEMU does on every resume. A guest without
	 * kvm-clock refuses it (EINVAL): nothing to tell. */
	if (ret == 0)
		(void)ioctl(vcpu_fd, KVM_KVMCLOCK_CTRL, 0);
	return ret;
}

int x86_vcpu_save(int kvm_fd, int vcpu_fd, struct buf *out)
{
	struct x86_vcpu_state *s = calloc(1, sizeof(*s));
	size_t start = out->len;
	int ret;

	if (!s)
		return -ENOMEM;
	ret = vcpu_state_get(kvm_fd, vcpu_fd, s);
	if (ret)
		goto out;
	if (x86_lapic_raise_expired_timer((uint8_t *)s->lapic.regs))
		log_debug("vCPU state: the expired one-shot APIC timer's interrupt goes in IRR");
	x86_vcpu_record_put(out, s);
	ret = buf_finish(out);
out:
	if (ret && !out->oom)
		out->len = start;
	x86_vcpu_state_free(s);
	return ret;
}

static int cpuid_get(int vcpu_fd, struct cpuid_table *t);

/* The guest already uses the features its CPUID offered it: a host that
 * lacks one cannot run it (an instruction would fault mid-flight). The
 * saved table is compared with the one this host gave the fresh vCPU
 * (what KVM supports here, as vcpu_create set it — or, on kvm_pvm, which
 * replaces a vCPU's table with near-host values, those). Checked before
 * anything is set, so the vCPU is left untouched. */
static int cpuid_check(int vcpu_fd, struct x86_vcpu_state *s, char *err, size_t errlen)
{
	struct cpuid_table *host = malloc(sizeof(*host));
	char missing[400];
	int ret;

	if (!host)
		return set_fail(err, errlen, -ENOMEM, "out of memory");
	ret = cpuid_get(vcpu_fd, host);
	if (ret)
		set_fail(err, errlen, ret, "KVM_GET_CPUID2: %s", strerror(-ret));
	else if ((ret = x86_cpuid_check_compatible(&s->cpuid, host, missing, sizeof(missing))))
		set_fail(err, errlen, ret, "the guest uses CPU features this host lacks: %s",
			 missing);
	free(host);
	return ret;
}

int x86_vcpu_load(int kvm_fd, int vcpu_fd, uint32_t version, const uint8_t *data, size_t len,
		  bool first, char *err, size_t errlen)
{
	struct x86_vcpu_state *s;
	int ret = x86_vcpu_record_parse(version, data, len, &s, NULL);

	if (ret == -EPROTO)
		return set_fail(err, errlen, ret, "state version %u: this ferry reads version %u",
				version, X86_VCPU_STATE_VERSION);
	if (ret)
		return set_fail(err, errlen, ret, "the state record (%zu bytes) is %s", len,
				ret == -EINVAL ? "malformed" : strerror(-ret));
	ret = cpuid_check(vcpu_fd, s, err, errlen);
	ret = ret ?: vcpu_state_set(kvm_fd, vcpu_fd, s, first, err, errlen);
	x86_vcpu_state_free(s);
	return ret;
}
