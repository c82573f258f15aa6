/* Domain definitions: the libvirt-compatible subset of domain XML that ferryd
 * keeps, parsed with libxml2 and written back in a fixed order
 * (docs/domain-xml.md lists what is accepted). Parsing refuses whatever ferry
 * does not support, naming it; nothing is silently dropped, so dumpxml gives
 * back what was defined (with defaults and generated values filled in). */
#ifndef FERRY_DAEMON_DOMAIN_H
#define FERRY_DAEMON_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define DOMAIN_NAME_MAX      64
#define DOMAIN_MAX_DISKS     8   /* ferry-vmm's VM_MAX_DISKS */
#define DOMAIN_MAX_NETS      4   /* ferry-vmm's VM_MAX_NETS */
#define DOMAIN_DISK_ID_MAX   20  /* virtio-blk serial (VIRTIO_BLK_ID_BYTES) */
#define DOMAIN_IFNAME_MAX    15  /* a Linux interface name */
#define DOMAIN_MIN_MEMORY    (8ull << 20)
#define DOMAIN_XML_MAX       (1u << 20) /* larger documents are refused */

enum domain_type { DOMAIN_TYPE_KVM, DOMAIN_TYPE_FERRY };
enum domain_lifecycle { DOMAIN_LC_DESTROY, DOMAIN_LC_RESTART, DOMAIN_LC_PRESERVE };
enum domain_chr { DOMAIN_CHR_NONE, DOMAIN_CHR_PTY, DOMAIN_CHR_FILE, DOMAIN_CHR_NULL };

struct domain_disk {
	char *path;                          /* <source file=>, malloc'ed */
	char dev[8];                         /* <target dev='vdX'> */
	char driver[8];                      /* <driver name=>: "qemu" or "ferry" */
	bool cache_none;                     /* cache='none' (O_DIRECT); else writeback */
	bool readonly;                       /* <readonly/> */
	char serial[DOMAIN_DISK_ID_MAX + 1]; /* <serial>, "" if none */
};

struct domain_net {
	char tap[DOMAIN_IFNAME_MAX + 1];     /* <target dev=> */
	uint8_t mac[6];                      /* <mac address=>, generated if absent */
};

/* <cpu>/<feature policy= name=>: a CPUID feature turned off (disable) or
 * required of the host (require); ferry-vmm's --cpu checks the name. */
#define DOMAIN_MAX_CPU_FEATURES 32
#define DOMAIN_CPU_FEATURE_NAME_MAX 32
struct domain_cpu_feature {
	char name[DOMAIN_CPU_FEATURE_NAME_MAX + 1];
	bool require;
};

struct domain_def {
	enum domain_type type;
	char name[DOMAIN_NAME_MAX + 1];
	uint8_t uuid[16];                    /* generated (v4) if absent */
	bool uuid_generated;                 /* it was absent (not compared, not written) */
	uint64_t memory;                     /* bytes, a whole number of MiB */
	uint64_t current_memory;             /* bytes, <= memory */
	unsigned vcpus;                      /* 1..255 */
	bool arch_given;                     /* <type arch='x86_64'> */
	char *kernel, *initrd, *cmdline;     /* malloc'ed; initrd, cmdline may be NULL */
	char cpu_mode[24];                   /* "host-passthrough", "host-model" or "" */
	struct domain_cpu_feature cpu_features[DOMAIN_MAX_CPU_FEATURES]; /* in order */
	unsigned ncpu_features;
	enum domain_lifecycle on_poweroff, on_reboot, on_crash;
	struct domain_disk disks[DOMAIN_MAX_DISKS];
	unsigned ndisks;
	struct domain_net nets[DOMAIN_MAX_NETS];
	unsigned nnets;
	enum domain_chr serial;              /* serial 0 (<serial> or <console>) */
	char *serial_path;                   /* DOMAIN_CHR_FILE only, malloc'ed */
};

/* Parses domain XML (len bytes; need not be NUL-terminated) into *d, which is
 * overwritten. No DTD, entity or network access: a document with a DOCTYPE
 * is refused. Returns 0, or -EINVAL with one line in err (unsupported element
 * or attribute with its path, bad value, malformed XML quoting libxml2), or
 * -ENOMEM / -errno (getrandom). On failure *d holds nothing to free. */
int domain_parse(const char *xml, size_t len, struct domain_def *d, char *err, size_t errlen);

/* Appends d as XML to out (then NUL-terminated; the NUL is not counted in
 * out->len), in a fixed order with memory in KiB as libvirt's dumpxml does:
 * domain_parse() of the result equals d, and formatting that again gives
 * the same bytes. migratable: libvirt then drops live-only and
 * host-specific parts (generated <alias>, <seclabel>, default USB
 * controllers, the pty path); ferry's defs have none yet, so it changes
 * nothing. Returns 0, -EINVAL (a string holding characters XML cannot
 * carry) or -ENOMEM. */
int domain_format(const struct domain_def *d, bool migratable, struct buf *out);

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (any case) to 16 bytes; false if malformed. */
bool domain_uuid_parse(const char *s, uint8_t uuid[16]);
/* 16 bytes to the lower-case form, into out[37]. */
void domain_uuid_format(const uint8_t uuid[16], char out[37]);

/* A deep copy of d (malloc'ed; free with domain_def_free + free), or NULL. */
struct domain_def *domain_def_copy(const struct domain_def *d);

/* True when a and b define the same domain. */
bool domain_def_equal(const struct domain_def *a, const struct domain_def *b);

/* Frees what d owns and zeroes it; d itself belongs to the caller. */
void domain_def_free(struct domain_def *d);

/* Builds ferry-vmm's arguments for d: {"ferry-vmm", "--name", N, "--memory",
 * MiB, "--cpus", N, [--cpu host,...], "--kernel", ..., [--initrd], [--cmdline], --disk..., --net...,
 * [--serial file:PATH|null], NULL} in *argv_out; free with
 * domain_vmm_args_free(). A pty serial gives no --serial: the caller (ferryd)
 * adds --serial unix:PATH for the console, and --control. Returns 0,
 * -EINVAL (a path or id with a ',' that ferry-vmm's --disk cannot carry)
 * or -ENOMEM. */
int domain_vmm_args(const struct domain_def *d, char ***argv_out);
void domain_vmm_args_free(char **argv);

#endif
