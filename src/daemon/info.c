/* Read-mostly commands: hello, list, dominfo, domstate, dumpxml, domstats,
 * the dirty-rate measurement and the migration settings. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/commands.h"

static const struct arg_spec hello_args[] = { { NULL, 0 } };

static json_object *cmd_hello(struct client *cl, json_object *args, struct cmd_error *e)
{
	json_object *ret = json_object_new_object();

	(void)args, (void)e;
	json_object_object_add(ret, "hostname", json_object_new_string(cl->d->hostname));
	json_object_object_add(ret, "version", json_object_new_string("0.1.0"));
	json_object_object_add(ret, "state-dir", json_object_new_string(cl->d->store.dir));
	return ret;
}

static bool is_active(const struct dom *dom)
{
	return dom->proc.pid != 0;
}

static int cmp_entries(const void *a, const void *b)
{
	json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
	json_object *v;
	int ix, iy;

	json_object_object_get_ex(x, "id", &v);
	ix = json_object_get_int(v);
	json_object_object_get_ex(y, "id", &v);
	iy = json_object_get_int(v);
	if ((ix < 0) != (iy < 0))
		return ix < 0 ? 1 : -1;
	if (ix >= 0)
		return ix - iy;
	json_object_object_get_ex(x, "name", &v);
	{
		const char *nx = json_object_get_string(v);

		json_object_object_get_ex(y, "name", &v);
		return strcmp(nx, json_object_get_string(v));
	}
}

static const struct arg_spec list_args[] = { { "all", ARG_BOOL }, { NULL, 0 } };

static json_object *cmd_list(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	bool all = arg_bool(args, "all");
	json_object *entries[1024];
	json_object *ret;
	size_t n = 0;

	(void)e;
	pthread_mutex_lock(&d->lock);
	for (struct dom *dom = d->doms; dom && n < 1024; dom = dom->next) {
		json_object *o;
		char u[37];

		if (!all && !is_active(dom))
			continue;
		o = json_object_new_object();
		domain_uuid_format(dom->uuid, u);
		json_object_object_add(o, "id", json_object_new_int(is_active(dom) ? dom->id : -1));
		json_object_object_add(o, "name", json_object_new_string(dom->name));
		json_object_object_add(o, "uuid", json_object_new_string(u));
		json_object_object_add(o, "state", json_object_new_string(dom_state_name(dom->state)));
		json_object_object_add(o, "persistent", json_object_new_boolean(dom->def != NULL));
		entries[n++] = o;
	}
	pthread_mutex_unlock(&d->lock);
	qsort(entries, n, sizeof(entries[0]), cmp_entries);
	ret = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(ret, entries[i]);
	return ret;
}

/* The definition to describe: the live one of an active domain. */
static const struct domain_def *shown_def(const struct dom *dom, bool inactive)
{
	if (inactive && dom->def)
		return dom->def;
	return dom->live ? dom->live : dom->def;
}

static json_object *cmd_dominfo(struct client *cl, struct dom *dom, json_object *args,
				struct cmd_error *e)
{
	const struct domain_def *def;
	json_object *ret;
	char u[37];

	(void)cl, (void)args, (void)e;
	def = shown_def(dom, false);
	domain_uuid_format(dom->uuid, u);
	ret = json_object_new_object();
	json_object_object_add(ret, "id", json_object_new_int(is_active(dom) ? dom->id : -1));
	json_object_object_add(ret, "name", json_object_new_string(dom->name));
	json_object_object_add(ret, "uuid", json_object_new_string(u));
	json_object_object_add(ret, "os-type", json_object_new_string("hvm"));
	json_object_object_add(ret, "state", json_object_new_string(dom_state_name(dom->state)));
	json_object_object_add(ret, "reason", json_object_new_string(dom->reason));
	json_object_object_add(ret, "vcpus", json_object_new_int((int)def->vcpus));
	json_object_object_add(ret, "max-memory-kib", json_object_new_uint64(def->memory >> 10));
	json_object_object_add(ret, "used-memory-kib",
			       json_object_new_uint64(is_active(dom) ? def->current_memory >> 10 : 0));
	json_object_object_add(ret, "persistent", json_object_new_boolean(dom->def != NULL));
	json_object_object_add(ret, "autostart", json_object_new_boolean(false));
	json_object_object_add(ret, "cpu-time-ns",
			       json_object_new_uint64(is_active(dom) ? vmproc_cpu_ns(dom->proc.pid) : 0));
	return ret;
}

static json_object *cmd_domstate(struct client *cl, struct dom *dom, json_object *args,
				 struct cmd_error *e)
{
	json_object *ret = json_object_new_object();

	(void)cl, (void)args, (void)e;
	json_object_object_add(ret, "state", json_object_new_string(dom_state_name(dom->state)));
	json_object_object_add(ret, "reason", json_object_new_string(dom->reason));
	json_object_object_add(ret, "id", json_object_new_int(is_active(dom) ? dom->id : -1));
	return ret;
}

static const struct arg_spec dumpxml_args[] = {
	{ "domain", ARG_STRING }, { "migratable", ARG_BOOL }, { "inactive", ARG_BOOL },
	{ NULL, 0 },
};

static json_object *cmd_dumpxml(struct client *cl, struct dom *dom, json_object *args,
				struct cmd_error *e)
{
	json_object *ret = NULL;
	struct buf out = { 0 };

	(void)cl;
	if (domain_format(shown_def(dom, arg_bool(args, "inactive")), arg_bool(args, "migratable"),
			  &out)) {
		cmd_fail(e, "GenericError", "cannot format the definition");
	} else {
		ret = json_object_new_object();
		json_object_object_add(ret, "xml", json_object_new_string((char *)out.data));
	}
	buf_free(&out);
	return ret;
}

/* The active domain of args, referenced, with the lock dropped; NULL (e set)
 * when absent or not running. */
static struct dom *active_dom(struct daemon *d, json_object *args, struct cmd_error *e)
{
	struct dom *dom;

	pthread_mutex_lock(&d->lock);
	dom = arg_domain_locked(d, args, e);
	if (dom && (!is_active(dom) || dom->incoming)) {
		cmd_fail(e, "OperationInvalid", "domain is not running");
		dom_put_locked(d, dom);
		dom = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	return dom;
}

static const struct arg_spec dirtyrate_calc_args[] = {
	{ "domain", ARG_STRING }, { "seconds", ARG_UINT }, { NULL, 0 },
};

static json_object *cmd_dirtyrate_calc(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	json_object *a;
	struct dom *dom;
	uint64_t secs;
	char err[512];
	int r;

	if (!arg_u64(args, "seconds", 1, 60, 1, &secs, e))
		return NULL;
	dom = active_dom(d, args, e);
	if (!dom)
		return NULL;
	a = json_object_new_object();
	json_object_object_add(a, "calc-time", json_object_new_int((int)secs));
	r = dom_vmm_call(d, dom, "calc-dirty-rate", a, NULL, err, sizeof(err));
	if (r)
		cmd_fail(e, "GenericError", "%s", r < 0 ? strerror(-r) : err);
	dom_put(d, dom);
	return e->cls ? NULL : json_object_new_object();
}

static int64_t get_i64(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : 0;
}

/* dirtyrate.* from the VM's query-dirty-rate. */
static void stats_dirtyrate(struct daemon *d, struct dom *dom, json_object *stats)
{
	json_object *q = NULL, *st;
	const char *status;
	char err[256];
	int calc = 0;

	if (dom_vmm_call(d, dom, "query-dirty-rate", NULL, &q, err, sizeof(err)))
		return;
	status = json_object_object_get_ex(q, "status", &st) ? json_object_get_string(st) : "";
	if (!strcmp(status, "measuring"))
		calc = 1;
	else if (!strcmp(status, "measured"))
		calc = 2;
	json_object_object_add(stats, "dirtyrate.calc_status", json_object_new_int(calc));
	json_object_object_add(stats, "dirtyrate.calc_start_time",
			       json_object_new_int64(get_i64(q, "start-time")));
	json_object_object_add(stats, "dirtyrate.calc_period",
			       json_object_new_int64(get_i64(q, "calc-time")));
	json_object_object_add(stats, "dirtyrate.calc_mode", json_object_new_string("page-sampling"));
	if (calc == 2)
		json_object_object_add(stats, "dirtyrate.megabytes_per_second",
				       json_object_new_int64(get_i64(q, "dirty-rate")));
	json_object_put(q);
}

static int state_number(enum dom_state s)
{
	switch (s) {
	case DOM_RUNNING: return 1;
	case DOM_PAUSED: return 3;
	case DOM_SHUTDOWN: return 4;
	case DOM_CRASHED: return 6;
	case DOM_SHUTOFF: break;
	}
	return 5;
}

static bool group_wanted(json_object *groups, const char *name)
{
	if (!groups)
		return true;
	for (size_t i = 0; i < json_object_array_length(groups); i++)
		if (!strcmp(json_object_get_string(json_object_array_get_idx(groups, i)), name))
			return true;
	return false;
}

static json_object *dom_stats(struct daemon *d, struct dom *dom, json_object *groups)
{
	json_object *o = json_object_new_object(), *stats = json_object_new_object();
	bool active;

	pthread_mutex_lock(&d->lock);
	active = is_active(dom) && !dom->incoming;
	if (group_wanted(groups, "state")) {
		json_object_object_add(stats, "state.state",
				       json_object_new_int(state_number(dom->state)));
		json_object_object_add(stats, "state.reason", json_object_new_int(0));
	}
	pthread_mutex_unlock(&d->lock);
	if (active && group_wanted(groups, "dirtyrate"))
		stats_dirtyrate(d, dom, stats);
	json_object_object_add(o, "name", json_object_new_string(dom->name));
	json_object_object_add(o, "stats", stats);
	return o;
}

static bool groups_valid(json_object *groups, struct cmd_error *e)
{
	if (!groups)
		return true;
	if (!json_object_is_type(groups, json_type_array)) {
		cmd_fail(e, "GenericError", "'groups' must be an array");
		return false;
	}
	for (size_t i = 0; i < json_object_array_length(groups); i++) {
		const char *g = json_object_get_string(json_object_array_get_idx(groups, i));

		if (strcmp(g, "state") && strcmp(g, "dirtyrate")) {
			cmd_fail(e, "GenericError", "unsupported stats group '%s'", g);
			return false;
		}
	}
	return true;
}

static const struct arg_spec domstats_args[] = {
	{ "domains", ARG_ARRAY }, { "groups", ARG_ARRAY }, { NULL, 0 },
};

static json_object *cmd_domstats(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	json_object *groups = NULL, *doms = NULL, *ret;
	struct dom *list[256];
	size_t n = 0;

	json_object_object_get_ex(args, "groups", &groups);
	json_object_object_get_ex(args, "domains", &doms);
	if (!groups_valid(groups, e))
		return NULL;
	if (doms && !json_object_is_type(doms, json_type_array))
		return cmd_fail(e, "GenericError", "'domains' must be an array");
	pthread_mutex_lock(&d->lock);
	if (doms) {
		for (size_t i = 0; i < json_object_array_length(doms) && n < 256; i++) {
			const char *key = json_object_get_string(json_object_array_get_idx(doms, i));
			struct dom *dom = dom_lookup_locked(d, key);

			if (!dom) {
				cmd_fail(e, "NoDomain",
					 "Domain not found: no domain with matching name '%s'", key);
				break;
			}
			list[n++] = dom;
		}
	} else {
		for (struct dom *dom = d->doms; dom && n < 256; dom = dom->next) {
			dom_get_locked(dom);
			list[n++] = dom;
		}
	}
	pthread_mutex_unlock(&d->lock);
	ret = e->cls ? NULL : json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		if (ret)
			json_object_array_add(ret, dom_stats(d, list[i], groups));
		dom_put(d, list[i]);
	}
	return ret;
}

/* migrate-set/get maxdowntime and speed: the domain's settings, passed on
 * to a migration that runs now. */
static json_object *mig_setting(struct client *cl, json_object *args, struct cmd_error *e,
				const char *key, bool set)
{
	struct daemon *d = cl->d;
	json_object *ret = NULL, *a = NULL;
	bool downtime = !strcmp(key, "downtime-ms");
	struct dom *dom;
	bool running = false;
	uint64_t v = 0;
	char err[256];

	if (set && !arg_u64(args, key, downtime ? 1 : 0, downtime ? 2000000 : 8796093022207ull,
			    UINT64_MAX, &v, e))
		return NULL;
	if (set && v == UINT64_MAX)
		return cmd_fail(e, "GenericError", "missing argument '%s'", key);
	pthread_mutex_lock(&d->lock);
	dom = arg_domain_locked(d, args, e);
	if (!dom)
		goto out;
	if (set) {
		if (downtime)
			dom->downtime_ms = v;
		else
			dom->bandwidth_mib = v;
		running = dom->job_active && is_active(dom);
		if (is_active(dom))
			dom_save_run_locked(d, dom);
	}
	ret = json_object_new_object();
	if (!set)
		json_object_object_add(ret, key, json_object_new_uint64(downtime ? dom->downtime_ms :
									    dom->bandwidth_mib));
	pthread_mutex_unlock(&d->lock);
	if (running) {
		a = json_object_new_object();
		if (downtime)
			json_object_object_add(a, "downtime-limit", json_object_new_uint64(v));
		else
			json_object_object_add(a, "max-bandwidth", json_object_new_uint64(v << 20));
		if (dom_vmm_call(d, dom, "migrate-set-parameters", a, NULL, err, sizeof(err))) {
			json_object_put(ret);
			ret = cmd_fail(e, "GenericError", "%s", err);
		}
	}
	pthread_mutex_lock(&d->lock);
	dom_put_locked(d, dom);
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static const struct arg_spec downtime_args[] = {
	{ "domain", ARG_STRING }, { "downtime-ms", ARG_UINT }, { NULL, 0 },
};
static const struct arg_spec speed_args[] = {
	{ "domain", ARG_STRING }, { "bandwidth-mib", ARG_UINT }, { NULL, 0 },
};

static json_object *cmd_setmaxdowntime(struct client *cl, json_object *args, struct cmd_error *e)
{
	return mig_setting(cl, args, e, "downtime-ms", true);
}

static json_object *cmd_getmaxdowntime(struct client *cl, json_object *args, struct cmd_error *e)
{
	return mig_setting(cl, args, e, "downtime-ms", false);
}

static json_object *cmd_setspeed(struct client *cl, json_object *args, struct cmd_error *e)
{
	return mig_setting(cl, args, e, "bandwidth-mib", true);
}

static json_object *cmd_getspeed(struct client *cl, json_object *args, struct cmd_error *e)
{
	return mig_setting(cl, args, e, "bandwidth-mib", false);
}

const struct cmd info_cmds[] = {
	{ "hello", cmd_hello, NULL, hello_args },
	{ "list", cmd_list, NULL, list_args },
	{ "dominfo", NULL, cmd_dominfo, args_domain_only },
	{ "domstate", NULL, cmd_domstate, args_domain_only },
	{ "dumpxml", NULL, cmd_dumpxml, dumpxml_args },
	{ "domstats", cmd_domstats, NULL, domstats_args },
	{ "domdirtyrate-calc", cmd_dirtyrate_calc, NULL, dirtyrate_calc_args },
	{ "migrate-setmaxdowntime", cmd_setmaxdowntime, NULL, downtime_args },
	{ "migrate-getmaxdowntime", cmd_getmaxdowntime, NULL, downtime_args },
	{ "migrate-setspeed", cmd_setspeed, NULL, speed_args },
	{ "migrate-getspeed", cmd_getspeed, NULL, speed_args },
	{ NULL, NULL, NULL, NULL },
};
