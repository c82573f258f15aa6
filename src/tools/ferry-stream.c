/* ferry-stream: reads a saved ferry stream without the VMM — an independent
 * check of docs/stream-format.md and a debugging aid.
 *
 *   ferry-stream verify FILE   checks every record; exit 0 when it is sound
 *   ferry-stream dump FILE     prints every record, then the same verdict
 *                              (for a vCPU: RIP, RFLAGS, MP state and its LAPIC)
 *
 * It checks what can be checked without KVM: the header, each record's
 * length, padding and CRC32C, VM_INFO first and END last with nothing
 * after it, RAM descriptors against the RAM layout, device records' form,
 * vCPU records in full (x86_vcpu_record_check), one record per vCPU. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/x86/cpu_state.h"
#include "common/log.h"
#include "common/util.h"
#include "migration/state.h"

struct totals {
	uint64_t records, pages_full, pages_zero, devices, vcpus;
};

static int check_device(const uint8_t *p, size_t len, bool dump)
{
	uint32_t nlen;

	if (len < 12 || (nlen = get_le32(p)) > 64 || len < 12ull + nlen)
		return -EINVAL;
	if (dump)
		printf("DEVICE %.*s/%u version %u, %zu bytes of state\n", (int)nlen,
		       (const char *)p + 4, get_le32(p + 4 + nlen), get_le32(p + 8 + nlen),
		       len - 12 - nlen);
	return 0;
}

/* The 256 bits of a LAPIC vector register (ISR, TMR, IRR) as the vectors
 * set, comma-separated, or "-". */
static void print_vectors(const char *name, const uint8_t *lapic, unsigned reg)
{
	bool any = false;

	printf(" %s=", name);
	for (unsigned v = 0; v < 256; v++) {
		if (get_le32(lapic + reg + (v / 32) * 16) & (1u << (v % 32))) {
			printf("%s%u", any ? "," : "", v);
			any = true;
		}
	}
	if (!any)
		printf("-");
}

/* What says where a vCPU is and why it may wait: RIP, RFLAGS, the MP
 * state, the interrupt being injected, and its LAPIC's priority and
 * vector registers and timer (the 1 KiB register page, SDM vol. 3 §11.4.1
 * offsets), then the TSC deadline MSR. */
static void dump_vcpu(const uint8_t *rec, const struct x86_vcpu_record_layout *l)
{
	const uint8_t *lapic = rec + l->lapic;
	uint64_t deadline = 0;

	for (uint32_t i = 0; i < l->nmsrs; i++) {
		const uint8_t *e = rec + l->msrs + 4 + i * 12;

		if (get_le32(e) == 0x6e0) /* IA32_TSC_DEADLINE */
			deadline = get_le64(e + 4);
	}
	/* REGS: 16 general registers, then rip and rflags (u64 each) */
	printf("           rip=0x%llx rflags=0x%llx mp_state=%u interrupt.injected=%u nr=%u\n",
	       (unsigned long long)get_le64(rec + l->regs + 16 * 8),
	       (unsigned long long)get_le64(rec + l->regs + 17 * 8), get_le32(rec + l->mp_state),
	       rec[l->events + 8], rec[l->events + 9]);
	/* VCPU_EVENTS (docs/stream-format.md): nmi at 12, sipi_vector at 15,
	 * flags at 19, smi {smm, pending, smm_inside_nmi, latched_init} at 23,
	 * triple_fault.pending at 27. */
	printf("           events: exception.pending=%u nr=%u nmi.pending=%u sipi=0x%x flags=0x%x "
	       "smm=%u smi.pending=%u latched_init=%u triple_fault=%u\n",
	       rec[l->events + 3], rec[l->events + 1], rec[l->events + 13],
	       get_le32(rec + l->events + 15), get_le32(rec + l->events + 19), rec[l->events + 23],
	       rec[l->events + 24], rec[l->events + 26], rec[l->events + 27]);
	printf("           lapic: svr=0x%x tpr=0x%x ppr=0x%x lvt_timer=0x%x tmict=%u tmcct=%u "
	       "tdcr=0x%x tsc_deadline=%llu\n           lapic:",
	       get_le32(lapic + 0xf0), get_le32(lapic + 0x80), get_le32(lapic + 0xa0),
	       get_le32(lapic + 0x320), get_le32(lapic + 0x380), get_le32(lapic + 0x390),
	       get_le32(lapic + 0x3e0), (unsigned long long)deadline);
	print_vectors("isr", lapic, 0x100);
	print_vectors("tmr", lapic, 0x180);
	print_vectors("irr", lapic, 0x200);
	printf("\n");
}

static int check_vcpu(const uint8_t *p, size_t len, bool *seen, uint32_t ncpus, bool dump,
		      char *err, size_t errlen)
{
	struct x86_vcpu_record_layout l;
	uint32_t idx;
	int ret;

	if (len < 8 || (idx = get_le32(p)) >= ncpus || seen[idx]) {
		snprintf(err, errlen, "VCPU record with a bad or repeated index");
		return -EINVAL;
	}
	ret = x86_vcpu_record_check(get_le32(p + 4), p + 8, len - 8, &l);
	if (ret) {
		snprintf(err, errlen, "vCPU %u: %s", idx,
			 ret == -EPROTO ? "unknown state version" : "malformed state record");
		return ret;
	}
	seen[idx] = true;
	if (dump) {
		printf("VCPU %u version %u, %zu bytes: %u MSRs\n", idx, get_le32(p + 4), len - 8,
		       l.nmsrs);
		dump_vcpu(p + 8, &l);
	}
	return 0;
}

static int check_ram(const struct state_info *info, const uint8_t *p, size_t len,
		     struct totals *t, bool dump, char *err, size_t errlen)
{
	uint32_t n, full;
	int ret = state_ram_record_check(info->ram_size, p, len, &n, &full, err, errlen);

	if (ret)
		return ret;
	t->pages_full += full;
	t->pages_zero += n - full;
	if (dump)
		printf("RAM %u pages (%u full) from 0x%llx\n", n, full,
		       (unsigned long long)(get_le64(p + 8) & ~0xfffull));
	return 0;
}

static int check_records(struct stream_reader *r, const struct state_info *info, bool dump,
			 struct totals *t)
{
	bool *seen = calloc(info->ncpus, sizeof(bool));
	int ret = seen ? 0 : -ENOMEM;

	while (ret == 0) {
		const uint8_t *p;
		uint32_t type;
		size_t len;
		uint64_t off = r->offset;

		ret = stream_read_record(r, &type, &p, &len);
		if (ret)
			break;
		t->records++;
		if (dump)
			printf("%10llu  ", (unsigned long long)off);
		if (type == REC_RAM) {
			ret = check_ram(info, p, len, t, dump, r->error, sizeof(r->error));
		} else if (type == REC_DEVICE) {
			ret = check_device(p, len, dump);
			if (ret)
				snprintf(r->error, sizeof(r->error), "malformed DEVICE record");
			t->devices++;
		} else if (type == REC_VCPU) {
			ret = check_vcpu(p, len, seen, info->ncpus, dump, r->error, sizeof(r->error));
			t->vcpus++;
		} else if (type == REC_END) {
			if (dump)
				printf("END\n");
			if (t->vcpus != info->ncpus) {
				snprintf(r->error, sizeof(r->error), "%llu VCPU records for %u vCPUs",
					 (unsigned long long)t->vcpus, info->ncpus);
				ret = -EINVAL;
			} else if (!stream_reader_at_eof(r)) {
				snprintf(r->error, sizeof(r->error), "data after the END record");
				ret = -EINVAL;
			}
			break;
		} else if (!(type & STREAM_REC_OPTIONAL)) {
			snprintf(r->error, sizeof(r->error), "%s record (type %u) where none may be",
				 stream_rec_name(type), type);
			ret = -EINVAL;
		} else if (dump) {
			printf("optional record type %u, %zu bytes (skipped)\n",
			       type & ~STREAM_REC_OPTIONAL, len);
		}
	}
	free(seen);
	return ret;
}

static int run(const char *path, bool dump)
{
	struct stream_reader r;
	struct state_info info;
	struct totals t = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		fprintf(stderr, "ferry-stream: %s: %s\n", path, strerror(errno));
		return 1;
	}
	ret = state_read_info(&r, fd, &info);
	if (ret == 0) {
		if (dump)
			printf("%10u  VM_INFO: %llu MiB RAM, %u vCPUs, name \"%s\", cmdline \"%s\", "
			       "kernel \"%s\", serial \"%s\", cpu \"%s\"\n", STREAM_HEADER_SIZE,
			       (unsigned long long)(info.ram_size >> 20), info.ncpus, info.name,
			       info.cmdline, info.kernel, info.serial, info.cpu);
		ret = check_records(&r, &info, dump, &t);
		state_info_free(&info);
	}
	if (ret)
		fprintf(stderr, "ferry-stream: %s: %s\n", path, r.error);
	else
		printf("%s: ok: %llu records, %llu RAM pages (%llu MiB) + %llu zero, %llu devices, "
		       "%llu vCPUs\n", path, (unsigned long long)t.records + 1,
		       (unsigned long long)t.pages_full, (unsigned long long)(t.pages_full >> 8),
		       (unsigned long long)t.pages_zero, (unsigned long long)t.devices,
		       (unsigned long long)t.vcpus);
	stream_reader_free(&r);
	close(fd);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	log_init("ferry-stream");
	if (argc != 3 || (strcmp(argv[1], "verify") && strcmp(argv[1], "dump"))) {
		fprintf(stderr, "usage: ferry-stream verify|dump FILE\n");
		return 2;
	}
	return run(argv[2], !strcmp(argv[1], "dump"));
}
