/* The vCPU record (docs/stream-format.md): encoding, parsing and checking,
 * with no KVM. ferry-stream reads records through here, and a fuzzer can
 * drive it; cpu_state.c gets the state from KVM and gives it back. */
#include "arch/x86/vcpu_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void x86_vcpu_state_free(struct x86_vcpu_state *s)
{
	if (!s)
		return;
	free(s->xsave);
	free(s->msrs);
	free(s);
}

struct kvm_msrs *x86_msrs_alloc(uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + (size_t)n * sizeof(m->entries[0]));

	if (m)
		m->nmsrs = n;
	return m;
}

/* ---- the record: one function per section and direction ----
 *
 * Fields that are a plain list of same-width scalars are named once, in a
 * table of pointers that both directions walk, so put and get cannot
 * drift apart. */

static void put_u64s(struct buf *b, __u64 *const *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_put_u64(b, *f[i]);
}

static void get_u64s(struct reader *r, __u64 *const *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		*f[i] = reader_u64(r);
}

static size_t reader_left(const struct reader *r)
{
	return r->short_read ? 0 : r->len - r->off;
}

/* CPUID: u32 nent (<= 256), then nent × {u32 function, index, flags, eax,
 * ebx, ecx, edx}. */
static void cpuid_put(struct buf *b, const struct cpuid_table *t)
{
	buf_put_u32(b, t->head.nent);
	for (uint32_t i = 0; i < t->head.nent; i++) {
		const struct kvm_cpuid_entry2 *e = &t->entries[i];

		buf_put_u32(b, e->function);
		buf_put_u32(b, e->index);
		buf_put_u32(b, e->flags);
		buf_put_u32(b, e->eax);
		buf_put_u32(b, e->ebx);
		buf_put_u32(b, e->ecx);
		buf_put_u32(b, e->edx);
	}
}

static int cpuid_parse(struct reader *r, struct cpuid_table *t)
{
	uint32_t n = reader_u32(r);

	if (n > CPUID_MAX_ENTRIES || (size_t)n * CPUID_ENTRY_BYTES > reader_left(r))
		return -EINVAL;
	t->head.nent = n;
	for (uint32_t i = 0; i < n; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		e->function = reader_u32(r);
		e->index = reader_u32(r);
		e->flags = reader_u32(r);
		e->eax = reader_u32(r);
		e->ebx = reader_u32(r);
		e->ecx = reader_u32(r);
		e->edx = reader_u32(r);
	}
	return 0;
}

/* A segment: u64 base, u32 limit, u16 selector, u8 type, present, dpl, db,
 * s, l, g, avl, unusable (23 bytes). */
#define SEGMENT_U8S(s)                                                                     \
	{ &(s)->type, &(s)->present, &(s)->dpl, &(s)->db, &(s)->s, &(s)->l, &(s)->g, &(s)->avl, \
	  &(s)->unusable }

static void segment_put(struct buf *b, struct kvm_segment *s)
{
	uint8_t *const u[] = SEGMENT_U8S(s);

	buf_put_u64(b, s->base);
	buf_put_u32(b, s->limit);
	buf_put_u16(b, s->selector);
	buf_put_u8s(b, u, ARRAY_SIZE(u));
}

static void segment_get(struct reader *r, struct kvm_segment *s)
{
	uint8_t *const u[] = SEGMENT_U8S(s);

	s->base = reader_u64(r);
	s->limit = reader_u32(r);
	s->selector = reader_u16(r);
	reader_u8s(r, u, ARRAY_SIZE(u));
}

/* The segments in record order: cs, ds, es, fs, gs, ss, tr, ldt. */
#define SREGS_SEGMENTS(sr) \
	{ &(sr)->cs, &(sr)->ds, &(sr)->es, &(sr)->fs, &(sr)->gs, &(sr)->ss, &(sr)->tr, &(sr)->ldt }
/* Then gdt, idt as {u64 base, u16 limit}; then these u64s. */
#define SREGS_U64S(sr)                                                                     \
	{ &(sr)->cr0, &(sr)->cr2, &(sr)->cr3, &(sr)->cr4, &(sr)->cr8, &(sr)->efer,         \
	  &(sr)->apic_base, &(sr)->interrupt_bitmap[0], &(sr)->interrupt_bitmap[1],        \
	  &(sr)->interrupt_bitmap[2], &(sr)->interrupt_bitmap[3] }

/* SREGS: 8 segments (above), gdt and idt {u64 base, u16 limit}, u64 cr0,
 * cr2, cr3, cr4, cr8, efer, apic_base, interrupt_bitmap[4] (292 bytes). */
static void sregs_put(struct buf *b, struct kvm_sregs *sr)
{
	struct kvm_segment *seg[] = SREGS_SEGMENTS(sr);
	__u64 *const u[] = SREGS_U64S(sr);

	for (size_t i = 0; i < ARRAY_SIZE(seg); i++)
		segment_put(b, seg[i]);
	buf_put_u64(b, sr->gdt.base);
	buf_put_u16(b, sr->gdt.limit);
	buf_put_u64(b, sr->idt.base);
	buf_put_u16(b, sr->idt.limit);
	put_u64s(b, u, ARRAY_SIZE(u));
}

static void sregs_get(struct reader *r, struct kvm_sregs *sr)
{
	struct kvm_segment *seg[] = SREGS_SEGMENTS(sr);
	__u64 *const u[] = SREGS_U64S(sr);

	for (size_t i = 0; i < ARRAY_SIZE(seg); i++)
		segment_get(r, seg[i]);
	sr->gdt.base = reader_u64(r);
	sr->gdt.limit = reader_u16(r);
	sr->idt.base = reader_u64(r);
	sr->idt.limit = reader_u16(r);
	get_u64s(r, u, ARRAY_SIZE(u));
}

/* REGS: u64 rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp, r8-r15, rip, rflags
 * (144 bytes). */
#define REGS_U64S(g)                                                                       \
	{ &(g)->rax, &(g)->rbx, &(g)->rcx, &(g)->rdx, &(g)->rsi, &(g)->rdi, &(g)->rsp,     \
	  &(g)->rbp, &(g)->r8,	&(g)->r9,  &(g)->r10, &(g)->r11, &(g)->r12, &(g)->r13,     \
	  &(g)->r14, &(g)->r15, &(g)->rip, &(g)->rflags }

static void regs_put(struct buf *b, struct kvm_regs *g)
{
	__u64 *const u[] = REGS_U64S(g);

	put_u64s(b, u, ARRAY_SIZE(u));
}

static void regs_get(struct reader *r, struct kvm_regs *g)
{
	__u64 *const u[] = REGS_U64S(g);

	get_u64s(r, u, ARRAY_SIZE(u));
}

/* XSAVE: u32 size (4096 to 64 KiB, a multiple of 4), then the XSAVE area
 * as KVM gives it (the architectural, non-compacted XSAVE layout). */
static void xsave_put(struct buf *b, const struct x86_vcpu_state *s)
{
	buf_put_u32(b, s->xsave_size);
	buf_put(b, s->xsave, s->xsave_size);
}

static int xsave_parse(struct reader *r, struct x86_vcpu_state *s)
{
	uint32_t size = reader_u32(r);

	if (size < XSAVE_LEGACY_SIZE || size > X86_STATE_XSAVE_MAX || size % 4 ||
	    size > reader_left(r))
		return -EINVAL;
	s->xsave = malloc(size);
	if (!s->xsave)
		return -ENOMEM;
	s->xsave_size = size;
	reader_get(r, s->xsave, size);
	return 0;
}

/* XCRS: u32 nr_xcrs (<= 16), u32 flags, nr_xcrs × {u32 xcr, u64 value}. */
static void xcrs_put(struct buf *b, const struct kvm_xcrs *x)
{
	buf_put_u32(b, x->nr_xcrs);
	buf_put_u32(b, x->flags);
	for (uint32_t i = 0; i < x->nr_xcrs && i < KVM_MAX_XCRS; i++) {
		buf_put_u32(b, x->xcrs[i].xcr);
		buf_put_u64(b, x->xcrs[i].value);
	}
}

static int xcrs_parse(struct reader *r, struct kvm_xcrs *x)
{
	x->nr_xcrs = reader_u32(r);
	x->flags = reader_u32(r);
	if (x->nr_xcrs > KVM_MAX_XCRS)
		return -EINVAL;
	for (uint32_t i = 0; i < x->nr_xcrs; i++) {
		x->xcrs[i].xcr = reader_u32(r);
		x->xcrs[i].value = reader_u64(r);
	}
	return 0;
}

/* MSRS: u32 count (<= 1024), count × {u32 index, u64 value}. */
static void msrs_put(struct buf *b, const struct kvm_msrs *m)
{
	buf_put_u32(b, m->nmsrs);
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		buf_put_u32(b, m->entries[i].index);
		buf_put_u64(b, m->entries[i].data);
	}
}

static int msrs_parse(struct reader *r, struct x86_vcpu_state *s)
{
	uint32_t n = reader_u32(r);

	if (n > X86_STATE_MSR_MAX || (size_t)n * MSR_ENTRY_BYTES > reader_left(r))
		return -EINVAL;
	s->msrs = x86_msrs_alloc(n);
	if (!s->msrs)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		s->msrs->entries[i].index = reader_u32(r);
		s->msrs->entries[i].data = reader_u64(r);
	}
	return 0;
}

/* VCPU_EVENTS (37 bytes): exception {u8 injected, nr, has_error_code,
 * pending; u32 error_code}, interrupt {u8 injected, nr, soft, shadow},
 * nmi {u8 injected, pending, masked}, u32 sipi_vector, u32 flags (as
 * KVM_GET_VCPU_EVENTS gave them), smi {u8 smm, pending, smm_inside_nmi,
 * latched_init}, u8 triple_fault.pending, u8 exception_has_payload,
 * u64 exception_payload. */
#define EVENTS_U8S_A(e)                                                                    \
	{ &(e)->exception.injected, &(e)->exception.nr, &(e)->exception.has_error_code,    \
	  &(e)->exception.pending }
#define EVENTS_U8S_B(e)                                                                    \
	{ &(e)->interrupt.injected, &(e)->interrupt.nr, &(e)->interrupt.soft,              \
	  &(e)->interrupt.shadow, &(e)->nmi.injected, &(e)->nmi.pending, &(e)->nmi.masked }
#define EVENTS_U8S_C(e)                                                                    \
	{ &(e)->smi.smm, &(e)->smi.pending, &(e)->smi.smm_inside_nmi, &(e)->smi.latched_init, \
	  &(e)->triple_fault.pending, &(e)->exception_has_payload }

static void events_put(struct buf *b, struct kvm_vcpu_events *e)
{
	uint8_t *const a[] = EVENTS_U8S_A(e), *const m[] = EVENTS_U8S_B(e);
	uint8_t *const c[] = EVENTS_U8S_C(e);

	buf_put_u8s(b, a, ARRAY_SIZE(a));
	buf_put_u32(b, e->exception.error_code);
	buf_put_u8s(b, m, ARRAY_SIZE(m));
	buf_put_u32(b, e->sipi_vector);
	buf_put_u32(b, e->flags);
	buf_put_u8s(b, c, ARRAY_SIZE(c));
	buf_put_u64(b, e->exception_payload);
}

static void events_get(struct reader *r, struct kvm_vcpu_events *e)
{
	uint8_t *const a[] = EVENTS_U8S_A(e), *const m[] = EVENTS_U8S_B(e);
	uint8_t *const c[] = EVENTS_U8S_C(e);

	reader_u8s(r, a, ARRAY_SIZE(a));
	e->exception.error_code = reader_u32(r);
	reader_u8s(r, m, ARRAY_SIZE(m));
	e->sipi_vector = reader_u32(r);
	e->flags = reader_u32(r);
	reader_u8s(r, c, ARRAY_SIZE(c));
	e->exception_payload = reader_u64(r);
}

/* DEBUGREGS: u64 db0-db3, dr6, dr7, flags. */
#define DEBUGREGS_U64S(d)                                                                  \
	{ &(d)->db[0], &(d)->db[1], &(d)->db[2], &(d)->db[3], &(d)->dr6, &(d)->dr7, &(d)->flags }

void x86_vcpu_record_put(struct buf *b, struct x86_vcpu_state *s)
{
	__u64 *const dbg[] = DEBUGREGS_U64S(&s->dbg);

	cpuid_put(b, &s->cpuid);
	buf_put_u32(b, s->tsc_khz); /* TSC kHz: u32, not 0 */
	sregs_put(b, &s->sregs);
	regs_put(b, &s->regs);
	xsave_put(b, s);
	xcrs_put(b, &s->xcrs);
	msrs_put(b, s->msrs);
	buf_put_u32(b, s->mp.mp_state); /* MP_STATE: u32 */
	buf_put(b, s->lapic.regs, sizeof(s->lapic.regs)); /* LAPIC: the 1 KiB register page */
	events_put(b, &s->events);
	put_u64s(b, dbg, ARRAY_SIZE(dbg));
}

/* Parses a whole record into s, noting where each section starts. */
static int vcpu_state_parse(struct reader *r, struct x86_vcpu_state *s,
			    struct x86_vcpu_record_layout *lay)
{
	__u64 *const dbg[] = DEBUGREGS_U64S(&s->dbg);
	int ret;

	lay->cpuid = r->off;
	ret = cpuid_parse(r, &s->cpuid);
	lay->tsc_khz = r->off;
	s->tsc_khz = reader_u32(r);
	lay->sregs = r->off;
	sregs_get(r, &s->sregs);
	lay->regs = r->off;
	regs_get(r, &s->regs);
	lay->xsave = r->off;
	ret = ret ?: xsave_parse(r, s);
	lay->xcrs = r->off;
	ret = ret ?: xcrs_parse(r, &s->xcrs);
	lay->msrs = r->off;
	ret = ret ?: msrs_parse(r, s);
	if (ret)
		return ret;
	lay->nmsrs = s->msrs->nmsrs;
	lay->mp_state = r->off;
	s->mp.mp_state = reader_u32(r);
	lay->lapic = r->off;
	reader_get(r, s->lapic.regs, sizeof(s->lapic.regs));
	lay->events = r->off;
	events_get(r, &s->events);
	lay->debugregs = r->off;
	get_u64s(r, dbg, ARRAY_SIZE(dbg));
	ret = reader_finish(r);
	return ret ?: (s->tsc_khz == 0 ? -EINVAL : 0);
}

int x86_vcpu_record_parse(uint32_t version, const uint8_t *data, size_t len,
			  struct x86_vcpu_state **s, struct x86_vcpu_record_layout *lay)
{
	struct x86_vcpu_record_layout tmp;
	struct reader r;
	int ret;

	*s = NULL;
	if (version != X86_VCPU_STATE_VERSION)
		return -EPROTO;
	*s = calloc(1, sizeof(**s));
	if (!*s)
		return -ENOMEM;
	reader_init(&r, data, len);
	ret = vcpu_state_parse(&r, *s, lay ? lay : &tmp);
	if (ret) {
		x86_vcpu_state_free(*s);
		*s = NULL;
	}
	return ret;
}

int x86_vcpu_record_check(uint32_t version, const uint8_t *data, size_t len,
			  struct x86_vcpu_record_layout *layout)
{
	struct x86_vcpu_state *s;
	int ret = x86_vcpu_record_parse(version, data, len, &s, layout);

	x86_vcpu_state_free(s);
	return ret;
}

#define APIC_SVR 0x0f0
#define APIC_SVR_ENABLE 0x100
#define APIC_ISR 0x100
#define APIC_IRR 0x200
#define APIC_LVTT 0x320
#define APIC_LVT_MASKED (1u << 16)
#define APIC_LVTT_MODE (3u << 17) /* 0: one-shot, 1: periodic, 2: TSC deadline */
#define APIC_TMICT 0x380
#define APIC_TMCCT 0x390

/* Bit v of the 256-bit register at base (8 words, 16 bytes apart). */
static uint8_t *vector_word(uint8_t *regs, unsigned base, unsigned v)
{
	return regs + base + 0x10 * (v / 32);
}

bool x86_lapic_raise_expired_timer(uint8_t *regs)
{
	uint32_t lvtt = get_le32(regs + APIC_LVTT);
	unsigned v = lvtt & 0xff, bit = 1u << (v % 32);

	if (!(get_le32(regs + APIC_SVR) & APIC_SVR_ENABLE) || (lvtt & APIC_LVT_MASKED) ||
	    (lvtt & APIC_LVTT_MODE) || v < 16 || !get_le32(regs + APIC_TMICT) ||
	    get_le32(regs + APIC_TMCCT))
		return false;
	if ((get_le32(vector_word(regs, APIC_IRR, v)) | get_le32(vector_word(regs, APIC_ISR, v))) &
	    bit)
		return false;
	put_le32(vector_word(regs, APIC_IRR, v), get_le32(vector_word(regs, APIC_IRR, v)) | bit);
	return true;
}
