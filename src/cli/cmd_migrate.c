/* ferry's migration verbs: migrate, domjobinfo, domjobabort and the
 * migration settings. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define DOMAIN_OPT { "domain", OPT_STRING, true, true, "domain name, id or uuid" }

struct progress {
	struct cli *c;
	int last;
};

/* virsh's "\rMigration: [ 45 %]" on stderr. */
static void on_progress(json_object *ev, void *opaque)
{
	struct progress *p = opaque;
	json_object *data, *pct;
	int v;

	if (!json_object_object_get_ex(ev, "data", &data) ||
	    !json_object_object_get_ex(data, "percent", &pct))
		return;
	v = json_object_get_int(pct);
	if (v >= 100)
		v = 99; /* 100 % once it has ended */
	if (v == p->last)
		return;
	p->last = v;
	fprintf(p->c->err, "\rMigration: [%3d %%]", v);
	fflush(p->c->err);
	p->c->err_open = true;
}

static void add_bool(json_object *a, const char *key, bool v)
{
	json_object_object_add(a, key, json_object_new_boolean(v));
}

static json_object *migrate_args(struct cli *c)
{
	static const char *const flags[] = { "live", "offline", "suspend", "persistent",
					     "undefinesource", "auto-converge", "timeout-suspend",
					     NULL };
	json_object *a = cli_domain_args(c);
	uint64_t bw, timeout;
	const char *xmlfile = cli_str(c, "xml");

	if (cli_num(c, "bandwidth", 0, &bw) || cli_num(c, "timeout", 0, &timeout)) {
		json_object_put(a);
		return NULL;
	}
	json_object_object_add(a, "desturi", json_object_new_string(cli_str(c, "desturi")));
	if (cli_str(c, "migrateuri"))
		json_object_object_add(a, "migrateuri",
				       json_object_new_string(cli_str(c, "migrateuri")));
	for (unsigned i = 0; flags[i]; i++)
		add_bool(a, flags[i], cli_flag(c, flags[i]));
	if (bw)
		json_object_object_add(a, "bandwidth-mib", json_object_new_uint64(bw));
	if (cli_str(c, "timeout"))
		json_object_object_add(a, "timeout", json_object_new_uint64(timeout));
	add_bool(a, "progress", cli_flag(c, "verbose"));
	if (xmlfile) {
		char *xml = cli_read_xml(c, xmlfile);

		if (!xml) {
			json_object_put(a);
			return NULL;
		}
		json_object_object_add(a, "xml", json_object_new_string(xml));
		free(xml);
	}
	return a;
}

/* Ctrl+C during `migrate` aborts the job, as virsh does: a thread waits for
 * SIGINT (blocked everywhere else) and sends domjobabort on a connection of
 * its own; the migrate call then ends with the abort's error. */
static void *abort_on_sigint(void *arg)
{
	struct cli *c = arg, mine = { .uri = c->uri, .out = c->out, .err = c->err };
	const char *argv[] = { cli_str(c, "domain") };
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	if (sigwait(&set, &sig))
		return NULL;
	fprintf(c->err, "\n");
	if (!cli_parse_args(&mine, cli_find_verb("domjobabort"), 1, (char **)argv))
		cli_call(&mine, "domjobabort", cli_domain_args(&mine), NULL, NULL);
	if (mine.connected)
		rpc_close(&mine.conn);
	return NULL;
}

static int cmd_migrate(struct cli *c)
{
	struct progress p = { .c = c, .last = -1 };
	json_object *a, *ret;
	sigset_t set;
	pthread_t t;
	int r;

	/* virsh's VSH_EXCLUSIVE_OPTIONS / VSH_REQUIRE_OPTION checks */
	if (cli_flag(c, "live") && cli_flag(c, "offline")) {
		cli_error(c, "Options --live and --offline are mutually exclusive");
		return 1;
	}
	if (cli_flag(c, "timeout-suspend") && !cli_str(c, "timeout")) {
		cli_error(c, "Option --timeout is required by option --timeout-suspend");
		return 1;
	}
	a = migrate_args(c);
	if (!a)
		return 1;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (!pthread_create(&t, NULL, abort_on_sigint, c))
		pthread_detach(t);
	r = cli_call_events(c, "migrate", a, &ret, NULL,
			    cli_flag(c, "verbose") ? on_progress : NULL, &p);
	if (r)
		return 1; /* cli_error ended the progress line first */
	/* virsh leaves the line open: its closing empty line (stdout) ends it */
	if (cli_flag(c, "verbose"))
		fprintf(c->err, "\rMigration: [100 %%]");
	json_object_put(ret);
	return 0;
}

static int cmd_domjobinfo(struct cli *c)
{
	json_object *a = cli_domain_args(c), *ret;

	json_object_object_add(a, "completed", json_object_new_boolean(cli_flag(c, "completed")));
	if (cli_call(c, "domjobinfo", a, &ret, NULL))
		return 1;
	print_jobinfo(c->out, ret);
	json_object_put(ret);
	return 0;
}

static int cmd_domjobabort(struct cli *c)
{
	return cli_call(c, "domjobabort", cli_domain_args(c), NULL, NULL) ? 1 : 0;
}

/* migrate-set*: one number into the named RPC argument. */
static int set_number(struct cli *c, const char *opt, const char *cmd, const char *key)
{
	json_object *a;
	uint64_t v;

	if (cli_num(c, opt, 0, &v))
		return 1;
	a = cli_domain_args(c);
	json_object_object_add(a, key, json_object_new_uint64(v));
	return cli_call(c, cmd, a, NULL, NULL) ? 1 : 0;
}

static int get_number(struct cli *c, const char *cmd, const char *key, uint64_t zero_means)
{
	json_object *ret, *v;
	uint64_t n;

	if (cli_call(c, cmd, cli_domain_args(c), &ret, NULL))
		return 1;
	n = json_object_object_get_ex(ret, key, &v) ? json_object_get_uint64(v) : 0;
	fprintf(c->out, "%llu\n", (unsigned long long)(n ? n : zero_means));
	json_object_put(ret);
	return 0;
}

static int cmd_setmaxdowntime(struct cli *c)
{
	return set_number(c, "downtime", "migrate-setmaxdowntime", "downtime-ms");
}

static int cmd_getmaxdowntime(struct cli *c)
{
	return get_number(c, "migrate-getmaxdowntime", "downtime-ms", 0);
}

static int cmd_setspeed(struct cli *c)
{
	return set_number(c, "bandwidth", "migrate-setspeed", "bandwidth-mib");
}

static int cmd_getspeed(struct cli *c)
{
	/* virsh prints libvirt's "unlimited", the largest MiB/s it takes */
	return get_number(c, "migrate-getspeed", "bandwidth-mib", 8796093022207ull);
}

const struct cli_verb cli_migrate_verbs[] = {
	{ "migrate", "Domain Migration", "migrate a domain to another host",
	  "Moves DOMAIN to the ferryd at DESTURI (ferry+tcp://HOST[:PORT]/, ferry+ssh://HOST/, "
	  "ferry+unix:///PATH); this host's ferryd drives it (libvirt's peer-to-peer mode). "
	  "Without --live the guest is paused first and moved whole. By default it arrives "
	  "transient and stays defined (shut off) here. MIGRATEURI (tcp://HOST) names the "
	  "destination's address for the migration stream.",
	  { { "live", OPT_BOOL, false, false, "live migration (pre-copy)" },
	    { "offline", OPT_BOOL, false, false, "move the definition of a shut-off domain only" },
	    { "suspend", OPT_BOOL, false, false, "leave the guest paused on the destination" },
	    { "persistent", OPT_BOOL, false, false, "define the domain on the destination" },
	    { "undefinesource", OPT_BOOL, false, false, "undefine the domain here" },
	    { "xml", OPT_STRING, false, false, "definition to use on the destination" },
	    { "verbose", OPT_BOOL, false, false, "show progress" },
	    { "bandwidth", OPT_NUMBER, false, false, "maximum bandwidth in MiB/s" },
	    { "timeout", OPT_NUMBER, false, false, "suspend the guest after SECONDS of live "
	      "migration" },
	    { "timeout-suspend", OPT_BOOL, false, false, "suspend at --timeout (the default)" },
	    { "auto-converge", OPT_BOOL, false, false, "throttle the vCPUs if it does not "
	      "converge" },
	    DOMAIN_OPT,
	    { "desturi", OPT_STRING, true, true, "the destination host's ferryd" },
	    { "migrateuri", OPT_STRING, true, false, "tcp://HOST[:PORT]: the destination's "
	      "address for the stream" } }, cmd_migrate },
	{ "domjobinfo", "Domain Monitoring", "domain job information",
	  "Shows the figures of the running migration (or the last one, --completed).",
	  { DOMAIN_OPT, { "completed", OPT_BOOL, false, false, "the last finished job" } },
	  cmd_domjobinfo },
	{ "domjobabort", "Domain Monitoring", "abort the active domain job",
	  "Cancels a running migration before its hand-over; the guest runs on here.",
	  { DOMAIN_OPT }, cmd_domjobabort },
	{ "migrate-setmaxdowntime", "Domain Migration", "set maximum tolerable downtime",
	  "The longest pause (ms) a live migration may take at its switch-over; applies to a "
	  "running migration at once.",
	  { DOMAIN_OPT, { "downtime", OPT_NUMBER, true, true, "maximum downtime in ms" } },
	  cmd_setmaxdowntime },
	{ "migrate-getmaxdowntime", "Domain Migration", "get maximum tolerable downtime",
	  "Prints the maximum downtime in ms.", { DOMAIN_OPT }, cmd_getmaxdowntime },
	{ "migrate-setspeed", "Domain Migration", "set the maximum migration bandwidth",
	  "MiB/s a migration may use (0: unlimited); applies to a running migration at once.",
	  { DOMAIN_OPT, { "bandwidth", OPT_NUMBER, true, true, "MiB/s" } }, cmd_setspeed },
	{ "migrate-getspeed", "Domain Migration", "get the maximum migration bandwidth",
	  "Prints the maximum bandwidth in MiB/s.", { DOMAIN_OPT }, cmd_getspeed },
	{ NULL, NULL, NULL, NULL, { { NULL, 0, false, false, NULL } }, NULL },
};
