/* The migration commands: migrate (starts the job of migrate_job.c and
 * waits for its end, passing progress on), domjobinfo, domjobabort. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "daemon/commands.h"

static bool read_request(json_object *args, struct mig_req *m, struct cmd_error *e)
{
	const char *s;
	uint64_t v;

	memset(m, 0, sizeof(*m));
	s = arg_str(args, "desturi", true, e);
	if (!s)
		return false;
	snprintf(m->desturi, sizeof(m->desturi), "%s", s);
	s = arg_str(args, "migrateuri", false, e);
	if (e->cls)
		return false;
	if (s) {
		/* tcp://HOST[:PORT], tcp:HOST[:PORT] or HOST: the host the
		 * destination's VM is reached at. */
		const char *h = !strncmp(s, "tcp://", 6) ? s + 6 : !strncmp(s, "tcp:", 4) ? s + 4 : s;
		size_t n = strcspn(h, h[0] == '[' ? "]" : ":/");

		if (h[0] == '[')
			h++, n--;
		snprintf(m->migrateuri, sizeof(m->migrateuri), "%.*s", (int)n, h);
	}
	m->live = arg_bool(args, "live");
	m->offline = arg_bool(args, "offline");
	m->suspend = arg_bool(args, "suspend");
	m->persistent = arg_bool(args, "persistent");
	m->undefinesource = arg_bool(args, "undefinesource");
	m->auto_converge = arg_bool(args, "auto-converge");
	m->timeout_suspend = arg_bool(args, "timeout-suspend");
	if (!arg_u64(args, "bandwidth-mib", 0, 8796093022207ull, 0, &m->bandwidth_mib, e) ||
	    !arg_u64(args, "timeout", 0, 86400, 0, &v, e))
		return false;
	m->timeout_s = (unsigned)v;
	if (m->live && m->offline)
		return !cmd_fail(e, "GenericError", "--live and --offline are mutually exclusive") && 0;
	if (m->offline && !m->persistent)
		return !cmd_fail(e, "OperationInvalid", "offline migration requires --persistent") &&
		       0;
	if (m->timeout_s && !m->live)
		return !cmd_fail(e, "GenericError", "migrate: Unexpected --timeout without --live") &&
		       0;
	if (m->timeout_suspend && !m->timeout_s)
		return !cmd_fail(e, "GenericError", "--timeout-suspend requires --timeout") && 0;
	s = arg_str(args, "xml", false, e);
	if (e->cls)
		return false;
	if (s && !(m->xml = strdup(s)))
		return !cmd_fail(e, "GenericError", "out of memory") && 0;
	return true;
}

/* --xml must describe the same domain; without a <uuid> it gets the
 * domain's (*xml is then rewritten). */
static bool xml_matches(const struct dom *dom, char **xml, struct cmd_error *e)
{
	struct domain_def def;
	struct buf out = { 0 };
	char err[512];
	bool ok;

	if (domain_parse(*xml, strlen(*xml), &def, err, sizeof(err))) {
		cmd_fail(e, "GenericError", "--xml: %s", err);
		return false;
	}
	if (def.uuid_generated)
		memcpy(def.uuid, dom->uuid, 16);
	ok = !strcmp(def.name, dom->name) && !memcmp(def.uuid, dom->uuid, 16);
	if (!ok) {
		cmd_fail(e, "OperationInvalid", "--xml: target domain name or uuid does not match "
			 "source '%s'", dom->name);
	} else if (def.uuid_generated && !domain_format(&def, true, &out)) {
		free(*xml);
		*xml = strdup((char *)out.data);
		ok = *xml != NULL;
	}
	buf_free(&out);
	domain_def_free(&def);
	return ok;
}

static json_object *job_result(struct dom *dom, struct cmd_error *e)
{
	json_object *ret;
	const struct job *jb = &dom->last_job;

	if (jb->type != JOB_COMPLETED)
		return cmd_fail(e, jb->error_class[0] ? jb->error_class : "MigrationFailed", "%s",
				jb->error);
	ret = json_object_new_object();
	json_object_object_add(ret, "downtime-ms",
			       json_object_new_int64(jb->info ? json_path_i64(jb->info, "downtime") : 0));
	json_object_object_add(ret, "total-time-ms",
			       json_object_new_int64((int64_t)(jb->end_ns - jb->start_ns) / 1000000));
	json_object_object_add(ret, "destination", json_object_new_string(dom->mig.desturi));
	return ret;
}

static bool can_migrate_locked(struct dom *dom, struct mig_req *m, struct cmd_error *e)
{
	bool active = dom->proc.pid && !dom->incoming;

	if (dom->busy || dom->job_active)
		cmd_fail(e, "OperationInvalid", "domain '%s' has another operation in progress",
			 dom->name);
	else if (m->offline && active)
		cmd_fail(e, "OperationInvalid", "offline migration moves only the definition of a "
			 "shut-off domain; '%s' is running", dom->name);
	else if (m->offline && !dom->def)
		cmd_fail(e, "OperationInvalid", "domain '%s' is not persistent", dom->name);
	else if (!m->offline && !active)
		cmd_fail(e, "OperationInvalid", "domain is not running");
	else if (m->xml)
		xml_matches(dom, &m->xml, e);
	return !e->cls;
}

static const struct arg_spec migrate_args[] = {
	{ "domain", ARG_STRING }, { "desturi", ARG_STRING }, { "migrateuri", ARG_STRING },
	{ "live", ARG_BOOL }, { "offline", ARG_BOOL }, { "suspend", ARG_BOOL },
	{ "persistent", ARG_BOOL }, { "undefinesource", ARG_BOOL }, { "xml", ARG_STRING },
	{ "bandwidth-mib", ARG_UINT }, { "timeout", ARG_UINT },
	{ "timeout-suspend", ARG_BOOL }, { "auto-converge", ARG_BOOL },
	{ "progress", ARG_BOOL }, { NULL, 0 },
};

static json_object *cmd_migrate(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	bool progress = arg_bool(args, "progress"), client_gone = false;
	int last_percent = -1;
	json_object *ret = NULL;
	struct mig_req m;
	struct dom *dom;

	if (!read_request(args, &m, e)) {
		free(m.xml);
		return NULL;
	}
	pthread_mutex_lock(&d->lock);
	dom = arg_domain_locked(d, args, e);
	if (!dom || !can_migrate_locked(dom, &m, e)) {
		free(m.xml);
		goto out;
	}
	dom->mig = m;
	if (mig_job_spawn_locked(d, dom, false)) {
		cmd_fail(e, "GenericError", "cannot start the migration");
		free(dom->mig.xml);
		dom->mig.xml = NULL;
		goto out;
	}
	if (dom->proc.pid)
		dom_save_run_locked(d, dom); /* a restarted ferryd finishes the job */
	/* Wait for the end, passing figures on. */
	while (dom->job_active) {
		dom_wait_locked(d, dom, MIG_POLL_MS);
		if (progress && !client_gone && dom->job.percent >= 0 &&
		    dom->job.percent != last_percent) {
			json_object *data = json_object_new_object();

			last_percent = dom->job.percent;
			json_object_object_add(data, "percent", json_object_new_int(last_percent));
			json_object_object_add(data, "remaining", json_object_new_int64(
				json_path_i64(dom->job.info, "ram.remaining")));
			json_object_object_add(data, "total", json_object_new_int64(
				json_path_i64(dom->job.info, "ram.total")));
			pthread_mutex_unlock(&d->lock);
			client_gone = !client_event(cl, "MIGRATION_PROGRESS", data);
			pthread_mutex_lock(&d->lock);
		}
	}
	ret = job_result(dom, e);
out:
	if (dom)
		dom_put_locked(d, dom);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static void add_i64(json_object *o, const char *key, int64_t v)
{
	json_object_object_add(o, key, json_object_new_int64(v));
}

static json_object *job_json(const struct job *jb, bool completed)
{
	static const char *const types[] = { "none", "unbounded", "completed", "failed",
					      "cancelled" };
	json_object *o = json_object_new_object(), *i = jb->info;
	uint64_t end = jb->end_ns ? jb->end_ns : time_now_ns();

	json_object_object_add(o, "type", json_object_new_string(types[jb->type]));
	if (jb->type == JOB_NONE)
		return o;
	json_object_object_add(o, "operation", json_object_new_string(
		jb->op == JOB_OP_IN ? "incoming-migration" : "outgoing-migration"));
	add_i64(o, "time-elapsed-ms", (int64_t)(end - jb->start_ns) / 1000000);
	add_i64(o, "data-processed", json_path_i64(i, "ram.transferred"));
	add_i64(o, "data-remaining", completed ? 0 : json_path_i64(i, "ram.remaining"));
	add_i64(o, "data-total", json_path_i64(i, "ram.total"));
	add_i64(o, "memory-processed", json_path_i64(i, "ram.transferred"));
	add_i64(o, "memory-remaining", completed ? 0 : json_path_i64(i, "ram.remaining"));
	add_i64(o, "memory-total", json_path_i64(i, "ram.total"));
	{
		int64_t bw = json_path_i64(i, "ferry.bandwidth");
		int64_t ms = (int64_t)(end - jb->start_ns) / 1000000 - json_path_i64(i, "setup-time");

		/* ferry-vmm measures per finished pass; before the first one ends,
		 * the average so far */
		if (!bw && ms > 0)
			bw = json_path_i64(i, "ram.transferred") * 1000 / ms;
		add_i64(o, "memory-bandwidth", bw);
	}
	add_i64(o, "dirty-rate", json_path_i64(i, "ram.dirty-pages-rate"));
	add_i64(o, "page-size", json_path_i64(i, "ram.page-size") ?: 4096);
	add_i64(o, "iteration", json_path_i64(i, "ram.dirty-sync-count"));
	add_i64(o, "postcopy-requests", 0);
	add_i64(o, "constant-pages", json_path_i64(i, "ram.duplicate"));
	add_i64(o, "normal-pages", json_path_i64(i, "ram.normal"));
	add_i64(o, "normal-data", json_path_i64(i, "ram.normal-bytes"));
	add_i64(o, "expected-downtime-ms", json_path_i64(i, "expected-downtime"));
	if (jb->type == JOB_COMPLETED)
		add_i64(o, "downtime-ms", json_path_i64(i, "downtime"));
	add_i64(o, "setup-time-ms", json_path_i64(i, "setup-time"));
	if (jb->error[0])
		json_object_object_add(o, "error", json_object_new_string(jb->error));
	return o;
}

static const struct arg_spec domjobinfo_args[] = {
	{ "domain", ARG_STRING }, { "completed", ARG_BOOL }, { NULL, 0 },
};

static json_object *cmd_domjobinfo(struct client *cl, struct dom *dom, json_object *args,
				   struct cmd_error *e)
{
	(void)cl, (void)e;
	if (arg_bool(args, "completed"))
		return job_json(&dom->last_job, true);
	if (dom->incoming)
		return job_json(&(struct job){ .type = JOB_UNBOUNDED, .op = JOB_OP_IN,
					       .start_ns = dom->job.start_ns }, false);
	return job_json(&dom->job, false);
}

static json_object *cmd_domjobabort(struct client *cl, struct dom *dom, json_object *args,
				    struct cmd_error *e)
{
	(void)cl, (void)args;
	if (!dom->job_active)
		return cmd_fail(e, "OperationInvalid", "no job is active on the domain");
	dom->job.abort = true;
	return json_object_new_object();
}

const struct cmd mig_out_cmds[] = {
	{ "migrate", cmd_migrate, NULL, migrate_args },
	{ "domjobinfo", NULL, cmd_domjobinfo, domjobinfo_args },
	{ "domjobabort", NULL, cmd_domjobabort, args_domain_only },
	{ NULL, NULL, NULL, NULL },
};
