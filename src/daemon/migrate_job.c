/* An outgoing migration, run by a thread of its own (libvirt's peer-to-peer
 * mode): it connects to the destination's ferryd, has it prepare an
 * incoming ferry-vmm, tells this host's ferry-vmm to migrate there, follows
 * the figures for domjobinfo and progress, and settles both sides when it
 * ends. The commands that start and watch it are in migrate_out.c.
 *
 * Who owns the guest is decided by the two ferry-vmm processes' hand-over
 * (READY, GO, STARTED: docs/migration-protocol.md), never by ferryd: a ferryd
 * that dies mid-migration loses nothing, and when it comes back it reads
 * the outcome from its ferry-vmm (mig_out_recover_locked) and settles. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rpc.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/monitor.h"

#define PEER_TIMEOUT_MS 60000

struct job_ctx {
	struct daemon *d;
	struct dom *dom;
	bool recover;            /* after a restart: the migration may already run */
	struct rpc_conn peer;
	bool peer_up;
	char err[1024];
	char err_class[32];
};

int64_t json_path_i64(json_object *o, const char *path)
{
	json_object *v = o;
	char key[64];

	while (v && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(v, key, &v))
			return 0;
		path += n + (dot ? 1 : 0);
	}
	return v ? json_object_get_int64(v) : 0;
}

static const char *jstr(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static int peer_connect(struct job_ctx *j)
{
	struct rpc_uri u;
	int r;

	if (j->peer_up)
		return 0;
	r = rpc_uri_parse(j->dom->mig.desturi, &u, j->err, sizeof(j->err));
	if (r)
		return r;
	r = rpc_connect(&j->peer, &u, 10000, j->err, sizeof(j->err));
	if (r)
		return r;
	j->peer.timeout_ms = PEER_TIMEOUT_MS;
	j->peer_up = true;
	return 0;
}

static int peer_call(struct job_ctx *j, const char *cmd, json_object *args, json_object **ret)
{
	int r = peer_connect(j);

	if (r) {
		json_object_put(args);
		return r;
	}
	r = rpc_call(&j->peer, cmd, args, ret, NULL, NULL, j->err, sizeof(j->err), j->err_class);
	if (r < 0) {
		rpc_close(&j->peer);
		j->peer_up = false;
	}
	return r;
}

/* The definition the destination gets (--xml, or the live one). */
static char *dest_xml(struct job_ctx *j)
{
	struct buf out = { 0 };
	char *xml = NULL;

	pthread_mutex_lock(&j->d->lock);
	if (j->dom->mig.xml) {
		xml = strdup(j->dom->mig.xml);
	} else if (!domain_format(j->dom->live ? j->dom->live : j->dom->def, true, &out)) {
		xml = strdup((char *)out.data);
	}
	pthread_mutex_unlock(&j->d->lock);
	buf_free(&out);
	return xml;
}

static void job_set_error(struct job_ctx *j, const char *cls, const char *fmt, const char *detail)
{
	snprintf(j->err_class, sizeof(j->err_class), "%s", cls);
	if (detail != j->err) {
		snprintf(j->err, sizeof(j->err), fmt, detail);
	} else {
		char tmp[sizeof(j->err)];

		snprintf(tmp, sizeof(tmp), "%s", detail);
		snprintf(j->err, sizeof(j->err), fmt, tmp);
	}
}

static int prepare(struct job_ctx *j, bool offline, char *uri, size_t urilen, char *token,
		   size_t toklen)
{
	struct mig_req *m = &j->dom->mig;
	json_object *a = json_object_new_object(), *ret = NULL;
	char *xml = dest_xml(j);
	int r;

	if (!xml) {
		json_object_put(a);
		job_set_error(j, "GenericError", "%s", "cannot format the definition");
		return -ENOMEM;
	}
	json_object_object_add(a, "xml", json_object_new_string(xml));
	free(xml);
	json_object_object_add(a, "offline", json_object_new_boolean(offline));
	json_object_object_add(a, "persistent", json_object_new_boolean(m->persistent));
	json_object_object_add(a, "suspend", json_object_new_boolean(m->suspend));
	if (m->migrateuri[0]) {
		json_object_object_add(a, "listen-host", json_object_new_string(m->migrateuri));
	} else {
		struct rpc_uri u;
		char err[256];

		/* Over ssh the destination cannot tell how it is reached: the
		 * stream goes to the host the URI names. */
		if (!rpc_uri_parse(m->desturi, &u, err, sizeof(err)) && u.transport == RPC_SSH)
			json_object_object_add(a, "listen-host", json_object_new_string(u.host));
	}
	r = peer_call(j, "migrate-prepare", a, &ret);
	if (r < 0) {
		job_set_error(j, "MigrationFailed", "cannot reach the destination: %s", j->err);
		return r;
	}
	if (r > 0) {
		if (strcmp(j->err_class, "MigrationRefused"))
			snprintf(j->err_class, sizeof(j->err_class), "MigrationRefused");
		return -EPERM;
	}
	if (!offline) {
		snprintf(uri, urilen, "%s", jstr(ret, "uri"));
		snprintf(token, toklen, "%s", jstr(ret, "token"));
	}
	json_object_put(ret);
	return 0;
}

/* Hands the domain's migration settings to its ferry-vmm. */
static int set_parameters(struct job_ctx *j)
{
	struct mig_req *m = &j->dom->mig;
	json_object *a = json_object_new_object();
	uint64_t bw;

	pthread_mutex_lock(&j->d->lock);
	bw = m->bandwidth_mib ? m->bandwidth_mib : j->dom->bandwidth_mib;
	json_object_object_add(a, "downtime-limit", json_object_new_uint64(j->dom->downtime_ms));
	pthread_mutex_unlock(&j->d->lock);
	json_object_object_add(a, "max-bandwidth", json_object_new_uint64(bw << 20));
	json_object_object_add(a, "auto-converge", json_object_new_boolean(m->auto_converge));
	json_object_object_add(a, "convergence-timeout", json_object_new_uint64(m->timeout_s));
	json_object_object_add(a, "convergence-timeout-action", json_object_new_string("suspend"));
	return dom_vmm_call(j->d, j->dom, "migrate-set-parameters", a, NULL, j->err, sizeof(j->err));
}

/* How far the migration is: sent / (sent + still to send). RAM the guest
 * never touched is skipped, not sent, so the guest's size would make a
 * sparse guest look done at once. -1 when not known. */
static int percent_of(json_object *info)
{
	int64_t sent = json_path_i64(info, "ram.transferred"), remaining = json_path_i64(info, "ram.remaining");
	const char *status = jstr(info, "status");

	if (!strcmp(status, "completed"))
		return 100;
	if (strcmp(status, "active") && strcmp(status, "device"))
		return -1;
	if (sent + remaining <= 0)
		return 0;
	return (int)(sent * 100 / (sent + remaining));
}

/* Follows the VM's migration until it ends; returns its last status. */
static void follow(struct job_ctx *j, char *status, size_t len)
{
	bool cancel_sent = false;

	for (;;) {
		json_object *info = NULL;
		bool abort;
		int r = dom_vmm_call(j->d, j->dom, "query-migrate", NULL, &info, j->err,
				     sizeof(j->err));

		if (r) {
			snprintf(status, len, "lost");
			json_object_put(info);
			return;
		}
		snprintf(status, len, "%s", jstr(info, "status"));
		pthread_mutex_lock(&j->d->lock);
		json_object_put(j->dom->job.info);
		j->dom->job.info = info;
		/* setup: not yet; failed, cancelling...: the last figure stands */
		if (percent_of(info) >= 0)
			j->dom->job.percent = percent_of(info);
		abort = j->dom->job.abort;
		pthread_cond_broadcast(&j->dom->changed);
		pthread_mutex_unlock(&j->d->lock);
		if (!strcmp(status, "completed") || !strcmp(status, "failed") ||
		    !strcmp(status, "cancelled") || !status[0])
			return;
		if (abort && !cancel_sent) {
			char err[256];

			cancel_sent = true;
			if (dom_vmm_call(j->d, j->dom, "migrate_cancel", NULL, NULL, err, sizeof(err)))
				log_warn("%s: migrate_cancel: %s", j->dom->name, err);
		}
		usleep(MIG_POLL_MS * 1000);
	}
}

/* The guest now runs on the destination: this side ends its VM. */
static void finish_source(struct job_ctx *j)
{
	struct daemon *d = j->d;
	struct dom *dom = j->dom;

	pthread_mutex_lock(&d->lock);
	if (dom->mig.undefinesource && dom->def) {
		if (dom_remove_def_locked(d, dom))
			log_warn("%s: cannot remove its definition", dom->name);
		domain_def_free(dom->def);
		free(dom->def);
		dom->def = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	dom_stop_process(d, dom, END_MIGRATED, 5000);
	log_info("%s: migrated to %s", dom->name, dom->mig.desturi);
}

/* After a failure: the destination drops its incoming VM, unless the guest
 * runs there already. Returns true when it runs there. */
static bool settle_failure(struct job_ctx *j)
{
	json_object *a = json_object_new_object(), *ret = NULL, *st = NULL;
	char saved[sizeof(j->err)], saved_class[32];
	bool there = false;
	int r;

	snprintf(saved, sizeof(saved), "%s", j->err);
	snprintf(saved_class, sizeof(saved_class), "%s", j->err_class);
	json_object_object_add(a, "domain", json_object_new_string(j->dom->name));
	json_object_object_add(a, "ok", json_object_new_boolean(false));
	r = peer_call(j, "migrate-finish", a, &ret);
	if (!r && json_object_object_get_ex(ret, "state", &st))
		there = strcmp(json_object_get_string(st), "shut off") != 0;
	if (r)
		log_warn("%s: the destination could not be told the migration failed: %s",
			 j->dom->name, j->err);
	json_object_put(ret);
	snprintf(j->err, sizeof(j->err), "%s", saved);
	snprintf(j->err_class, sizeof(j->err_class), "%s", saved_class);
	if (there)
		return true;
	/* A hand-over that did not finish leaves the VM in postmigrate; the
	 * destination has just said it does not run the guest. */
	if (r == 0) {
		json_object *q = NULL, *force = json_object_new_object();
		char err[256];

		if (!dom_vmm_call(j->d, j->dom, "query-status", NULL, &q, err, sizeof(err)) &&
		    !strcmp(jstr(q, "status"), "postmigrate")) {
			json_object_object_add(force, "force", json_object_new_boolean(true));
			if (dom_vmm_call(j->d, j->dom, "cont", force, NULL, err, sizeof(err)))
				log_error("%s: cannot resume after the failed hand-over: %s",
					  j->dom->name, err);
			force = NULL;
		}
		json_object_put(force);
		json_object_put(q);
	}
	return false;
}

static enum job_type run_live(struct job_ctx *j)
{
	char uri[320] = "", token[64] = "", status[32] = "";
	json_object *a, *ret = NULL;
	int r;

	if (!j->recover) {
		if (prepare(j, false, uri, sizeof(uri), token, sizeof(token)))
			return JOB_FAILED;
		r = set_parameters(j);
		a = json_object_new_object();
		json_object_object_add(a, "uri", json_object_new_string(uri));
		json_object_object_add(a, "token", json_object_new_string(token));
		json_object_object_add(a, "live", json_object_new_boolean(j->dom->mig.live));
		r = r ?: dom_vmm_call(j->d, j->dom, "migrate", a, NULL, j->err, sizeof(j->err));
		if (r) {
			job_set_error(j, "MigrationFailed", "the VM cannot start the migration: %s",
				      j->err);
			settle_failure(j);
			return JOB_FAILED;
		}
	}
	follow(j, status, sizeof(status));
	if (!strcmp(status, "completed")) {
		a = json_object_new_object();
		json_object_object_add(a, "domain", json_object_new_string(j->dom->name));
		json_object_object_add(a, "ok", json_object_new_boolean(true));
		pthread_mutex_lock(&j->d->lock);
		if (j->dom->job.info)
			json_object_object_add(a, "job", json_object_get(j->dom->job.info));
		pthread_mutex_unlock(&j->d->lock);
		if (peer_call(j, "migrate-finish", a, &ret))
			log_warn("%s: migrated, but the destination's ferryd did not confirm: %s",
				 j->dom->name, j->err);
		json_object_put(ret);
		finish_source(j);
		return JOB_COMPLETED;
	}
	if (!strcmp(status, "lost")) {
		job_set_error(j, "MigrationFailed", "the source VM ended during the migration: %s",
			      j->err);
		settle_failure(j);
		return JOB_FAILED;
	}
	pthread_mutex_lock(&j->d->lock);
	snprintf(j->err, sizeof(j->err), "%s",
		 j->dom->job.info ? jstr(j->dom->job.info, "error-desc") : "");
	pthread_mutex_unlock(&j->d->lock);
	if (!status[0])
		snprintf(j->err, sizeof(j->err), "no migration was running");
	job_set_error(j, "MigrationFailed", !strcmp(status, "cancelled") ?
		      "operation aborted: migration out job: canceled by client%.0s" :
		      "migration failed: %s", j->err);
	if (settle_failure(j)) {
		log_warn("%s: the migration reported a failure, but the guest runs on the "
			 "destination: this side stops", j->dom->name);
		finish_source(j);
		return JOB_COMPLETED;
	}
	return !strcmp(status, "cancelled") ? JOB_CANCELLED : JOB_FAILED;
}

static enum job_type run_offline(struct job_ctx *j)
{
	char unused[8];

	if (prepare(j, true, unused, sizeof(unused), unused, sizeof(unused)))
		return JOB_FAILED;
	pthread_mutex_lock(&j->d->lock);
	if (j->dom->mig.undefinesource && j->dom->def) {
		dom_remove_def_locked(j->d, j->dom);
		domain_def_free(j->dom->def);
		free(j->dom->def);
		j->dom->def = NULL;
		if (!j->dom->proc.pid && j->dom->listed)
			dom_forget_locked(j->d, j->dom);
	}
	pthread_mutex_unlock(&j->d->lock);
	return JOB_COMPLETED;
}

static void *job_main(void *arg)
{
	struct job_ctx *j = arg;
	struct daemon *d = j->d;
	struct dom *dom = j->dom;
	enum job_type result = dom->mig.offline ? run_offline(j) : run_live(j);

	if (j->peer_up)
		rpc_close(&j->peer);
	pthread_mutex_lock(&d->lock);
	dom->job.type = result;
	dom->job.end_ns = time_now_ns();
	if (result == JOB_COMPLETED) {
		dom->job.percent = 100;
		dom->job.error[0] = 0;
	} else {
		snprintf(dom->job.error, sizeof(dom->job.error), "%s", j->err);
		snprintf(dom->job.error_class, sizeof(dom->job.error_class), "%s",
			 j->err_class[0] ? j->err_class : "MigrationFailed");
		log_warn("%s: %s", dom->name, j->err);
	}
	json_object_put(dom->last_job.info);
	dom->last_job = dom->job;
	dom->job = (struct job){ .percent = -1 };
	dom->job_active = false;
	dom->busy = false;
	free(dom->mig.xml);
	dom->mig.xml = NULL;
	if (dom->proc.pid)
		dom_save_run_locked(d, dom);
	pthread_cond_broadcast(&dom->changed);
	dom_put_locked(d, dom);
	pthread_mutex_unlock(&d->lock);
	free(j);
	return NULL;
}

int mig_job_spawn_locked(struct daemon *d, struct dom *dom, bool recover)
{
	struct job_ctx *j = calloc(1, sizeof(*j));
	pthread_attr_t attr;
	pthread_t t;
	int r;

	if (!j)
		return -ENOMEM;
	j->d = d;
	j->dom = dom;
	j->recover = recover;
	j->peer.rfd = j->peer.wfd = -1;
	dom->refs++;
	dom->job_active = true;
	dom->busy = true;
	dom->job = (struct job){ .type = JOB_UNBOUNDED, .op = JOB_OP_OUT, .percent = -1,
				 .start_ns = time_now_ns() };
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&t, &attr, job_main, j);
	pthread_attr_destroy(&attr);
	if (r) {
		dom->refs--;
		dom->job_active = false;
		dom->busy = false;
		free(j);
		return -r;
	}
	return 0;
}

void mig_out_recover_locked(struct daemon *d, struct dom *dom)
{
	log_info("%s: following the migration to %s that was running", dom->name,
		 dom->mig.desturi);
	if (mig_job_spawn_locked(d, dom, true))
		log_error("%s: cannot follow its migration", dom->name);
}
