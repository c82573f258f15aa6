/* The vCPU record of a ferry stream: a vCPU's complete state as fixed-width
 * little-endian fields (STYLE.md §11). This is the pure part — encode,
 * parse, check — with no KVM; cpu_state.h reads and writes vCPUs.
 *
 * A vCPU record (version 1) is these sections, in this order, which is
 * also the order they are loaded in (vcpu_state_set says why):
 *   CPUID, TSC kHz, SREGS, REGS, XSAVE, XCRS, MSRS, MP_STATE, LAPIC,
 *   VCPU_EVENTS, DEBUGREGS.
 * Each *_put in vcpu_record.c gives its section's layout. All fields
 * little-endian; KVM's padding and reserved fields are not written.
 */
#ifndef FERRY_ARCH_X86_VCPU_RECORD_H
#define FERRY_ARCH_X86_VCPU_RECORD_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/cpuid.h"
#include "common/buf.h"

#define X86_VCPU_STATE_VERSION 1

/* Limits a reader enforces before it allocates anything. */
#define X86_STATE_MSR_MAX 1024          /* MSRs in a vCPU record */
#define X86_STATE_XSAVE_MAX (64 * 1024) /* bytes of XSAVE area */

#define XSAVE_LEGACY_SIZE ((uint32_t)sizeof(struct kvm_xsave))
#define CPUID_ENTRY_BYTES 28
#define MSR_ENTRY_BYTES 12

/* Everything a vCPU record holds, as KVM's structures. Save fills it from
 * KVM and writes it out; load parses a record into it completely, and only
 * then gives it to KVM. */
struct x86_vcpu_state {
	struct cpuid_table cpuid;
	uint32_t tsc_khz;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_xsave *xsave; /* xsave_size bytes */
	uint32_t xsave_size;
	struct kvm_xcrs xcrs;
	struct kvm_msrs *msrs;   /* msrs->nmsrs entries */
	struct kvm_mp_state mp;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dbg;
};

void x86_vcpu_state_free(struct x86_vcpu_state *s);

/* A kvm_msrs of n entries (zeroed), or NULL. */
struct kvm_msrs *x86_msrs_alloc(uint32_t n);

/* Appends s as a record of X86_VCPU_STATE_VERSION to b. */
void x86_vcpu_record_put(struct buf *b, struct x86_vcpu_state *s);

/* The one-shot APIC timer interrupt KVM may hold back from a saved LAPIC
 * (regs: KVM_GET_LAPIC's 1 KiB page). A timer that fires while its vCPU
 * is out of KVM_RUN — paused for a save or a migration's hand-over — is
 * counted in KVM (lapic_timer.pending) and reaches IRR only at the next
 * entry; KVM_GET_LAPIC shows it nowhere (current count 0, as for a timer
 * that fired long ago). What a LAPIC loaded with the count at 0 does
 * depends on the KVM: those measured (6.1 on SVM, kvm_pvm) start it again
 * at once, so the interrupt comes; a KVM that restarts the count from the
 * initial one delivers it a whole period late. So a software-enabled LAPIC
 * whose unmasked one-shot timer was armed (initial count not 0) and has
 * run out (current count 0), with its vector in neither IRR nor ISR, gets
 * the vector set in IRR: due at once on any KVM, and taken once where KVM
 * fires it too (tests/kvm/test_state.c: test_expired_timer_after_load);
 * at worst the guest sees one spurious tick (it took the interrupt and did
 * not re-arm). TSC-deadline timers need nothing (KVM keeps a passed
 * deadline until it injects, and loading it fires at once); a periodic
 * timer re-arms itself. Returns true when it set the bit. */
bool x86_lapic_raise_expired_timer(uint8_t *regs);

/* Where the sections of a vCPU record start (byte offsets into it), for
 * tools that dump or compare records. */
struct x86_vcpu_record_layout {
	size_t cpuid, tsc_khz, sregs, regs, xsave, xcrs, msrs, mp_state, lapic, events,
		debugregs;
	uint32_t nmsrs; /* MSR entries, each {u32 index, u64 value}, from msrs + 4 */
};

/* Parses a whole record of `version` into a new state (*s, to be freed
 * with x86_vcpu_state_free; NULL on error), noting where each section
 * starts in *lay (may be NULL). Returns 0, -EPROTO (another version),
 * -EINVAL (malformed) or -ENOMEM. */
int x86_vcpu_record_parse(uint32_t version, const uint8_t *data, size_t len,
			  struct x86_vcpu_state **s, struct x86_vcpu_record_layout *lay);

/* Checks a vCPU record exactly as x86_vcpu_load does, without KVM, and
 * fills in *layout (may be NULL). Logs nothing. Returns 0, -EPROTO or
 * -EINVAL. */
int x86_vcpu_record_check(uint32_t version, const uint8_t *data, size_t len,
			  struct x86_vcpu_record_layout *layout);

#endif
