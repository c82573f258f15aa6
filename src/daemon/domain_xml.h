/* Private to domain*.c: the helpers the domain XML parser's pieces share. */
#ifndef FERRY_DAEMON_DOMAIN_XML_H
#define FERRY_DAEMON_DOMAIN_XML_H

#include <stdbool.h>
#include <stddef.h>

#include <libxml/tree.h>

#include "daemon/domain.h"

struct pctx {
	char *err;
	size_t errlen;
};

/* Writes the message into c's error buffer; returns -EINVAL. */
int xml_fail(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* n's element name; whether it is `name`; its attribute `name` (or NULL). */
const char *xml_nm(const xmlNode *n);
bool xml_is(const xmlNode *n, const char *name);
const char *xml_attr(const xmlNode *n, const char *name);
/* Refuses an attribute of n (inside parent) not in allowed (NULL-terminated). */
int xml_check_attrs(struct pctx *c, const xmlNode *n, const char *parent,
		    const char *const *allowed);
/* The next element child after *cur (the first if NULL); text other than
 * white space and anything else but comments is refused. */
int xml_next_elem(struct pctx *c, const xmlNode *n, xmlNode **cur);
/* The text of a leaf element (malloc'ed into *out); leaf also refuses attributes. */
int xml_leaf_text(struct pctx *c, const xmlNode *n, const char *parent, char **out);
int xml_leaf(struct pctx *c, const xmlNode *n, const char *parent, char **out);
/* s without leading and trailing white space (in place). */
char *xml_trim(char *s);
int xml_random_bytes(struct pctx *c, void *p, size_t n);
/* An element with only the allowed attributes and no children. */
int xml_empty_elem(struct pctx *c, const xmlNode *n, const char *parent,
		   const char *const *allowed);
/* s is one of the comma-separated values. */
bool xml_in_list(const char *s, const char *values);
/* Attribute name of n absent (if opt) or one of values. */
int xml_attr_in(struct pctx *c, const xmlNode *n, const char *name, bool opt,
		const char *values);

/* <devices> (domain_devices.c). */
int xml_parse_devices(struct pctx *c, const xmlNode *n, struct domain_def *d);

#endif
