/* The domain table: lookups, references, definitions on disk, run records. */
#include "daemon/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/monitor.h"

const char *dom_state_name(enum dom_state s)
{
	switch (s) {
	case DOM_RUNNING: return "running";
	case DOM_PAUSED: return "paused";
	case DOM_SHUTDOWN: return "in shutdown";
	case DOM_CRASHED: return "crashed";
	case DOM_SHUTOFF: break;
	}
	return "shut off";
}

struct dom *dom_lookup_name_locked(struct daemon *d, const char *name)
{
	for (struct dom *dom = d->doms; dom; dom = dom->next) {
		if (!strcmp(dom->name, name)) {
			dom->refs++;
			return dom;
		}
	}
	return NULL;
}

struct dom *dom_lookup_uuid_locked(struct daemon *d, const uint8_t uuid[16])
{
	for (struct dom *dom = d->doms; dom; dom = dom->next) {
		if (!memcmp(dom->uuid, uuid, 16)) {
			dom->refs++;
			return dom;
		}
	}
	return NULL;
}

struct dom *dom_lookup_locked(struct daemon *d, const char *key)
{
	struct dom *dom = dom_lookup_name_locked(d, key);
	uint8_t uuid[16];
	uint64_t id;

	if (dom)
		return dom;
	if (domain_uuid_parse(key, uuid))
		return dom_lookup_uuid_locked(d, uuid);
	if (!parse_u64(key, &id) && id > 0 && id < 1u << 30) {
		for (dom = d->doms; dom; dom = dom->next) {
			if (dom->id == (int)id) {
				dom->refs++;
				return dom;
			}
		}
	}
	return NULL;
}

void dom_get_locked(struct dom *dom)
{
	dom->refs++;
}

static void dom_free(struct dom *dom)
{
	if (dom->def)
		domain_def_free(dom->def);
	if (dom->live)
		domain_def_free(dom->live);
	free(dom->def);
	free(dom->live);
	if (dom->job.info)
		json_object_put(dom->job.info);
	if (dom->last_job.info)
		json_object_put(dom->last_job.info);
	free(dom->mig.xml);
	vmproc_release(&dom->proc);
	pthread_cond_destroy(&dom->changed);
	free(dom);
}

void dom_put_locked(struct daemon *d, struct dom *dom)
{
	(void)d;
	if (--dom->refs == 0) {
		if (dom->listed)
			log_error("internal: a listed domain lost its last reference");
		else
			dom_free(dom);
	}
}

void dom_put(struct daemon *d, struct dom *dom)
{
	pthread_mutex_lock(&d->lock);
	dom_put_locked(d, dom);
	pthread_mutex_unlock(&d->lock);
}

struct dom *dom_new_locked(struct daemon *d, struct domain_def *def)
{
	struct dom *dom = calloc(1, sizeof(*dom));

	if (!dom)
		return NULL;
	pthread_cond_init(&dom->changed, NULL);
	snprintf(dom->name, sizeof(dom->name), "%s", def->name);
	memcpy(dom->uuid, def->uuid, 16);
	dom->def = def;
	dom->id = -1;
	dom->state = DOM_SHUTOFF;
	dom->reason = "unknown";
	dom->proc.pidfd = -1;
	dom->downtime_ms = 10; /* ferry-vmm's default (DESIGN.md: RHEL's 10 ms) */
	dom->job.percent = -1;
	dom->refs = 1; /* the table's */
	dom->listed = true;
	dom->next = d->doms;
	d->doms = dom;
	return dom;
}

void dom_forget_locked(struct daemon *d, struct dom *dom)
{
	struct dom **pp;

	for (pp = &d->doms; *pp; pp = &(*pp)->next) {
		if (*pp == dom) {
			*pp = dom->next;
			dom->listed = false;
			dom->next = NULL;
			dom_put_locked(d, dom);
			return;
		}
	}
}

int dom_save_def_locked(struct daemon *d, struct dom *dom)
{
	char path[STORE_PATH_MAX];
	struct buf out = { 0 };
	int ret;

	ret = domain_format(dom->def, false, &out);
	if (!ret) {
		store_path(&d->store, "domains", dom->name, ".xml", path);
		ret = store_write_atomic(path, out.data, out.len);
	}
	buf_free(&out);
	return ret;
}

int dom_remove_def_locked(struct daemon *d, struct dom *dom)
{
	char path[STORE_PATH_MAX];

	store_path(&d->store, "domains", dom->name, ".xml", path);
	return store_remove(path);
}

void dom_wait_locked(struct daemon *d, struct dom *dom, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&dom->changed, &d->lock, &ts);
}

/* ---- run records ---- */

static json_object *mig_req_json(const struct mig_req *m)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "desturi", json_object_new_string(m->desturi));
	json_object_object_add(o, "persistent", json_object_new_boolean(m->persistent));
	json_object_object_add(o, "undefinesource", json_object_new_boolean(m->undefinesource));
	json_object_object_add(o, "live", json_object_new_boolean(m->live));
	return o;
}

void dom_save_run_locked(struct daemon *d, struct dom *dom)
{
	char path[STORE_PATH_MAX];
	json_object *o = json_object_new_object();
	const char *text;
	struct buf out = { 0 };

	json_object_object_add(o, "id", json_object_new_int(dom->id));
	json_object_object_add(o, "pid", json_object_new_int(dom->proc.pid));
	json_object_object_add(o, "start", json_object_new_uint64(dom->proc.start));
	json_object_object_add(o, "incoming", json_object_new_boolean(dom->incoming));
	json_object_object_add(o, "persist-on-arrival",
			       json_object_new_boolean(dom->persist_on_arrival));
	json_object_object_add(o, "crashed", json_object_new_boolean(dom->state == DOM_CRASHED));
	json_object_object_add(o, "downtime-ms", json_object_new_uint64(dom->downtime_ms));
	json_object_object_add(o, "bandwidth-mib", json_object_new_uint64(dom->bandwidth_mib));
	if (dom->job_active)
		json_object_object_add(o, "migration", mig_req_json(&dom->mig));
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	store_path(&d->store, "run", dom->name, ".json", path);
	if (store_write_atomic(path, text, strlen(text)))
		log_warn("%s: cannot write its run record", dom->name);
	json_object_put(o);
	if (dom->live && !domain_format(dom->live, false, &out)) {
		store_path(&d->store, "run", dom->name, ".xml", path);
		if (store_write_atomic(path, out.data, out.len))
			log_warn("%s: cannot write its live definition", dom->name);
	}
	buf_free(&out);
}

/* Removes what a VM leaves in run/ (its record, sockets, exit file). */
void dom_clear_run_locked(struct daemon *d, struct dom *dom)
{
	static const char *const exts[] = { ".json", ".xml", ".ctl", ".console", ".exit" };
	char path[STORE_PATH_MAX];

	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		store_path(&d->store, "run", dom->name, exts[i], path);
		if (!strcmp(exts[i], ".ctl") || !strcmp(exts[i], ".console"))
			unlink_stale_socket(path);
		else
			store_remove(path);
	}
}

/* ---- start-up ---- */

static struct domain_def *read_def(const char *path)
{
	struct domain_def *def = calloc(1, sizeof(*def));
	char err[512];
	uint8_t *data;
	size_t size;

	if (!def)
		return NULL;
	if (file_read_all(path, DOMAIN_XML_MAX, &data, &size)) {
		free(def);
		return NULL;
	}
	if (domain_parse((const char *)data, size, def, err, sizeof(err))) {
		log_warn("%s: %s; ignored", path, err);
		free(def);
		def = NULL;
	}
	free(data);
	return def;
}

static void load_def(const char *name, void *opaque)
{
	struct daemon *d = opaque;
	char path[STORE_PATH_MAX];
	struct domain_def *def;

	store_path(&d->store, "domains", name, ".xml", path);
	def = read_def(path);
	if (!def)
		return;
	if (strcmp(def->name, name)) {
		log_warn("%s holds domain '%s'; ignored", path, def->name);
		domain_def_free(def);
		free(def);
		return;
	}
	dom_new_locked(d, def);
}

static uint64_t json_u64(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static bool rec_bool(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

static void load_mig_req(struct mig_req *m, json_object *o)
{
	json_object *v;

	if (json_object_object_get_ex(o, "desturi", &v))
		snprintf(m->desturi, sizeof(m->desturi), "%s", json_object_get_string(v));
	m->persistent = rec_bool(o, "persistent");
	m->undefinesource = rec_bool(o, "undefinesource");
	m->live = rec_bool(o, "live");
}

/* Takes back one VM from its run record. */
static void load_run(const char *name, void *opaque)
{
	struct daemon *d = opaque;
	char path[STORE_PATH_MAX];
	struct dom *dom;
	json_object *rec, *mig;
	struct domain_def *live;

	store_path(&d->store, "run", name, ".json", path);
	rec = json_object_from_file(path);
	if (!rec || !json_object_is_type(rec, json_type_object)) {
		log_warn("%s: unreadable run record; ignored", path);
		json_object_put(rec);
		return;
	}
	store_path(&d->store, "run", name, ".xml", path);
	live = read_def(path);
	dom = dom_lookup_name_locked(d, name);
	if (!dom && !live) {
		log_warn("%s: no definition for the VM of run record '%s'; ignored", path, name);
		json_object_put(rec);
		return;
	}
	if (!dom) {
		dom = dom_new_locked(d, live);
		dom->def = NULL; /* transient: live becomes its live definition below */
		dom->refs++;
	} else if (!live) {
		live = domain_def_copy(dom->def);
	}
	dom->live = live;
	dom->id = (int)json_u64(rec, "id");
	if (dom->id >= d->next_id)
		d->next_id = dom->id + 1;
	dom->incoming = rec_bool(rec, "incoming");
	dom->persist_on_arrival = rec_bool(rec, "persist-on-arrival");
	dom->downtime_ms = json_u64(rec, "downtime-ms") ?: 10;
	dom->bandwidth_mib = json_u64(rec, "bandwidth-mib");
	if (rec_bool(rec, "crashed")) {
		dom->state = DOM_CRASHED;
		dom->reason = "crashed";
		dom->id = -1;
	} else if (!json_u64(rec, "pid")) {
		log_warn("%s: a run record without a process; removed", name);
		dom_clear_run_locked(d, dom);
	} else if (vmproc_adopt(&dom->proc, (pid_t)json_u64(rec, "pid"), json_u64(rec, "start"))) {
		log_info("%s: its VM process ended while ferryd was away", name);
		dom->monitored = !dom->incoming; /* it ran: an unexplained end is a crash */
		monitor_ended_locked(d, dom, NULL);
	} else {
		log_info("%s: VM process %d taken back", name, (int)dom->proc.pid);
		dom->state = DOM_PAUSED;
		dom->reason = dom->incoming ? "migrating" : "unknown";
		if (json_object_object_get_ex(rec, "migration", &mig)) {
			load_mig_req(&dom->mig, mig);
			mig_out_recover_locked(d, dom);
		}
		monitor_start_locked(d, dom);
		dom->monitored = !dom->incoming; /* it ran before: an unexplained end is a crash */
	}
	dom_put_locked(d, dom);
	json_object_put(rec);
}

void doms_load(struct daemon *d)
{
	d->next_id = 1;
	store_each(&d->store, "domains", ".xml", load_def, d);
	store_each(&d->store, "run", ".json", load_run, d);
}
