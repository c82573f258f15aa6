/* Domain XML, parsing: a libxml2 tree walked element by element, refusing
 * what ferry does not support (the <devices> are in domain_devices.c; the
 * formatter and the ferry-vmm command line in domain_format.c). */
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

#include "common/util.h"
#include "daemon/domain_xml.h"


int xml_fail(struct pctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

const char *xml_nm(const xmlNode *n)
{
	return (const char *)n->name;
}

bool xml_is(const xmlNode *n, const char *name)
{
	return !strcmp(xml_nm(n), name);
}

/* The value of attribute name on n, or NULL. Without a DTD an attribute
 * holds one text node (predefined entities already replaced). */
const char *xml_attr(const xmlNode *n, const char *name)
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
int xml_check_attrs(struct pctx *c, const xmlNode *n, const char *parent,
		       const char *const *allowed)
{
	for (xmlAttr *a = n->properties; a; a = a->next) {
		bool ok = false;

		for (const char *const *p = allowed; *p && !a->ns; p++)
			ok |= !strcmp((const char *)a->name, *p);
		if (!ok || (a->children && (a->children->next ||
					    a->children->type != XML_TEXT_NODE)))
			return xml_fail(c, "unsupported attribute '%s' on <%s>/<%s>",
				    (const char *)a->name, parent, xml_nm(n));
	}
	return 0;
}

static const char *const no_attrs[] = { NULL };

/* Next element child of n after prev (NULL: the first); refuses text that is
 * not white space, entity references and namespaced elements on the way. */
int xml_next_elem(struct pctx *c, const xmlNode *n, xmlNode **cur)
{
	xmlNode *k = *cur ? (*cur)->next : n->children;

	for (; k; k = k->next) {
		if (k->type == XML_ELEMENT_NODE) {
			if (k->ns)
				return xml_fail(c, "unsupported element <%s>/<%s:%s>", xml_nm(n),
					    (const char *)k->ns->prefix, xml_nm(k));
			break;
		}
		if (k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE) {
			for (const char *s = (const char *)k->content; s && *s; s++)
				if (!isspace((unsigned char)*s))
					return xml_fail(c, "unexpected text in <%s>", xml_nm(n));
		} else if (k->type != XML_COMMENT_NODE && k->type != XML_PI_NODE) {
			return xml_fail(c, "unsupported content in <%s>", xml_nm(n));
		}
	}
	*cur = k;
	return 0;
}

/* The text of leaf element <parent>/<n> (no child elements), malloc'ed. */
int xml_leaf_text(struct pctx *c, const xmlNode *n, const char *parent, char **out)
{
	struct buf b = { 0 };

	*out = NULL;
	for (xmlNode *k = n->children; k; k = k->next) {
		if (k->type == XML_ELEMENT_NODE)
			return buf_free(&b), xml_fail(c, "unsupported element <%s>/<%s>", xml_nm(n), xml_nm(k));
		if (k->type == XML_TEXT_NODE || k->type == XML_CDATA_SECTION_NODE)
			buf_put(&b, k->content, strlen((const char *)k->content));
		else if (k->type != XML_COMMENT_NODE && k->type != XML_PI_NODE)
			return buf_free(&b), xml_fail(c, "unsupported content in <%s>/<%s>", parent, xml_nm(n));
	}
	buf_put(&b, "", 1);
	if (buf_finish(&b))
		return buf_free(&b), -ENOMEM;
	*out = (char *)b.data;
	return 0;
}

/* xml_leaf_text() with no attributes allowed. */
int xml_leaf(struct pctx *c, const xmlNode *n, const char *parent, char **out)
{
	int r = xml_check_attrs(c, n, parent, no_attrs);

	return r ? r : xml_leaf_text(c, n, parent, out);
}

/* Strips leading and trailing white space in place. */
char *xml_trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
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
	const char *u = xml_attr(n, "unit");
	uint64_t scale = 0, v;
	char *text;
	int r;

	if ((r = xml_check_attrs(c, n, "domain", allowed)) || (r = xml_leaf_text(c, n, "domain", &text)))
		return r;
	if (!u)
		scale = 1024;
	for (size_t i = 0; u && i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(u, units[i].unit))
			scale = units[i].scale;
	if (!scale)
		r = xml_fail(c, "bad unit '%s' on <domain>/<%s> (b, bytes, KB, k, KiB, MB, M, MiB, "
			 "GB, G, GiB, TB, T, TiB)", u, xml_nm(n));
	else if (parse_u64(xml_trim(text), &v) || v > UINT64_MAX / scale)
		r = xml_fail(c, "bad value '%s' in <domain>/<%s>", xml_trim(text), xml_nm(n));
	else if ((v *= scale) % (1ull << 20) || v < DOMAIN_MIN_MEMORY || (v >> 20) > UINT32_MAX)
		r = xml_fail(c, "<domain>/<%s>: %" PRIu64 " bytes is not a whole number of MiB "
			 "from 8 MiB up", xml_nm(n), v);
	else
		*bytes = v;
	free(text);
	return r;
}

void domain_uuid_format(const uint8_t u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

bool domain_uuid_parse(const char *s, uint8_t uuid[16])
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

int xml_random_bytes(struct pctx *c, void *p, size_t n)
{
	ssize_t got = getrandom(p, n, 0);
	int e = got < 0 ? errno : EIO;

	if (got == (ssize_t)n)
		return 0;
	xml_fail(c, "getrandom: %s", strerror(e));
	return -e;
}

static const char *const lifecycle_names[] = { "destroy", "restart", "preserve" };

static int parse_lifecycle(struct pctx *c, const xmlNode *n, enum domain_lifecycle *lc)
{
	char *text;
	int r = xml_leaf(c, n, "domain", &text);

	if (r)
		return r;
	r = xml_fail(c, "bad value '%s' in <domain>/<%s> (destroy, restart, preserve)",
		 xml_trim(text), xml_nm(n));
	for (unsigned i = 0; i < 3; i++)
		if (!strcmp(xml_trim(text), lifecycle_names[i]))
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

	if ((r = xml_check_attrs(c, os, "domain", no_attrs)))
		return r;
	while (!(r = xml_next_elem(c, os, &k)) && k) {
		if (xml_is(k, "type")) {
			const char *arch = xml_attr(k, "arch");

			if ((r = xml_check_attrs(c, k, "os", type_attrs)) ||
			    (r = xml_leaf_text(c, k, "os", &text)))
				return r;
			if (strcmp(xml_trim(text), "hvm"))
				r = xml_fail(c, "bad value '%s' in <os>/<type> (hvm)", xml_trim(text));
			else if (arch && strcmp(arch, "x86_64"))
				r = xml_fail(c, "bad value '%s' of 'arch' on <os>/<type> (x86_64)", arch);
			free(text);
			if (r)
				return r;
			if (have_type)
				return xml_fail(c, "duplicate element <os>/<type>");
			have_type = true;
			d->arch_given = arch != NULL;
			continue;
		}
		if (xml_is(k, "kernel"))
			slot = &d->kernel;
		else if (xml_is(k, "initrd"))
			slot = &d->initrd;
		else if (xml_is(k, "cmdline"))
			slot = &d->cmdline;
		else
			return xml_fail(c, "unsupported element <os>/<%s>", xml_nm(k));
		if (*slot)
			return xml_fail(c, "duplicate element <os>/<%s>", xml_nm(k));
		if ((r = xml_leaf(c, k, "os", slot)))
			return r;
		if (slot != &d->cmdline && !**slot)
			return xml_fail(c, "empty <os>/<%s>", xml_nm(k));
	}
	if (r)
		return r;
	if (!have_type)
		return xml_fail(c, "missing <os>/<type>hvm</type>");
	if (!d->kernel)
		return xml_fail(c, "missing <os>/<kernel>: ferry boots a PVH kernel directly");
	return 0;
}

/* <cpu>/<feature policy= name=>, libvirt's: disable and require (what
 * ferry-vmm's --cpu host,-NAME / +NAME does; optional and forbid need CPU
 * models, which ferry has not yet). The name is checked for its form here
 * and against ferry's feature table when ferry-vmm starts. */
static int parse_cpu_feature(struct pctx *c, const xmlNode *k, struct domain_def *d)
{
	static const char *const allowed[] = { "policy", "name", NULL };
	const char *policy = xml_attr(k, "policy"), *name = xml_attr(k, "name");
	struct domain_cpu_feature *f;
	int r;

	if ((r = xml_empty_elem(c, k, "cpu", allowed)))
		return r;
	if (!policy || (strcmp(policy, "disable") && strcmp(policy, "require")))
		return xml_fail(c, "bad value '%s' of 'policy' on <cpu>/<feature> (disable, "
			    "require)", policy ? policy : "");
	if (!name || !*name || strlen(name) > DOMAIN_CPU_FEATURE_NAME_MAX ||
	    strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(name))
		return xml_fail(c, "bad value '%s' of 'name' on <cpu>/<feature> (a CPU feature "
			    "such as kvm_pv_unhalt or avx2)", name ? name : "");
	for (unsigned i = 0; i < d->ncpu_features; i++)
		if (!strcmp(d->cpu_features[i].name, name))
			return xml_fail(c, "duplicate <cpu>/<feature name='%s'>", name);
	if (d->ncpu_features == DOMAIN_MAX_CPU_FEATURES)
		return xml_fail(c, "more than %d <cpu>/<feature> elements",
			    DOMAIN_MAX_CPU_FEATURES);
	f = &d->cpu_features[d->ncpu_features++];
	strcpy(f->name, name);
	f->require = !strcmp(policy, "require");
	return 0;
}

static int parse_cpu(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const allowed[] = { "mode", NULL };
	const char *mode = xml_attr(n, "mode");
	xmlNode *k = NULL;
	int r;

	if ((r = xml_check_attrs(c, n, "domain", allowed)))
		return r;
	if (!mode || (strcmp(mode, "host-passthrough") && strcmp(mode, "host-model")))
		return xml_fail(c, "bad value '%s' of 'mode' on <domain>/<cpu> (host-passthrough, "
			    "host-model)", mode ? mode : "");
	strcpy(d->cpu_mode, mode);
	while (!(r = xml_next_elem(c, n, &k)) && k) {
		if (!xml_is(k, "feature"))
			return xml_fail(c, "unsupported element <cpu>/<%s>", xml_nm(k));
		if ((r = parse_cpu_feature(c, k, d)))
			return r;
	}
	return r;
}

/* ---- <devices> ---- */

/* Empty element <parent>/<n> with the given attributes and no children. */
int xml_empty_elem(struct pctx *c, const xmlNode *n, const char *parent,
		      const char *const *allowed)
{
	xmlNode *k = NULL;
	int r;

	if ((r = xml_check_attrs(c, n, parent, allowed)) || (r = xml_next_elem(c, n, &k)))
		return r;
	return k ? xml_fail(c, "unsupported element <%s>/<%s>", xml_nm(n), xml_nm(k)) : 0;
}

/* True when s is one of the comma-separated values. */
bool xml_in_list(const char *s, const char *values)
{
	size_t n = strlen(s);

	for (const char *p = values; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
		if (strcspn(p, ",") == n && !strncmp(p, s, n))
			return true;
	return false;
}

/* Checks attribute name of n is absent (if opt) or one of the values. */
int xml_attr_in(struct pctx *c, const xmlNode *n, const char *name, bool opt,
		   const char *values)
{
	const char *v = xml_attr(n, name);

	if ((!v && opt) || (v && *v && !strchr(v, ',') && xml_in_list(v, values)))
		return 0;
	return xml_fail(c, "%s value '%s' of '%s' on <%s> (%s)", v ? "bad" : "missing",
		    v ? v : "", name, xml_nm(n), values);
}

static int parse_vcpu(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	static const char *const allowed[] = { "placement", NULL };
	uint64_t v;
	char *text;
	int r;

	if ((r = xml_check_attrs(c, n, "domain", allowed)) ||
	    (r = xml_attr_in(c, n, "placement", true, "static")) ||
	    (r = xml_leaf_text(c, n, "domain", &text)))
		return r;
	if (parse_u64(xml_trim(text), &v) || v < 1 || v > 255)
		r = xml_fail(c, "bad value '%s' in <domain>/<vcpu> (1 to 255)", xml_trim(text));
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
		if ((r = xml_leaf(c, e, "domain", &text)))
			return r;
		if (!valid_name(text))
			r = xml_fail(c, "bad value '%s' in <domain>/<name> (1 to %d letters, digits, "
				 "'-', '_' or '.', not starting with '.')", text, DOMAIN_NAME_MAX);
		else
			strcpy(d->name, text);
		break;
	case 1: /* uuid */
		if ((r = xml_leaf(c, e, "domain", &text)))
			return r;
		if (!domain_uuid_parse(xml_trim(text), d->uuid))
			r = xml_fail(c, "bad value '%s' in <domain>/<uuid> "
				 "(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", xml_trim(text));
		break;
	case 2: return parse_memory(c, e, &d->memory);
	case 3: return parse_memory(c, e, &d->current_memory);
	case 4: return parse_vcpu(c, e, d);
	case 5: return parse_os(c, e, d);
	case 6: return parse_cpu(c, e, d);
	case 7: return parse_lifecycle(c, e, &d->on_poweroff);
	case 8: return parse_lifecycle(c, e, &d->on_reboot);
	case 9: return parse_lifecycle(c, e, &d->on_crash);
	case 10: return xml_parse_devices(c, e, d);
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

	if ((r = xml_check_attrs(c, root, "domain", allowed)))
		return r;
	if (!xml_attr(root, "type") || (strcmp(xml_attr(root, "type"), "kvm") &&
				    strcmp(xml_attr(root, "type"), "ferry")))
		return xml_fail(c, "bad value '%s' of 'type' on <domain> (kvm, ferry)",
			    xml_attr(root, "type") ? xml_attr(root, "type") : "");
	d->type = strcmp(xml_attr(root, "type"), "kvm") ? DOMAIN_TYPE_FERRY : DOMAIN_TYPE_KVM;
	while (!(r = xml_next_elem(c, root, &e)) && e) {
		for (i = 0; top_names[i] && !xml_is(e, top_names[i]); i++)
			;
		if (!top_names[i])
			return xml_fail(c, "unsupported element <domain>/<%s>", xml_nm(e));
		if (seen & (1u << i))
			return xml_fail(c, "duplicate element <domain>/<%s>", xml_nm(e));
		seen |= 1u << i;
		if ((r = parse_top(c, e, d, i)))
			return r;
	}
	if (r)
		return r;
	if (!(seen & 1))
		return xml_fail(c, "missing <domain>/<name>");
	if (!(seen & 4))
		return xml_fail(c, "missing <domain>/<memory>");
	if (!(seen & 32))
		return xml_fail(c, "missing <domain>/<os> (with <kernel>)");
	if (!(seen & 2) && (r = xml_random_bytes(c, d->uuid, 16)) == 0) {
		d->uuid[6] = (uint8_t)((d->uuid[6] & 0x0f) | 0x40); /* version 4 */
		d->uuid[8] = (uint8_t)((d->uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
		d->uuid_generated = true;
	}
	if (r)
		return r;
	if (!(seen & 8))
		d->current_memory = d->memory;
	else if (d->current_memory > d->memory)
		return xml_fail(c, "<domain>/<currentMemory> is larger than <memory>");
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
		return xml_fail(&c, "domain XML larger than %u bytes", DOMAIN_XML_MAX);
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
		r = xml_fail(&c, "malformed XML (line %d): %s", e ? e->line : 0, msg);
		goto out;
	}
	root = xmlDocGetRootElement(doc);
	if (doc->intSubset || doc->extSubset)
		r = xml_fail(&c, "a DOCTYPE (DTD, entities) is not supported in domain XML");
	else if (!root || root->ns || !xml_is(root, "domain"))
		r = xml_fail(&c, "the root element must be <domain>, not <%s>", root ? xml_nm(root) : "");
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
	    a->ncpu_features != b->ncpu_features ||
	    memcmp(a->cpu_features, b->cpu_features,
		   a->ncpu_features * sizeof(a->cpu_features[0])) ||
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

