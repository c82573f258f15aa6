/* Domain XML, the <devices> part: <disk>, <interface>, <serial>/<console>. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/domain_xml.h"

static const char *const no_attrs[] = { NULL };

static bool xml_parse_mac(const char *s, uint8_t mac[6])
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
		return xml_fail(c, "too many <devices>/<disk> (at most %d)", DOMAIN_MAX_DISKS);
	k = &d->disks[d->ndisks++];
	strcpy(k->driver, "qemu");
	if ((r = xml_check_attrs(c, n, "devices", disk_attrs)) ||
	    (r = xml_attr_in(c, n, "type", true, "file")) ||
	    (r = xml_attr_in(c, n, "device", true, "disk")))
		return r;
	while (!(r = xml_next_elem(c, n, &e)) && e) {
		if (xml_is(e, "driver") && !seen_driver) {
			seen_driver = true;
			if ((r = xml_empty_elem(c, e, "disk", driver_attrs)) ||
			    (r = xml_attr_in(c, e, "name", true, "qemu,ferry")) ||
			    (r = xml_attr_in(c, e, "type", true, "raw")) ||
			    (r = xml_attr_in(c, e, "cache", true, "none,writeback")))
				return r;
			if (xml_attr(e, "name"))
				strcpy(k->driver, xml_attr(e, "name"));
			k->cache_none = xml_attr(e, "cache") && !strcmp(xml_attr(e, "cache"), "none");
		} else if (xml_is(e, "source") && !k->path) {
			const char *f = xml_attr(e, "file");

			if ((r = xml_empty_elem(c, e, "disk", source_attrs)))
				return r;
			if (!f || !*f || strchr(f, ','))
				return xml_fail(c, "bad or missing 'file' on <disk>/<source> ('%s'; "
					    "a path without ',')", f ? f : "");
			if (!(k->path = strdup(f)))
				return -ENOMEM;
		} else if (xml_is(e, "target") && !k->dev[0]) {
			const char *dev = xml_attr(e, "dev");

			if ((r = xml_empty_elem(c, e, "disk", target_attrs)) ||
			    (r = xml_attr_in(c, e, "bus", true, "virtio")))
				return r;
			if (!dev || strlen(dev) != 3 || strncmp(dev, "vd", 2) || !islower((unsigned char)dev[2]))
				return xml_fail(c, "bad value '%s' of 'dev' on <disk>/<target> (vda..vdz)",
					    dev ? dev : "");
			strcpy(k->dev, dev);
		} else if (xml_is(e, "readonly") && !k->readonly) {
			if ((r = xml_empty_elem(c, e, "disk", no_attrs)))
				return r;
			k->readonly = true;
		} else if (xml_is(e, "serial") && !seen_serial) {
			char *s;

			seen_serial = true;
			if ((r = xml_leaf(c, e, "disk", &s)))
				return r;
			if (strlen(s) > DOMAIN_DISK_ID_MAX || strchr(s, ','))
				r = xml_fail(c, "bad value '%s' in <disk>/<serial> (at most %d bytes, no ',')",
					 s, DOMAIN_DISK_ID_MAX);
			else
				strcpy(k->serial, s);
			free(s);
			if (r)
				return r;
		} else {
			return xml_fail(c, "%s element <disk>/<%s>",
				    xml_in_list(xml_nm(e), "driver,source,target,readonly,serial") ?
				    "duplicate" : "unsupported", xml_nm(e));
		}
	}
	if (r)
		return r;
	if (!k->path)
		return xml_fail(c, "missing <disk>/<source file=...>");
	if (!k->dev[0])
		return xml_fail(c, "missing <disk>/<target dev=...>");
	for (unsigned i = 0; i + 1 < d->ndisks; i++)
		if (!strcmp(d->disks[i].dev, k->dev))
			return xml_fail(c, "duplicate target dev '%s' in <devices>/<disk>", k->dev);
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
		return xml_fail(c, "too many <devices>/<interface> (at most %d)", DOMAIN_MAX_NETS);
	k = &d->nets[d->nnets++];
	if ((r = xml_check_attrs(c, n, "devices", if_attrs)) ||
	    (r = xml_attr_in(c, n, "type", false, "ethernet")))
		return r;
	while (!(r = xml_next_elem(c, n, &e)) && e) {
		if (xml_is(e, "mac") && !seen_mac) {
			const char *a = xml_attr(e, "address");

			seen_mac = true;
			if ((r = xml_empty_elem(c, e, "interface", mac_attrs)))
				return r;
			if (!a || !xml_parse_mac(a, k->mac))
				return xml_fail(c, "bad value '%s' of 'address' on <interface>/<mac> "
					    "(xx:xx:xx:xx:xx:xx, unicast)", a ? a : "");
		} else if (xml_is(e, "target") && !k->tap[0]) {
			const char *dev = xml_attr(e, "dev");

			if ((r = xml_empty_elem(c, e, "interface", target_attrs)))
				return r;
			if (!dev || !*dev || strlen(dev) > DOMAIN_IFNAME_MAX || strchr(dev, '/') ||
			    strchr(dev, ',') || !strcmp(dev, ".") || !strcmp(dev, ".."))
				return xml_fail(c, "bad value '%s' of 'dev' on <interface>/<target> "
					    "(an interface name of at most %d bytes)", dev ? dev : "",
					    DOMAIN_IFNAME_MAX);
			strcpy(k->tap, dev);
		} else if (xml_is(e, "model") && !seen_model) {
			seen_model = true;
			if ((r = xml_empty_elem(c, e, "interface", model_attrs)) ||
			    (r = xml_attr_in(c, e, "type", false, "virtio")))
				return r;
		} else {
			return xml_fail(c, "%s element <interface>/<%s>",
				    xml_in_list(xml_nm(e), "mac,target,model") ? "duplicate" : "unsupported",
				    xml_nm(e));
		}
	}
	if (r)
		return r;
	if (!k->tap[0])
		return xml_fail(c, "missing <interface>/<target dev=...> (the tap)");
	if (!seen_mac && (r = xml_random_bytes(c, k->mac, 6)) == 0) {
		k->mac[0] = 0x52, k->mac[1] = 0x54, k->mac[2] = 0x00; /* as libvirt does */
	}
	for (unsigned i = 0; !r && i + 1 < d->nnets; i++) {
		if (!strcmp(d->nets[i].tap, k->tap))
			r = xml_fail(c, "duplicate target dev '%s' in <devices>/<interface>", k->tap);
		else if (!memcmp(d->nets[i].mac, k->mac, 6))
			r = xml_fail(c, "duplicate mac address in <devices>/<interface>");
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
	bool console = xml_is(n, "console"), seen_target = false;
	const char *type = xml_attr(n, "type");
	enum domain_chr t;
	char *path = NULL;
	xmlNode *e = NULL;
	int r;

	if ((r = xml_check_attrs(c, n, "devices", chr_attrs)) ||
	    (r = xml_attr_in(c, n, "type", false, "pty,file,null")))
		return r;
	t = !strcmp(type, "pty") ? DOMAIN_CHR_PTY : !strcmp(type, "file") ? DOMAIN_CHR_FILE :
	    DOMAIN_CHR_NULL;
	while (!r && !(r = xml_next_elem(c, n, &e)) && e) {
		if (xml_is(e, "source") && t == DOMAIN_CHR_FILE && !path) {
			const char *p = xml_attr(e, "path");

			if ((r = xml_empty_elem(c, e, xml_nm(n), source_attrs)))
				break;
			if (!p || !*p)
				r = xml_fail(c, "missing 'path' on <%s>/<source>", xml_nm(n));
			else if (!(path = strdup(p)))
				r = -ENOMEM;
		} else if (xml_is(e, "target") && !seen_target) {
			seen_target = true;
			if (!(r = xml_empty_elem(c, e, xml_nm(n), console ? console_target : serial_target)) &&
			    !(r = xml_attr_in(c, e, "port", true, "0")) && console)
				r = xml_attr_in(c, e, "type", true, "serial");
		} else {
			r = xml_fail(c, "unsupported element <%s>/<%s>", xml_nm(n), xml_nm(e));
		}
	}
	if (!r && t == DOMAIN_CHR_FILE && !path)
		r = xml_fail(c, "missing <%s>/<source path=...> for type='file'", xml_nm(n));
	if (!r && d->serial != DOMAIN_CHR_NONE &&
	    (d->serial != t || (path && strcmp(path, d->serial_path))))
		r = xml_fail(c, "<devices>/<%s> differs from the serial port already given (ferry "
			 "has one serial port; <console> may only repeat it)", xml_nm(n));
	if (!r && d->serial == DOMAIN_CHR_NONE) {
		d->serial = t;
		d->serial_path = path;
		path = NULL;
	}
	free(path);
	return r;
}

int xml_parse_devices(struct pctx *c, const xmlNode *n, struct domain_def *d)
{
	xmlNode *e = NULL;
	int r = xml_check_attrs(c, n, "domain", no_attrs);
	unsigned nserial = 0, nconsole = 0;

	while (!r && !(r = xml_next_elem(c, n, &e)) && e) {
		if (xml_is(e, "disk"))
			r = parse_disk(c, e, d);
		else if (xml_is(e, "interface"))
			r = parse_interface(c, e, d);
		else if (xml_is(e, "serial") || xml_is(e, "console"))
			r = (xml_is(e, "serial") ? ++nserial : ++nconsole) > 1 ?
			    xml_fail(c, "at most one <devices>/<%s>", xml_nm(e)) : parse_chr(c, e, d);
		else
			r = xml_fail(c, "unsupported element <devices>/<%s>", xml_nm(e));
	}
	return r;
}

/* ---- <domain> ---- */

