/* Domain XML: parse (libxml2 tree, refusing what ferry does not support),
 * format (hand-escaped, fixed order) and the ferry-vmm command line. */
#include "daemon/domain.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

struct pctx {
	char *err;
	size_t errlen;
};

static int fail(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct pctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static const char *nm(const xmlNode *n)
{
	return (const char *)n->name;
}

static bool is(const xmlNode *n, const char *name)
{
	return !strcmp(nm(n), name);
}

/* The value of attribute name on n, or NULL. Without a DTD an attribute
 * holds one text node (predefined entities already replaced). */
static const char *attr(const xmlNode *n, const char *name)
{
	for (xmlAttr *a = n->properties; a; a = a->next) {
		if (a->ns || strcmp((const char *)a->name, name))
			continue;
		if (!a->children)
			return "";
		return (const char *)a->children->content;
	}
	return NULL;
}

/* Refuses any attribute of <parent>/<n> not in allowed (NULL-terminated). */
static int check_attrs(struct pctx *c, const xmlNode *n, const char *parent,
		       const char *const *allowed)
{
	for (xmlAttr *a = n->properties; a; a = a->next) {
		bool ok = false;

		for (const char *const *p = allowed; *p && !a->ns; p++)
			ok |= !strcmp((const char *)a->name, *p);
		if (!ok || (a->children && (a->children->next ||
					    a->children->type != XML_TEXT_NODE)))
			return fail(c, "unsupported attribute '%s' on <%s>/<%s>",
				    (const char *)a->name, parent, nm(n));
	}
	return 0;
}

static const char *const no_attrs[] = { NULL };

/* Next element child of n after prev (NULL: the first); refuses text that is
 * not white space, entity references and namespaced elements on the way. */
static int next_elem(struct pctx *c, const xmlNode *n, xmlNode **cur)
{
	xmlNode *k = *cur ? (*cur)->next : n->children;

	for (; k; k = k->next) {
		if (k->type == XML_ELEMENT_NODE) {
			if (k->ns)
				return fail(c, "unsupported element <%s>/<%s:%s>", nm(n),
					    (const char *)k->ns->prefix, nm(k));
			break;
		}
		if (k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE) {
			for (const char *s = (const char *)k->content; s && *s; s++)
				if (!isspace((unsigned char)*s))
					return fail(c, "unexpected text in <%s>", nm(n));
		} else if (k->type != XML_COMMENT_NODE && k->type != XML_PI_NODE) {
			return fail(c, "unsupported content in <%s>", nm(n));
		}
	}
	*cur = k;
	return 0;
}

/* The text of leaf element <parent>/<n> (no child elements), malloc'ed. */
static int leaf_text(struct pctx *c, const xmlNode *n, const char *parent, char **out)
{
	struct buf b = { 0 };

	*out = NULL;
	for (xmlNode *k = n->children; k; k = k->next) {
		if (k->type == XML_ELEMENT_NODE)
			return buf_free(&b), fail(c, "unsupported element <%s>/<%s>", nm(n), nm(k));
		if (k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE)
			buf_put(&b, k->content, strlen((const char *)k->content));
		else if (k->type != XML_COMMENT_NODE && k->type != XML_PI_NODE)
			return buf_free(&b), fail(c, "unsupported content in <%s>/<%s>", parent, nm(n));
	}
	buf_put(&b, "", 1);
	if (buf_finish(&b))
		return buf_free(&b), -ENOMEM;
	*out = (char *)b.data;
	return 0;
}

/* leaf_text() with no attributes allowed. */
static int leaf(struct pctx *c, const xmlNode *n, const char *parent, char **out)
{
	int r = check_attrs(c, n, parent, no_attrs);

	return r ? r : leaf_text(c, n, parent, out);
}

/* Strips leading and trailing white space in place. */
static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	uint64_t x = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) || x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(*s - '0');
	}
	*v = x;
	return true;
}

/* ---- scalars ---------------------------------------------------------- */

static const struct { const char *unit; uint64_t scale; } units[] = {
	{ "b", 1 }, { "bytes", 1 },
	{ "KB", 1000ull }, { "k", 1ull << 10 }, { "KiB", 1ull << 10 },
	{ "MB", 1000000ull }, { "M", 1ull << 20 }, { "MiB", 1ull << 20 },
	{ "GB", 1000000000ull }, { "G", 1ull << 30 }, { "GiB", 1ull << 30 },
	{ "TB", 1000000000000ull }, { "T", 1ull << 40 }, { "TiB", 1ull << 40 },
};

/* <memory unit=U>N</memory> → bytes: a whole number of MiB, at least 8 MiB,
 * at most what ferry-vmm's --memory MIB takes. */
static int parse_memory(struct pctx *c, const xmlNode *n, uint64_t *bytes)
{
	static const char *const allowed[] = { "unit", NULL };
	const char *u = attr(n, "unit");
	uint64_t scale = 0, v;
	char *text;
	int r;

	if ((r = check_attrs(c, n, "domain", allowed)) || (r = leaf_text(c, n, "domain", &text)))
		return r;
	if (!u)
		scale = 1024;
	for (size_t i = 0; u && i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(u, units[i].unit))
			scale = units[i].scale;
	if (!scale)
		r = fail(c, "bad unit '%s' on <domain>/<%s> (b, bytes, KB, k, KiB, MB, M, MiB, "
			 "GB, G, GiB, TB, T, TiB)", u, nm(n));
	else if (!parse_u64(trim(text), &v) || v > UINT64_MAX / scale)
		r = fail(c, "bad value '%s' in <domain>/<%s>", trim(text), nm(n));
	else if ((v *= scale) % (1ull << 20) || v < DOMAIN_MIN_MEMORY || (v >> 20) > UINT32_MAX)
		r = fail(c, "<domain>/<%s>: %" PRIu64 " bytes is not a whole number of MiB "
			 "from 8 MiB up", nm(n), v);
	else
		*bytes = v;
	free(text);
	return r;
}

static bool parse_uuid(const char *s, uint8_t uuid[16])
{
	unsigned j = 0;

	if (strlen(s) != 36)
		return false;
	for (unsigned i = 0; i < 36; i++) {
		unsigned hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
			continue;
		}
		if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1]))
			return false;
		hi = (unsigned)(isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower(s[i]) - 'a' + 10));
		lo = (unsigned)(isdigit((unsigned char)s[i + 1]) ? s[i + 1] - '0' :
				(tolower(s[i + 1]) - 'a' + 10));
		uuid[j++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return j == 16;
}

static bool parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char end;

	if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2],
				      &v[3], &v[4], &v[5], &end) != 6)
		return false;
	for (unsigned i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	for (unsigned i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return !(mac[0] & 1); /* unicast */
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > DOMAIN_NAME_MAX || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
			return false;
	return true;
}

static int random_bytes(struct pctx *c, void *p, size_t n)
{
	ssize_t got = getrandom(p, n, 0);
	int e = got < 0 ? errno : EIO;

	if (got == (ssize_t)n)
		return 0;
	fail(c, "getrandom: %s", strerror(e));
	return -e;
}

static const char *const lifecycle_names[] = { "destroy", "restart", "preserve" };

static int parse_lifecycle(struct pctx *c, const xmlNode *n, enum domain_lifecycle *lc)
{
	char *text;
	int r = leaf(c, n, "domain", &text);

	if (r)
		return r;
	r = fail(c, "bad value '%s' in <domain>/<%s> (destroy, restart, preserve)",
		 trim(text), nm(n));
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(trim(text), lifecycle_names[i]))
			*lc = (enum domain_lifecycle)i, r = 0;
	free(text);
	return r;
}

/* ---- <os> ---- */

static int parse_os(struct pctx *c, const xmlNode *os, struct domain_def *d)
{
	static const char *const type_attrs[] = { "arch", NULL };
	bool have_type = false;
	xmlNode *k = NULL;
	char *text, **slot;
	int r;

	if ((r = check_attrs(c, os, "domain", no_attrs)))
		return r;
	while (!(r = next_elem(c, os, &k)) && k) {
		if (is(k, "type")) {
			const char *arch = attr(k, "arch");

			if ((r = check_attrs(c, k, "os", type_attrs)) ||
			    (r = leaf_text(c, k, "os", &text)))
				return r;
			if (strcmp(trim(text), "hvm"))
				r = fail(c, "bad value '%s' in <os>/<type> (hvm)", trim(text));
			else if (arch && strcmp(arch, "x86_64"))
				r = fail(c, "bad value '%s' of 'arch' on <os>/<type> (x86_64)", arch);
			free(text);
			if (r)
				return r;
			if (have_type)
				return fail(c, "duplicate element <os>/<type>");
			have_type = true;
			d->arch_given = arch != NULL;
			continue;
		}
		if (is(k, "kernel"))
			slot = &d->kernel;
		else if (is(k, "initrd"))
			slot = &d->initrd;
		else if (is(k, "cmdline"))
			slot = &d->cmdline;
		else
			return fail(c, "unsupported element <os>/<%s>", nm(k));
		if (*slot)
			return fail(c, "duplicate element <os>/<%s>", nm(k));
		if ((r = leaf(c, k, "os", slot)))
			return r;
		if (slot != &d->cmdline && !**slot)
			return fail(c, "empty <os>/<%s>", nm(k));
	}
	if (r)
		return r;
	if (!have_type)
		return fail(c, "missing <os>/<type>hvm</type>");
	if (!d->kernel)
		return fail(c, "missing <os>/<kernel>: ferry boots a PVH kernel directly");
	return 0;
}

static int parse_cpu(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const allowed[] = { "mode", NULL };
	const char *mode = attr(n, "mode");
	xmlNode *k = NULL;
	int r;

	if ((r = check_attrs(c, n, "domain", allowed)) || (r = next_elem(c, n, &k)))
		return r;
	if (k)
		return fail(c, "unsupported element <cpu>/<%s>", nm(k));
	if (!mode || (strcmp(mode, "host-passthrough") && strcmp(mode, "host-model")))
		return fail(c, "bad value '%s' of 'mode' on <domain>/<cpu> (host-passthrough, "
			    "host-model)", mode ? mode : "");
	strcpy(d->cpu_mode, mode);
	return 0;
}

/* ---- <devices> ---- */

/* Empty element <parent>/<n> with the given attributes and no children. */
static int empty_elem(struct pctx *c, const xmlNode *n, const char *parent,
		      const char *const *allowed)
{
	xmlNode *k = NULL;
	int r;

	if ((r = check_attrs(c, n, parent, allowed)) || (r = next_elem(c, n, &k)))
		return r;
	return k ? fail(c, "unsupported element <%s>/<%s>", nm(n), nm(k)) : 0;
}

/* True when s is one of the comma-separated values. */
static bool in_list(const char *s, const char *values)
{
	size_t n = strlen(s);

	for (const char *p = values; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
		if (strcspn(p, ",") == n && !strncmp(p, s, n))
			return true;
	return false;
}

/* Checks attribute name of n is absent (if opt) or one of the values. */
static int attr_in(struct pctx *c, const xmlNode *n, const char *name, bool opt,
		   const char *values)
{
	const char *v = attr(n, name);

	if ((!v && opt) || (v && *v && !strchr(v, ',') && in_list(v, values)))
		return 0;
	return fail(c, "%s value '%s' of '%s' on <%s> (%s)", v ? "bad" : "missing",
		    v ? v : "", name, nm(n), values);
}

static int parse_disk(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const disk_attrs[] = { "type", "device", NULL };
	static const char *const driver_attrs[] = { "name", "type", "cache", NULL };
	static const char *const source_attrs[] = { "file", NULL };
	static const char *const target_attrs[] = { "dev", "bus", NULL };
	struct domain_disk *k;
	xmlNode *e = NULL;
	bool seen_driver = false, seen_serial = false;
	int r;

	if (d->ndisks == DOMAIN_MAX_DISKS)
		return fail(c, "too many <devices>/<disk> (at most %d)", DOMAIN_MAX_DISKS);
	k = &d->disks[d->ndisks++];
	strcpy(k->driver, "qemu");
	if ((r = check_attrs(c, n, "devices", disk_attrs)) ||
	    (r = attr_in(c, n, "type", true, "file")) ||
	    (r = attr_in(c, n, "device", true, "disk")))
		return r;
	while (!(r = next_elem(c, n, &e)) && e) {
		if (is(e, "driver") && !seen_driver) {
			seen_driver = true;
			if ((r = empty_elem(c, e, "disk", driver_attrs)) ||
			    (r = attr_in(c, e, "name", true, "qemu,ferry")) ||
			    (r = attr_in(c, e, "type", true, "raw")) ||
			    (r = attr_in(c, e, "cache", true, "none,writeback")))
				return r;
			if (attr(e, "name"))
				strcpy(k->driver, attr(e, "name"));
			k->cache_none = attr(e, "cache") && !strcmp(attr(e, "cache"), "none");
		} else if (is(e, "source") && !k->path) {
			const char *f = attr(e, "file");

			if ((r = empty_elem(c, e, "disk", source_attrs)))
				return r;
			if (!f || !*f || strchr(f, ','))
				return fail(c, "bad or missing 'file' on <disk>/<source> ('%s'; "
					    "a path without ',')", f ? f : "");
			if (!(k->path = strdup(f)))
				return -ENOMEM;
		} else if (is(e, "target") && !k->dev[0]) {
			const char *dev = attr(e, "dev");

			if ((r = empty_elem(c, e, "disk", target_attrs)) ||
			    (r = attr_in(c, e, "bus", true, "virtio")))
				return r;
			if (!dev || strlen(dev) != 3 || strncmp(dev, "vd", 2) || !islower((unsigned char)dev[2]))
				return fail(c, "bad value '%s' of 'dev' on <disk>/<target> (vda..vdz)",
					    dev ? dev : "");
			strcpy(k->dev, dev);
		} else if (is(e, "readonly") && !k->readonly) {
			if ((r = empty_elem(c, e, "disk", no_attrs)))
				return r;
			k->readonly = true;
		} else if (is(e, "serial") && !seen_serial) {
			char *s;

			seen_serial = true;
			if ((r = leaf(c, e, "disk", &s)))
				return r;
			if (strlen(s) > DOMAIN_DISK_ID_MAX || strchr(s, ','))
				r = fail(c, "bad value '%s' in <disk>/<serial> (at most %d bytes, no ',')",
					 s, DOMAIN_DISK_ID_MAX);
			else
				strcpy(k->serial, s);
			free(s);
			if (r)
				return r;
		} else {
			return fail(c, "%s element <disk>/<%s>",
				    in_list(nm(e), "driver,source,target,readonly,serial") ?
				    "duplicate" : "unsupported", nm(e));
		}
	}
	if (r)
		return r;
	if (!k->path)
		return fail(c, "missing <disk>/<source file=...>");
	if (!k->dev[0])
		return fail(c, "missing <disk>/<target dev=...>");
	for (unsigned i = 0; i + 1 < d->ndisks; i++)
		if (!strcmp(d->disks[i].dev, k->dev))
			return fail(c, "duplicate target dev '%s' in <devices>/<disk>", k->dev);
	return 0;
}

static int parse_interface(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const if_attrs[] = { "type", NULL };
	static const char *const mac_attrs[] = { "address", NULL };
	static const char *const target_attrs[] = { "dev", NULL };
	static const char *const model_attrs[] = { "type", NULL };
	bool seen_mac = false, seen_model = false;
	struct domain_net *k;
	xmlNode *e = NULL;
	int r;

	if (d->nnets == DOMAIN_MAX_NETS)
		return fail(c, "too many <devices>/<interface> (at most %d)", DOMAIN_MAX_NETS);
	k = &d->nets[d->nnets++];
	if ((r = check_attrs(c, n, "devices", if_attrs)) ||
	    (r = attr_in(c, n, "type", false, "ethernet")))
		return r;
	while (!(r = next_elem(c, n, &e)) && e) {
		if (is(e, "mac") && !seen_mac) {
			const char *a = attr(e, "address");

			seen_mac = true;
			if ((r = empty_elem(c, e, "interface", mac_attrs)))
				return r;
			if (!a || !parse_mac(a, k->mac))
				return fail(c, "bad value '%s' of 'address' on <interface>/<mac> "
					    "(xx:xx:xx:xx:xx:xx, unicast)", a ? a : "");
		} else if (is(e, "target") && !k->tap[0]) {
			const char *dev = attr(e, "dev");

			if ((r = empty_elem(c, e, "interface", target_attrs)))
				return r;
			if (!dev || !*dev || strlen(dev) > DOMAIN_IFNAME_MAX || strchr(dev, '/') ||
			    strchr(dev, ',') || !strcmp(dev, ".") || !strcmp(dev, ".."))
				return fail(c, "bad value '%s' of 'dev' on <interface>/<target> "
					    "(an interface name of at most %d bytes)", dev ? dev : "",
					    DOMAIN_IFNAME_MAX);
			strcpy(k->tap, dev);
		} else if (is(e, "model") && !seen_model) {
			seen_model = true;
			if ((r = empty_elem(c, e, "interface", model_attrs)) ||
			    (r = attr_in(c, e, "type", false, "virtio")))
				return r;
		} else {
			return fail(c, "%s element <interface>/<%s>",
				    in_list(nm(e), "mac,target,model") ? "duplicate" : "unsupported",
				    nm(e));
		}
	}
	if (r)
		return r;
	if (!k->tap[0])
		return fail(c, "missing <interface>/<target dev=...> (the tap)");
	if (!seen_mac && (r = random_bytes(c, k->mac, 6)) == 0) {
		k->mac[0] = 0x52, k->mac[1] = 0x54, k->mac[2] = 0x00; /* as libvirt does */
	}
	for (unsigned i = 0; !r && i + 1 < d->nnets; i++) {
		if (!strcmp(d->nets[i].tap, k->tap))
			r = fail(c, "duplicate target dev '%s' in <devices>/<interface>", k->tap);
		else if (!memcmp(d->nets[i].mac, k->mac, 6))
			r = fail(c, "duplicate mac address in <devices>/<interface>");
	}
	return r;
}

/* <serial> or <console>: both describe serial port 0. */
static int parse_chr(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const chr_attrs[] = { "type", NULL };
	static const char *const source_attrs[] = { "path", NULL };
	static const char *const serial_target[] = { "port", NULL };
	static const char *const console_target[] = { "type", "port", NULL };
	bool console = is(n, "console"), seen_target = false;
	const char *type = attr(n, "type");
	enum domain_chr t;
	char *path = NULL;
	xmlNode *e = NULL;
	int r;

	if ((r = check_attrs(c, n, "devices", chr_attrs)) ||
	    (r = attr_in(c, n, "type", false, "pty,file,null")))
		return r;
	t = !strcmp(type, "pty") ? DOMAIN_CHR_PTY : !strcmp(type, "file") ? DOMAIN_CHR_FILE :
	    DOMAIN_CHR_NULL;
	while (!r && !(r = next_elem(c, n, &e)) && e) {
		if (is(e, "source") && t == DOMAIN_CHR_FILE && !path) {
			const char *p = attr(e, "path");

			if ((r = empty_elem(c, e, nm(n), source_attrs)))
				break;
			if (!p || !*p)
				r = fail(c, "missing 'path' on <%s>/<source>", nm(n));
			else if (!(path = strdup(p)))
				r = -ENOMEM;
		} else if (is(e, "target") && !seen_target) {
			seen_target = true;
			if (!(r = empty_elem(c, e, nm(n), console ? console_target : serial_target)) &&
			    !(r = attr_in(c, e, "port", true, "0")) && console)
				r = attr_in(c, e, "type", true, "serial");
		} else {
			r = fail(c, "unsupported element <%s>/<%s>", nm(n), nm(e));
		}
	}
	if (!r && t == DOMAIN_CHR_FILE && !path)
		r = fail(c, "missing <%s>/<source path=...> for type='file'", nm(n));
	if (!r && d->serial != DOMAIN_CHR_NONE &&
	    (d->serial != t || (path && strcmp(path, d->serial_path))))
		r = fail(c, "<devices>/<%s> differs from the serial port already given (ferry "
			 "has one serial port; <console> may only repeat it)", nm(n));
	if (!r && d->serial == DOMAIN_CHR_NONE) {
		d->serial = t;
		d->serial_path = path;
		path = NULL;
	}
	free(path);
	return r;
}

static int parse_devices(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	xmlNode *e = NULL;
	int r = check_attrs(c, n, "domain", no_attrs);
	unsigned nserial = 0, nconsole = 0;

	while (!r && !(r = next_elem(c, n, &e)) && e) {
		if (is(e, "disk"))
			r = parse_disk(c, e, d);
		else if (is(e, "interface"))
			r = parse_interface(c, e, d);
		else if (is(e, "serial") || is(e, "console"))
			r = (is(e, "serial") ? ++nserial : ++nconsole) > 1 ?
			    fail(c, "at most one <devices>/<%s>", nm(e)) : parse_chr(c, e, d);
		else
			r = fail(c, "unsupported element <devices>/<%s>", nm(e));
	}
	return r;
}

/* ---- <domain> ---- */

static int parse_vcpu(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const allowed[] = { "placement", NULL };
	uint64_t v;
	char *text;
	int r;

	if ((r = check_attrs(c, n, "domain", allowed)) ||
	    (r = attr_in(c, n, "placement", true, "static")) ||
	    (r = leaf_text(c, n, "domain", &text)))
		return r;
	if (!parse_u64(trim(text), &v) || v < 1 || v > 255)
		r = fail(c, "bad value '%s' in <domain>/<vcpu> (1 to 255)", trim(text));
	else
		d->vcpus = (unsigned)v;
	free(text);
	return r;
}

static const char *const top_names[] = {
	"name", "uuid", "memory", "currentMemory", "vcpu", "os", "cpu",
	"on_poweroff", "on_reboot", "on_crash", "devices", NULL,
};

static int parse_top(struct pctx *c, const xmlNode *e, struct domain_def *d, unsigned i)
{
	char *text = NULL;
	int r = 0;

	switch (i) {
	case 0: /* name */
		if ((r = leaf(c, e, "domain", &text)))
			return r;
		if (!valid_name(text))
			r = fail(c, "bad value '%s' in <domain>/<name> (1 to %d letters, digits, "
				 "'-', '_' or '.', not starting with '.')", text, DOMAIN_NAME_MAX);
		else
			strcpy(d->name, text);
		break;
	case 1: /* uuid */
		if ((r = leaf(c, e, "domain", &text)))
			return r;
		if (!parse_uuid(trim(text), d->uuid))
			r = fail(c, "bad value '%s' in <domain>/<uuid> "
				 "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", trim(text));
		break;
	case 2: return parse_memory(c, e, &d->memory);
	case 3: return parse_memory(c, e, &d->current_memory);
	case 4: return parse_vcpu(c, e, d);
	case 5: return parse_os(c, e, d);
	case 6: return parse_cpu(c, e, d);
	case 7: return parse_lifecycle(c, e, &d->on_poweroff);
	case 8: return parse_lifecycle(c, e, &d->on_reboot);
	case 9: return parse_lifecycle(c, e, &d->on_crash);
	case 10: return parse_devices(c, e, d);
	}
	free(text);
	return r;
}

static int parse_domain(struct pctx *c, const xmlNode *root, struct domain_def *d)
{
	static const char *const allowed[] = { "type", NULL };
	unsigned seen = 0, i;
	xmlNode *e = NULL;
	int r;

	if ((r = check_attrs(c, root, "domain", allowed)))
		return r;
	if (!attr(root, "type") || (strcmp(attr(root, "type"), "kvm") &&
				    strcmp(attr(root, "type"), "ferry")))
		return fail(c, "bad value '%s' of 'type' on <domain> (kvm, ferry)",
			    attr(root, "type") ? attr(root, "type") : "");
	d->type = strcmp(attr(root, "type"), "kvm") ? DOMAIN_TYPE_FERRY : DOMAIN_TYPE_KVM;
	while (!(r = next_elem(c, root, &e)) && e) {
		for (i = 0; top_names[i] && !is(e, top_names[i]); i++)
			;
		if (!top_names[i])
			return fail(c, "unsupported element <domain>/<%s>", nm(e));
		if (seen & (1u << i))
			return fail(c, "duplicate element <domain>/<%s>", nm(e));
		seen |= 1u << i;
		if ((r = parse_top(c, e, d, i)))
			return r;
	}
	if (r)
		return r;
	if (!(seen & 1))
		return fail(c, "missing <domain>/<name>");
	if (!(seen & 4))
		return fail(c, "missing <domain>/<memory>");
	if (!(seen & 32))
		return fail(c, "missing <domain>/<os> (with <kernel>)");
	if (!(seen & 2) && (r = random_bytes(c, d->uuid, 16)) == 0) {
		d->uuid[6] = (uint8_t)((d->uuid[6] & 0x0f) | 0x40); /* version 4 */
		d->uuid[8] = (uint8_t)((d->uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	}
	if (r)
		return r;
	if (!(seen & 8))
		d->current_memory = d->memory;
	else if (d->current_memory > d->memory)
		return fail(c, "<domain>/<currentMemory> is larger than <memory>");
	return 0;
}

int domain_parse(const char *xml, size_t len, struct domain_def *d, char *err, size_t errlen)
{
	struct pctx c = { err, errlen };
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc = NULL;
	xmlNode *root;
	int r;

	*d = (struct domain_def){ .vcpus = 1, .on_reboot = DOMAIN_LC_RESTART };
	if (errlen)
		err[0] = 0;
	if (len > DOMAIN_XML_MAX)
		return fail(&c, "domain XML larger than %u bytes", DOMAIN_XML_MAX);
	if (!(ctxt = xmlNewParserCtxt()))
		return -ENOMEM;
	/* No XML_PARSE_NOENT (entities stay references), no DTDLOAD, no
	 * network; NOERROR/NOWARNING keep libxml2 off stderr, the error is
	 * still kept in the context. */
	doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "domain.xml", NULL,
				XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlCtxtGetLastError(ctxt);
		char msg[256];

		snprintf(msg, sizeof(msg), "%s", e && e->message ? e->message : "unknown error");
		msg[strcspn(msg, "\n")] = 0;
		r = fail(&c, "malformed XML (line %d): %s", e ? e->line : 0, msg);
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (doc->intSubset || doc->extSubset)
		r = fail(&c, "a DOCTYPE (DTD, entities) is not supported in domain XML");
	else if (!root || root->ns || !is(root, "domain"))
		r = fail(&c, "the root element must be <domain>, not <%s>", root ? nm(root) : "");
	else
		r = parse_domain(&c, root, d);
out:
	if (r)
		domain_def_free(d);
	xmlFreeDoc(doc);
	xmlFreeParserCtxt(ctxt);
	return r;
}

void domain_def_free(struct domain_def *d)
{
	free(d->kernel);
	free(d->initrd);
	free(d->cmdline);
	free(d->serial_path);
	for (unsigned i = 0; i < DOMAIN_MAX_DISKS; i++)
		free(d->disks[i].path);
	*d = (struct domain_def){ 0 };
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

bool domain_def_equal(const struct domain_def *a, const struct domain_def *b)
{
	if (a->type != b->type || strcmp(a->name, b->name) || memcmp(a->uuid, b->uuid, 16) ||
	    a->memory != b->memory || a->current_memory != b->current_memory ||
	    a->vcpus != b->vcpus || a->arch_given != b->arch_given ||
	    !str_eq(a->kernel, b->kernel) || !str_eq(a->initrd, b->initrd) ||
	    !str_eq(a->cmdline, b->cmdline) || strcmp(a->cpu_mode, b->cpu_mode) ||
	    a->on_poweroff != b->on_poweroff || a->on_reboot != b->on_reboot ||
	    a->on_crash != b->on_crash || a->ndisks != b->ndisks || a->nnets != b->nnets ||
	    a->serial != b->serial || !str_eq(a->serial_path, b->serial_path))
		return false;
	for (unsigned i = 0; i < a->ndisks; i++) {
		const struct domain_disk *x = &a->disks[i], *y = &b->disks[i];

		if (!str_eq(x->path, y->path) || strcmp(x->dev, y->dev) ||
		    strcmp(x->driver, y->driver) || x->cache_none != y->cache_none ||
		    x->readonly != y->readonly || strcmp(x->serial, y->serial))
			return false;
	}
	for (unsigned i = 0; i < a->nnets; i++)
		if (strcmp(a->nets[i].tap, b->nets[i].tap) || memcmp(a->nets[i].mac, b->nets[i].mac, 6))
			return false;
	return true;
}

/* ---- format ----------------------------------------------------------- */

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
	if (d->cpu_mode[0])
		putf(out, "  <cpu mode='%s'/>\n", d->cpu_mode);
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
	/* ferry-vmm + 6 pairs + disks + nets + serial, each a pair, + NULL */
	unsigned max = 1 + 12 + 2 * (DOMAIN_MAX_DISKS + DOMAIN_MAX_NETS) + 2 + 1, n = 0;
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
