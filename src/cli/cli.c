/* ferry: option parsing, the connection to ferryd, errors, help, bridge. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fdio.h"
#include "common/util.h"

void cli_error(struct cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err_open)
		fputc('\n', c->err);
	c->err_open = false;
	fputs("error: ", c->err);
	va_start(ap, fmt);
	vfprintf(c->err, fmt, ap);
	va_end(ap);
	fputc('\n', c->err);
}

const struct cli_verb *cli_find_verb(const char *name)
{
	const struct cli_verb *const tables[] = { cli_domain_verbs, cli_migrate_verbs,
						  cli_misc_verbs };

	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct cli_verb *v = tables[t]; v->name; v++)
			if (!strcmp(v->name, name))
				return v;
	return NULL;
}

static int opt_index(const struct cli_verb *v, const char *name, size_t len)
{
	for (int i = 0; i < CLI_MAX_OPTS && v->opts[i].name; i++)
		if (strlen(v->opts[i].name) == len && !strncmp(v->opts[i].name, name, len))
			return i;
	return -1;
}

static int take_positional(struct cli *c, const struct cli_verb *v, const char *word)
{
	for (int i = 0; i < CLI_MAX_OPTS && v->opts[i].name; i++) {
		if (v->opts[i].positional && !c->given[i]) {
			c->given[i] = true;
			c->val[i] = word;
			return 0;
		}
	}
	cli_error(c, "unexpected data '%s'", word);
	return -1;
}

/* One --option at argv[*k]. */
static int take_option(struct cli *c, const struct cli_verb *v, int argc, char **argv, int *k)
{
	const char *name = argv[*k] + 2, *eq = strchr(name, '=');
	int i = opt_index(v, name, eq ? (size_t)(eq - name) : strlen(name));

	if (i < 0) {
		cli_error(c, "command '%s' doesn't support option --%.*s", v->name,
			  (int)(eq ? (size_t)(eq - name) : strlen(name)), name);
		return -1;
	}
	if (c->given[i]) {
		cli_error(c, "option --%s already seen", v->opts[i].name);
		return -1;
	}
	c->given[i] = true;
	if (v->opts[i].type == OPT_BOOL) {
		if (eq) {
			cli_error(c, "option --%s takes no value", v->opts[i].name);
			return -1;
		}
		return 0;
	}
	if (eq) {
		c->val[i] = eq + 1;
	} else if (*k + 1 < argc) {
		c->val[i] = argv[++*k];
	} else {
		cli_error(c, "expected syntax: --%s <%s>", v->opts[i].name,
			  v->opts[i].type == OPT_NUMBER ? "number" : "string");
		return -1;
	}
	return 0;
}

int cli_parse_args(struct cli *c, const struct cli_verb *v, int argc, char **argv)
{
	bool only_positional = false;

	memset(c->val, 0, sizeof(c->val));
	memset(c->given, 0, sizeof(c->given));
	c->verb = v;
	for (int k = 0; k < argc; k++) {
		int r;

		if (!only_positional && !strcmp(argv[k], "--"))
			only_positional = true, r = 0;
		else if (!only_positional && !strncmp(argv[k], "--", 2) && argv[k][2])
			r = take_option(c, v, argc, argv, &k);
		else
			r = take_positional(c, v, argv[k]);
		if (r)
			return r;
	}
	for (int i = 0; i < CLI_MAX_OPTS && v->opts[i].name; i++) {
		if (v->opts[i].required && !c->given[i]) {
			cli_error(c, "command '%s' requires <%s> option", v->name, v->opts[i].name);
			return -1;
		}
		if (c->given[i] && v->opts[i].type != OPT_BOOL && !c->val[i][0]) {
			cli_error(c, "option --%s: empty value", v->opts[i].name);
			return -1;
		}
	}
	return 0;
}

static int find_given(const struct cli *c, const char *name)
{
	int i = c->verb ? opt_index(c->verb, name, strlen(name)) : -1;

	return i >= 0 && c->given[i] ? i : -1;
}

const char *cli_str(const struct cli *c, const char *name)
{
	int i = find_given(c, name);

	return i >= 0 ? c->val[i] : NULL;
}

bool cli_flag(const struct cli *c, const char *name)
{
	return find_given(c, name) >= 0;
}

int cli_num(const struct cli *c, const char *name, uint64_t def, uint64_t *out)
{
	const char *s = cli_str(c, name);

	*out = def;
	if (!s)
		return 0;
	if (parse_u64(s, out)) {
		cli_error((struct cli *)c, "Numeric value '%s' for <%s> option is malformed or out "
			  "of range", s, name);
		return -1;
	}
	return 0;
}

json_object *cli_domain_args(const struct cli *c)
{
	json_object *a = json_object_new_object();

	json_object_object_add(a, "domain", json_object_new_string(cli_str(c, "domain")));
	return a;
}

static int cli_connect(struct cli *c)
{
	struct rpc_uri u;
	char err[512];

	if (c->connected)
		return 0;
	if (rpc_uri_parse(c->uri, &u, err, sizeof(err)) ||
	    rpc_connect(&c->conn, &u, 30000, err, sizeof(err))) {
		cli_error(c, "failed to connect to the hypervisor: %s", err);
		return -1;
	}
	c->conn.timeout_ms = -1; /* a migration may take long; ferryd always answers */
	c->connected = true;
	return 0;
}

int cli_call_events(struct cli *c, const char *cmd, json_object *args, json_object **ret,
		    const char *what, rpc_event_fn on_event, void *opaque)
{
	char err[1024], cls[32];
	int r;

	if (ret)
		*ret = NULL;
	if (cli_connect(c)) {
		json_object_put(args);
		return -1;
	}
	r = rpc_call(&c->conn, cmd, args, ret, on_event, opaque, err, sizeof(err), cls);
	if (r == 0)
		return 0;
	if (r < 0)
		cli_error(c, "%s", err);
	else if (!strcmp(cls, "NoDomain") && cli_str(c, "domain"))
		cli_error(c, "failed to get domain '%s'", cli_str(c, "domain"));
	else if (!strcmp(cls, "OperationInvalid"))
		cli_error(c, "%s%sRequested operation is not valid: %s", what ? what : "",
			  what ? ": " : "", err);
	else
		cli_error(c, "%s%s%s", what ? what : "", what ? ": " : "", err);
	return -1;
}

int cli_call(struct cli *c, const char *cmd, json_object *args, json_object **ret,
	     const char *what)
{
	return cli_call_events(c, cmd, args, ret, what, NULL, NULL);
}

/* ---- help ---- */

static void help_verb(FILE *f, const struct cli_verb *v)
{
	fprintf(f, "  NAME\n    %s - %s\n\n  SYNOPSIS\n    %s", v->name, v->summary, v->name);
	for (int i = 0; i < CLI_MAX_OPTS && v->opts[i].name; i++) {
		const struct cli_opt *o = &v->opts[i];
		const char *open = o->required ? "" : "[", *close = o->required ? "" : "]";

		if (o->type == OPT_BOOL)
			fprintf(f, " [--%s]", o->name);
		else if (o->positional)
			fprintf(f, " %s[--%s] <%s>%s", open, o->name, o->name, close);
		else
			fprintf(f, " [--%s <%s>]", o->name, o->type == OPT_NUMBER ? "number" : "string");
	}
	fprintf(f, "\n\n  DESCRIPTION\n    %s\n", v->description);
	if (v->opts[0].name) {
		fprintf(f, "\n  OPTIONS\n");
		for (int i = 0; i < CLI_MAX_OPTS && v->opts[i].name; i++) {
			const struct cli_opt *o = &v->opts[i];
			char left[64];

			snprintf(left, sizeof(left), "%s--%s%s", o->positional ? "[" : "", o->name,
				 o->positional ? "]" : "");
			if (o->type != OPT_BOOL)
				snprintf(left + strlen(left), sizeof(left) - strlen(left), " <%s>",
					 o->type == OPT_NUMBER ? "number" : "string");
			fprintf(f, "    %-28s %s\n", left, o->help);
		}
	}
	fputc('\n', f);
}

void cli_help_all(FILE *f)
{
	const struct cli_verb *const tables[] = { cli_domain_verbs, cli_migrate_verbs,
						  cli_misc_verbs };
	const char *groups[16];
	unsigned ngroups = 0;

	fprintf(f, "ferry: manage VMs and migrate them between hosts, the virsh way.\n\n"
		   "usage: ferry [-c URI] [-q] VERB [OPTIONS]\n"
		   "  -c URI   ferry+unix:///PATH (default %s), ferry+tcp://HOST[:PORT]/,\n"
		   "           ferry+ssh://[USER@]HOST[:PORT]/; $FERRY_DEFAULT_URI\n"
		   "  -q       quiet\n\n", RPC_DEFAULT_SOCKET);
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct cli_verb *v = tables[t]; v->name; v++) {
			bool seen = false;

			for (unsigned g = 0; g < ngroups; g++)
				seen |= !strcmp(groups[g], v->group);
			if (!seen && ngroups < 16)
				groups[ngroups++] = v->group;
		}
	}
	for (unsigned g = 0; g < ngroups; g++) {
		fprintf(f, " %s:\n", groups[g]);
		for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
			for (const struct cli_verb *v = tables[t]; v->name; v++)
				if (!strcmp(v->group, groups[g]))
					fprintf(f, "    %-24s %s\n", v->name, v->summary);
		fputc('\n', f);
	}
	fprintf(f, "`ferry help VERB` describes a verb and its options.\n");
}

static int cmd_help(struct cli *c)
{
	const char *name = cli_str(c, "command");
	const struct cli_verb *v;

	if (!name) {
		cli_help_all(c->out);
		return 0;
	}
	v = cli_find_verb(name);
	if (!v) {
		cli_error(c, "command or command group '%s' doesn't exist", name);
		return 1;
	}
	help_verb(c->out, v);
	return 0;
}

/* ---- bridge: ferry+ssh's far end ---- */

static int copy_once(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n <= 0)
		return -1;
	return fd_write_all(to, buf, (size_t)n) ? -1 : 0;
}

static int cmd_bridge(struct cli *c)
{
	const char *path = cli_str(c, "socket");
	struct rpc_conn conn;
	char err[512];
	int fd;

	if (rpc_connect_unix(&conn, path, 10000, err, sizeof(err))) {
		cli_error(c, "%s", err);
		return 1;
	}
	/* rpc_connect_unix consumed the greeting (checking ferryd answers);
	 * hand it on first, then the bytes go through untouched. */
	{
		const char *g = json_object_to_json_string_ext(conn.greeting, JSON_C_TO_STRING_PLAIN);

		if (write(STDOUT_FILENO, g, strlen(g)) < 0 || write(STDOUT_FILENO, "\n", 1) < 0)
			return 1;
	}
	fd = conn.rfd;
	{
		char buf[65536];
		size_t n = rpc_take_buffered(&conn, buf, sizeof(buf));

		if (n && write(STDOUT_FILENO, buf, n) != (ssize_t)n)
			return 1;
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
				       { .fd = fd, .events = POLLIN } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents && copy_once(STDIN_FILENO, fd))
			break;
		if (p[1].revents && copy_once(fd, STDOUT_FILENO))
			break;
	}
	rpc_close(&conn);
	return 0;
}

const struct cli_verb cli_misc_verbs[] = {
	{ "help", "Virsh itself", "print help",
	  "Prints the verbs, or the usage and options of one verb.",
	  { { "command", OPT_STRING, true, false, "the verb to describe" } }, cmd_help },
	{ "bridge", "Virsh itself", "join stdin/stdout to a local ferryd socket (ferry+ssh)",
	  "Used by ferry+ssh:// connections: the remote end runs `ferry bridge SOCKET`.",
	  { { "socket", OPT_STRING, true, true, "ferryd's UNIX socket" } }, cmd_bridge },
	{ NULL, NULL, NULL, NULL, { { NULL, 0, false, false, NULL } }, NULL },
};
