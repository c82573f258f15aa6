/* ferry's domain verbs: list, define, undefine, create, start, shutdown,
 * destroy, suspend, resume, dominfo, domstate, dumpxml, console,
 * domdirtyrate-calc, domstats. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fdio.h"
#include "common/util.h"

#define DOMAIN_OPT { "domain", OPT_STRING, true, true, "domain name, id or uuid" }

static int cmd_list(struct cli *c)
{
	json_object *a = json_object_new_object(), *ret;

	json_object_object_add(a, "all", json_object_new_boolean(cli_flag(c, "all")));
	if (cli_call(c, "list", a, &ret, NULL))
		return 1;
	if (cli_flag(c, "name")) {
		for (size_t i = 0; i < json_object_array_length(ret); i++) {
			json_object *n;

			if (json_object_object_get_ex(json_object_array_get_idx(ret, i), "name", &n))
				fprintf(c->out, "%s\n", json_object_get_string(n));
		}
	} else {
		print_list(c->out, ret, !c->quiet);
	}
	json_object_put(ret);
	return 0;
}

char *cli_read_xml(struct cli *c, const char *path)
{
	uint8_t *data;
	size_t size;
	int r = file_read_all(path, 1u << 20, &data, &size);

	if (r) {
		cli_error(c, "Failed to open file '%s': %s", path,
			  r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
		return NULL;
	}
	if (memchr(data, 0, size)) {
		cli_error(c, "%s: not a text file", path);
		free(data);
		return NULL;
	}
	{
		char *s = realloc(data, size + 1);

		if (!s) {
			free(data);
			return NULL;
		}
		s[size] = 0;
		return s;
	}
}

/* The domain's name from a reply, else def (virsh prints the name even when
 * the domain was given by id or UUID). */
static const char *ret_name(json_object *ret, const char *def)
{
	json_object *n;

	return json_object_object_get_ex(ret, "name", &n) ? json_object_get_string(n) : def;
}

/* define and create: a file's XML to ferryd; verb "define" or "create",
 * done "defined" or "created". */
static int from_xml_file(struct cli *c, const char *verb, const char *done)
{
	const char *file = cli_str(c, "file");
	char *xml = cli_read_xml(c, file);
	json_object *a, *ret;
	char what[300];

	if (!xml)
		return 1;
	a = json_object_new_object();
	json_object_object_add(a, "xml", json_object_new_string(xml));
	if (!strcmp(verb, "create"))
		json_object_object_add(a, "paused", json_object_new_boolean(cli_flag(c, "paused")));
	free(xml);
	snprintf(what, sizeof(what), "Failed to %s domain from %s", verb, file);
	if (cli_call(c, verb, a, &ret, what))
		return 1;
	if (!c->quiet)
		fprintf(c->out, "Domain '%s' %s from %s\n", ret_name(ret, file), done, file);
	json_object_put(ret);
	return 0;
}

static int cmd_define(struct cli *c)
{
	return from_xml_file(c, "define", "defined");
}

static int cmd_create(struct cli *c)
{
	return from_xml_file(c, "create", "created");
}

/* A verb that names one domain and prints one line on success. */
static int simple(struct cli *c, const char *cmd, json_object *a, const char *fail,
		  const char *done)
{
	const char *dom = cli_str(c, "domain");
	json_object *ret;
	char what[300];

	snprintf(what, sizeof(what), "Failed to %s domain '%s'", fail, dom);
	if (cli_call(c, cmd, a, &ret, what))
		return 1;
	if (!c->quiet && done)
		fprintf(c->out, "Domain '%s' %s\n", ret_name(ret, dom), done);
	json_object_put(ret);
	return 0;
}

static int cmd_start(struct cli *c)
{
	json_object *a = cli_domain_args(c);

	json_object_object_add(a, "paused", json_object_new_boolean(cli_flag(c, "paused")));
	return simple(c, "start", a, "start", "started");
}

static int cmd_undefine(struct cli *c)
{
	return simple(c, "undefine", cli_domain_args(c), "undefine", "has been undefined");
}

static int cmd_shutdown(struct cli *c)
{
	return simple(c, "shutdown", cli_domain_args(c), "shutdown", "is being shutdown");
}

static int cmd_destroy(struct cli *c)
{
	json_object *a = cli_domain_args(c);

	json_object_object_add(a, "graceful", json_object_new_boolean(cli_flag(c, "graceful")));
	return simple(c, "destroy", a, "destroy", "destroyed");
}

static int cmd_suspend(struct cli *c)
{
	return simple(c, "suspend", cli_domain_args(c), "suspend", "suspended");
}

static int cmd_resume(struct cli *c)
{
	return simple(c, "resume", cli_domain_args(c), "resume", "resumed");
}

static int cmd_dominfo(struct cli *c)
{
	json_object *ret;

	if (cli_call(c, "dominfo", cli_domain_args(c), &ret, NULL))
		return 1;
	print_dominfo(c->out, ret);
	json_object_put(ret);
	return 0;
}

static int cmd_domstate(struct cli *c)
{
	json_object *ret, *st, *why;

	if (cli_call(c, "domstate", cli_domain_args(c), &ret, NULL))
		return 1;
	json_object_object_get_ex(ret, "state", &st);
	json_object_object_get_ex(ret, "reason", &why);
	if (cli_flag(c, "reason"))
		fprintf(c->out, "%s (%s)\n", json_object_get_string(st), json_object_get_string(why));
	else
		fprintf(c->out, "%s\n", json_object_get_string(st));
	json_object_put(ret);
	return 0;
}

static int cmd_dumpxml(struct cli *c)
{
	json_object *a = cli_domain_args(c), *ret, *xml;

	json_object_object_add(a, "migratable", json_object_new_boolean(cli_flag(c, "migratable")));
	json_object_object_add(a, "inactive", json_object_new_boolean(cli_flag(c, "inactive")));
	if (cli_call(c, "dumpxml", a, &ret, NULL))
		return 1;
	if (json_object_object_get_ex(ret, "xml", &xml))
		fputs(json_object_get_string(xml), c->out);
	json_object_put(ret);
	return 0;
}

/* ---- console ---- */

static int console_copy(struct cli *c, int in_fd, bool tty)
{
	int fd = c->conn.rfd;
	bool in_open = true;
	char buf[4096];
	size_t n = rpc_take_buffered(&c->conn, buf, sizeof(buf));

	if (n && write(STDOUT_FILENO, buf, n) < 0)
		return 1;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
				       { .fd = in_open ? in_fd : -1, .events = POLLIN } };
		ssize_t r;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			r = read(fd, buf, sizeof(buf));
			if (r <= 0)
				return 0;
			if (fd_write_all(STDOUT_FILENO, buf, (size_t)r))
				return 1;
		}
		if (p[1].revents) {
			r = read(in_fd, buf, sizeof(buf));
			if (r <= 0) {
				/* stdin ended: keep showing the output */
				in_open = false;
				continue;
			}
			if (tty && memchr(buf, 0x1d, (size_t)r)) /* ^] */
				return 0;
			if (fd_write_all(c->conn.wfd, buf, (size_t)r))
				return 1;
		}
	}
}

static int cmd_console(struct cli *c)
{
	const char *dom = cli_str(c, "domain");
	json_object *a = cli_domain_args(c);
	bool tty = isatty(STDIN_FILENO);
	struct termios old, raw;
	int r;

	json_object_object_add(a, "force", json_object_new_boolean(cli_flag(c, "force")));
	if (cli_call(c, "console", a, NULL, NULL))
		return 1;
	if (!c->quiet)
		fprintf(c->out, "Connected to domain '%s'\nEscape character is ^] (Ctrl + ])\n",
			dom);
	fflush(c->out);
	if (tty && !tcgetattr(STDIN_FILENO, &old)) {
		raw = old;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
	} else {
		tty = false;
	}
	r = console_copy(c, STDIN_FILENO, tty);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', c->out);
	}
	return r;
}

/* ---- dirty rate, stats ---- */

static int cmd_dirtyrate(struct cli *c)
{
	json_object *a = cli_domain_args(c);
	uint64_t secs;

	if (cli_num(c, "seconds", 1, &secs)) {
		json_object_put(a);
		return 1;
	}
	if (secs < 1 || secs > 60) {
		json_object_put(a);
		cli_error(c, "seconds must be from 1 to 60");
		return 1;
	}
	json_object_object_add(a, "seconds", json_object_new_int((int)secs));
	if (cli_call(c, "domdirtyrate-calc", a, NULL, NULL))
		return 1;
	if (!c->quiet)
		fprintf(c->out, "Start to calculate domain's memory dirty rate successfully.\n");
	return 0;
}

static int cmd_domstats(struct cli *c)
{
	json_object *a = json_object_new_object(), *groups = json_object_new_array(), *ret;
	const char *dom = cli_str(c, "domain");

	if (cli_flag(c, "state"))
		json_object_array_add(groups, json_object_new_string("state"));
	if (cli_flag(c, "dirtyrate"))
		json_object_array_add(groups, json_object_new_string("dirtyrate"));
	if (json_object_array_length(groups))
		json_object_object_add(a, "groups", groups);
	else
		json_object_put(groups);
	if (dom) {
		json_object *doms = json_object_new_array();

		json_object_array_add(doms, json_object_new_string(dom));
		json_object_object_add(a, "domains", doms);
	}
	if (cli_call(c, "domstats", a, &ret, NULL))
		return 1;
	print_domstats(c->out, ret);
	json_object_put(ret);
	return 0;
}

const struct cli_verb cli_domain_verbs[] = {
	{ "list", "Domain Monitoring", "list domains",
	  "Lists the active domains, or all with --all: id (- when inactive), name, state.",
	  { { "all", OPT_BOOL, false, false, "active and inactive domains" },
	    { "name", OPT_BOOL, false, false, "names only" } }, cmd_list },
	{ "dominfo", "Domain Monitoring", "domain information",
	  "Shows the basic facts of a domain.", { DOMAIN_OPT }, cmd_dominfo },
	{ "domstate", "Domain Monitoring", "domain state", "Shows a domain's state.",
	  { DOMAIN_OPT, { "reason", OPT_BOOL, false, false, "also why it is in that state" } },
	  cmd_domstate },
	{ "domstats", "Domain Monitoring", "get statistics about one or more domains",
	  "Prints statistics as key=value lines, virsh's names (state.*, dirtyrate.*).",
	  { { "state", OPT_BOOL, false, false, "state.state, state.reason" },
	    { "dirtyrate", OPT_BOOL, false, false, "the last domdirtyrate-calc measurement" },
	    { "domain", OPT_STRING, true, false, "one domain (default: all)" } }, cmd_domstats },
	{ "domdirtyrate-calc", "Domain Monitoring", "calculate a domain's memory dirty rate",
	  "Measures how fast the guest dirties memory (KVM's dirty log) over SECONDS in the "
	  "background; domstats --dirtyrate shows the result.",
	  { DOMAIN_OPT, { "seconds", OPT_NUMBER, true, false, "1 to 60 (default 1)" } },
	  cmd_dirtyrate },
	{ "dumpxml", "Domain Management", "domain information in XML",
	  "Prints the domain's definition (the running one, unless --inactive).",
	  { DOMAIN_OPT, { "migratable", OPT_BOOL, false, false, "suitable for migrations" },
	    { "inactive", OPT_BOOL, false, false, "the persistent definition" } }, cmd_dumpxml },
	{ "define", "Domain Management", "define (but don't start) a domain from an XML file",
	  "Stores a persistent domain definition (docs/domain-xml.md for the accepted XML).",
	  { { "file", OPT_STRING, true, true, "file containing an XML domain description" } },
	  cmd_define },
	{ "create", "Domain Management", "create a domain from an XML file",
	  "Starts a transient domain from an XML file.",
	  { { "file", OPT_STRING, true, true, "file containing an XML domain description" },
	    { "paused", OPT_BOOL, false, false, "leave the guest paused" } }, cmd_create },
	{ "undefine", "Domain Management", "undefine a domain",
	  "Removes a persistent definition; a running domain becomes transient.",
	  { DOMAIN_OPT }, cmd_undefine },
	{ "start", "Domain Management", "start a (previously defined) inactive domain",
	  "Boots a defined domain.",
	  { DOMAIN_OPT, { "paused", OPT_BOOL, false, false, "leave the guest paused" } },
	  cmd_start },
	{ "shutdown", "Domain Management", "gracefully shutdown a domain",
	  "Presses the ACPI power button; the guest decides.", { DOMAIN_OPT }, cmd_shutdown },
	{ "destroy", "Domain Management", "destroy (stop) a domain",
	  "Ends the domain's VM at once (also clears a crashed state).",
	  { DOMAIN_OPT, { "graceful", OPT_BOOL, false, false, "a longer grace time" } },
	  cmd_destroy },
	{ "suspend", "Domain Management", "suspend a domain", "Pauses the guest's vCPUs.",
	  { DOMAIN_OPT }, cmd_suspend },
	{ "resume", "Domain Management", "resume a domain", "Runs a suspended guest again.",
	  { DOMAIN_OPT }, cmd_resume },
	{ "console", "Domain Management", "connect to the guest console",
	  "Joins the terminal to the guest's serial port (a <serial type='pty'> domain); "
	  "Ctrl+] ends.",
	  { DOMAIN_OPT, { "force", OPT_BOOL, false, false, "accepted for virsh scripts" } },
	  cmd_console },
	{ NULL, NULL, NULL, NULL, { { NULL, 0, false, false, NULL } }, NULL },
};
