/* Domain XML, writing: a fixed order, memory in KiB, hand-escaped text; and
 * the ferry-vmm command line of a definition. */
#include "daemon/domain.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const lifecycle_names[] = { "destroy", "restart", "preserve" };

static void put(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	buf_put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Escaped text or attribute value (single-quoted); white space other than
 * ' ' as character references, so attribute normalisation keeps it.
 * Returns false on characters XML 1.0 cannot carry. */
static bool put_esc(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		switch (ch) {
		case '&': put(b, "&amp;"); break;
		case '<': put(b, "&lt;"); break;
		case '>': put(b, "&gt;"); break;
		case '\'': put(b, "&apos;"); break;
		case '"': put(b, "&quot;"); break;
		case '\t': case '\n': case '\r': putf(b, "&#%u;", ch); break;
		default:
			if (ch < 0x20)
				return false;
			buf_put(b, s, 1);
		}
	}
	return true;
}

static bool put_elem(struct buf *b, const char *indent, const char *name, const char *text)
{
	bool ok;

	putf(b, "%s<%s>", indent, name);
	ok = put_esc(b, text);
	putf(b, "</%s>\n", name);
	return ok;
}

static bool put_attr(struct buf *b, const char *name, const char *v)
{
	putf(b, " %s='", name);
	bool ok = put_esc(b, v);

	put(b, "'");
	return ok;
}

static const char *const chr_names[] = { "", "pty", "file", "null" };

static bool format_chr(const struct domain_def *d, struct buf *b, const char *what)
{
	bool ok = true;

	putf(b, "    <%s type='%s'>\n", what, chr_names[d->serial]);
	if (d->serial == DOMAIN_CHR_FILE) {
		put(b, "      <source");
		ok = put_attr(b, "path", d->serial_path);
		put(b, "/>\n");
	}
	putf(b, "      <target%s port='0'/>\n", strcmp(what, "console") ? "" : " type='serial'");
	putf(b, "    </%s>\n", what);
	return ok;
}

static bool format_devices(const struct domain_def *d, struct buf *b)
{
	bool ok = true;

	put(b, "  <devices>\n");
	for (unsigned i = 0; i < d->ndisks; i++) {
		const struct domain_disk *k = &d->disks[i];

		put(b, "    <disk type='file' device='disk'>\n      <driver");
		ok &= put_attr(b, "name", k->driver);
		putf(b, " type='raw' cache='%s'/>\n      <source", k->cache_none ? "none" : "writeback");
		ok &= put_attr(b, "file", k->path);
		put(b, "/>\n      <target");
		ok &= put_attr(b, "dev", k->dev);
		put(b, " bus='virtio'/>\n");
		if (k->readonly)
			put(b, "      <readonly/>\n");
		if (k->serial[0])
			ok &= put_elem(b, "      ", "serial", k->serial);
		put(b, "    </disk>\n");
	}
	for (unsigned i = 0; i < d->nnets; i++) {
		const uint8_t *m = d->nets[i].mac;

		putf(b, "    <interface type='ethernet'>\n      <mac address='%02x:%02x:%02x:%02x:"
		     "%02x:%02x'/>\n      <target", m[0], m[1], m[2], m[3], m[4], m[5]);
		ok &= put_attr(b, "dev", d->nets[i].tap);
		put(b, "/>\n      <model type='virtio'/>\n    </interface>\n");
	}
	if (d->serial != DOMAIN_CHR_NONE)
		ok &= format_chr(d, b, "serial") & format_chr(d, b, "console");
	put(b, "  </devices>\n");
	return ok;
}

int domain_format(const struct domain_def *d, bool migratable, struct buf *out)
{
	const uint8_t *u = d->uuid;
	bool ok = true;

	(void)migratable; /* nothing live-only or host-specific to drop yet */
	putf(out, "<domain type='%s'>\n", d->type == DOMAIN_TYPE_KVM ? "kvm" : "ferry");
	ok &= put_elem(out, "  ", "name", d->name);
	putf(out, "  <uuid>%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x"
	     "</uuid>\n", u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
	     u[11], u[12], u[13], u[14], u[15]);
	putf(out, "  <memory unit='KiB'>%" PRIu64 "</memory>\n", d->memory >> 10);
	putf(out, "  <currentMemory unit='KiB'>%" PRIu64 "</currentMemory>\n",
	     d->current_memory >> 10);
	putf(out, "  <vcpu>%u</vcpu>\n", d->vcpus);
	putf(out, "  <os>\n    <type%s>hvm</type>\n", d->arch_given ? " arch='x86_64'" : "");
	ok &= put_elem(out, "    ", "kernel", d->kernel ? d->kernel : "");
	if (d->initrd)
		ok &= put_elem(out, "    ", "initrd", d->initrd);
	if (d->cmdline)
		ok &= put_elem(out, "    ", "cmdline", d->cmdline);
	put(out, "  </os>\n");
	if (d->cpu_mode[0] && !d->ncpu_features)
		putf(out, "  <cpu mode='%s'/>\n", d->cpu_mode);
	if (d->cpu_mode[0] && d->ncpu_features) {
		putf(out, "  <cpu mode='%s'>\n", d->cpu_mode);
		for (unsigned i = 0; i < d->ncpu_features; i++)
			putf(out, "    <feature policy='%s' name='%s'/>\n",
			     d->cpu_features[i].require ? "require" : "disable",
			     d->cpu_features[i].name);
		put(out, "  </cpu>\n");
	}
	putf(out, "  <on_poweroff>%s</on_poweroff>\n", lifecycle_names[d->on_poweroff]);
	putf(out, "  <on_reboot>%s</on_reboot>\n", lifecycle_names[d->on_reboot]);
	putf(out, "  <on_crash>%s</on_crash>\n", lifecycle_names[d->on_crash]);
	ok &= format_devices(d, out);
	put(out, "</domain>\n");
	buf_put(out, "", 1);
	if (buf_finish(out))
		return -ENOMEM;
	out->len--;
	return ok ? 0 : -EINVAL;
}

/* ---- ferry-vmm arguments ---------------------------------------------- */

void domain_vmm_args_free(char **argv)
{
	for (char **p = argv; p && *p; p++)
		free(*p);
	free(argv);
}

static int add_arg(char **argv, unsigned *n, char *s)
{
	if (!s)
		return -ENOMEM;
	argv[(*n)++] = s;
	return 0;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

int domain_vmm_args(const struct domain_def *d, char ***argv_out)
{
	/* ferry-vmm + 7 pairs + disks + nets + serial, each a pair, + NULL */
	unsigned max = 1 + 14 + 2 * (DOMAIN_MAX_DISKS + DOMAIN_MAX_NETS) + 2 + 1, n = 0;
	char **argv = calloc(max, sizeof(*argv));
	int r = 0;

	*argv_out = NULL;
	if (!argv)
		return -ENOMEM;
#define ARG(s) do { if (!r) r = add_arg(argv, &n, (s)); } while (0)
	ARG(strdup("ferry-vmm"));
	ARG(strdup("--name"));
	ARG(strdup(d->name));
	ARG(strdup("--memory"));
	ARG(xasprintf("%" PRIu64, d->memory >> 20));
	ARG(strdup("--cpus"));
	ARG(xasprintf("%u", d->vcpus));
	if (d->ncpu_features) {
		char spec[4 + DOMAIN_MAX_CPU_FEATURES * (2 + DOMAIN_CPU_FEATURE_NAME_MAX) + 1] =
			"host";
		size_t at = 4;

		for (unsigned i = 0; i < d->ncpu_features; i++)
			at += (size_t)snprintf(spec + at, sizeof(spec) - at, ",%c%s",
					       d->cpu_features[i].require ? '+' : '-',
					       d->cpu_features[i].name);
		ARG(strdup("--cpu"));
		ARG(strdup(spec));
	}
	ARG(strdup("--kernel"));
	ARG(strdup(d->kernel ? d->kernel : ""));
	if (d->initrd) {
		ARG(strdup("--initrd"));
		ARG(strdup(d->initrd));
	}
	if (d->cmdline) {
		ARG(strdup("--cmdline"));
		ARG(strdup(d->cmdline));
	}
	/* on_reboot restart: ferry-vmm boots the guest again in place (it
	 * says RESET); destroy and preserve: the VM ends (SHUTDOWN
	 * guest-reset) and the domain is shut off. */
	if (d->on_reboot != DOMAIN_LC_RESTART)
		ARG(strdup("--no-reboot"));
	for (unsigned i = 0; i < d->ndisks && !r; i++) {
		const struct domain_disk *k = &d->disks[i];

		if (strchr(k->path, ',') || strchr(k->serial, ','))
			r = -EINVAL;
		ARG(strdup("--disk"));
		ARG(xasprintf("%s%s,cache=%s%s%s", k->path, k->readonly ? ",readonly=on" : "",
			      k->cache_none ? "none" : "writeback", k->serial[0] ? ",serial=" : "",
			      k->serial));
	}
	for (unsigned i = 0; i < d->nnets && !r; i++) {
		const uint8_t *m = d->nets[i].mac;

		ARG(strdup("--net"));
		ARG(xasprintf("tap=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x", d->nets[i].tap,
			      m[0], m[1], m[2], m[3], m[4], m[5]));
	}
	if (d->serial == DOMAIN_CHR_FILE) {
		ARG(strdup("--serial"));
		ARG(xasprintf("file:%s", d->serial_path));
	} else if (d->serial != DOMAIN_CHR_PTY) {
		ARG(strdup("--serial"));
		ARG(strdup("null"));
	}
#undef ARG
	if (r) {
		domain_vmm_args_free(argv);
		return r;
	}
	*argv_out = argv;
	return 0;
}

struct domain_def *domain_def_copy(const struct domain_def *d)
{
	struct domain_def *copy = calloc(1, sizeof(*copy));
	struct buf out = { 0 };
	char err[256];

	/* Through the XML: one code path for every field, and the copy is
	 * exactly what dumpxml of the original gives back. */
	if (copy && (domain_format(d, false, &out) ||
		     domain_parse((char *)out.data, out.len, copy, err, sizeof(err)))) {
		free(copy);
		copy = NULL;
	}
	buf_free(&out);
	return copy;
}
