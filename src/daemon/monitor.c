/* VM processes: starting one for a domain, talking to it, ending it, and the
 * monitor thread that follows it until it is gone. */
#include "daemon/monitor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rpc.h"
#include "common/util.h"

#define LAUNCH_TIMEOUT_MS 30000

struct monitor_ctx {
	struct daemon *d;
	struct dom *dom;
	const char *shutdown_reason; /* from the SHUTDOWN event, static strings */
};

static const char *shutdown_reason_of(const char *r)
{
	static const char *const known[] = { "guest-shutdown", "guest-reset", "host-qmp-quit",
					     "host-signal", "internal-error" };

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(r, known[i]))
			return known[i];
	return "other";
}

/* One event from the VM (lock not held). */
static void on_event(json_object *ev, void *opaque)
{
	struct monitor_ctx *m = opaque;
	json_object *name, *data, *reason;
	const char *n;

	if (!json_object_object_get_ex(ev, "event", &name))
		return;
	n = json_object_get_string(name);
	pthread_mutex_lock(&m->d->lock);
	if (!strcmp(n, "STOP") && m->dom->state == DOM_RUNNING) {
		m->dom->state = DOM_PAUSED;
		m->dom->reason = m->dom->job_active ? "migrating" : "user";
	} else if (!strcmp(n, "RESUME") && m->dom->state == DOM_PAUSED) {
		m->dom->state = DOM_RUNNING;
		m->dom->reason = "unpaused";
	} else if (!strcmp(n, "SHUTDOWN")) {
		m->shutdown_reason = "other";
		if (json_object_object_get_ex(ev, "data", &data) &&
		    json_object_object_get_ex(data, "reason", &reason))
			m->shutdown_reason = shutdown_reason_of(json_object_get_string(reason));
	}
	pthread_cond_broadcast(&m->dom->changed);
	pthread_mutex_unlock(&m->d->lock);
}

/* migrate --persistent: the definition the VM arrived with becomes the
 * domain's persistent one (replacing one defined here before). */
static void persist_live_locked(struct daemon *d, struct dom *dom)
{
	struct domain_def *copy = domain_def_copy(dom->live);

	if (!copy) {
		log_warn("%s: cannot keep its definition", dom->name);
		return;
	}
	if (dom->def) {
		domain_def_free(dom->def);
		free(dom->def);
	}
	dom->def = copy;
	if (dom_save_def_locked(d, dom))
		log_warn("%s: cannot store its definition", dom->name);
}

/* The VM answered for the first time: its state, and for an incoming VM the
 * arrival (GO was received; the guest is ours). */
static void on_connected(struct monitor_ctx *m, const char *status)
{
	struct daemon *d = m->d;
	struct dom *dom = m->dom;

	pthread_mutex_lock(&d->lock);
	if (!strcmp(status, "running")) {
		dom->state = DOM_RUNNING;
		if (!strcmp(dom->reason, "unknown") || dom->incoming)
			dom->reason = dom->incoming ? "migrated" : "booted";
	} else {
		dom->state = DOM_PAUSED;
		if (dom->incoming)
			dom->reason = "migrated";
		else if (!strcmp(status, "postmigrate"))
			dom->reason = "migrated";
	}
	if (dom->incoming) {
		dom->incoming = false;
		if (dom->persist_on_arrival)
			persist_live_locked(d, dom);
		dom->persist_on_arrival = false;
		log_info("%s: migrated in, %s", dom->name, status);
	}
	dom->monitored = true;
	dom_save_run_locked(d, dom);
	pthread_cond_broadcast(&dom->changed);
	pthread_mutex_unlock(&d->lock);
}

static void ctl_path(struct daemon *d, struct dom *dom, char *out)
{
	store_path(&d->store, "run", dom->name, ".ctl", out);
}

/* Connects to the VM's control socket; 0 with status filled, or -errno. */
static int monitor_connect(struct monitor_ctx *m, struct rpc_conn *c, char *status, size_t len)
{
	char path[STORE_PATH_MAX], err[256];
	json_object *ret = NULL, *st;
	int r;

	ctl_path(m->d, m->dom, path);
	if (access(path, F_OK))
		return -ENOENT;
	r = rpc_connect_unix(c, path, 2000, err, sizeof(err));
	if (r)
		return r;
	r = rpc_call(c, "query-status", NULL, &ret, on_event, m, err, sizeof(err), NULL);
	if (r || !json_object_object_get_ex(ret, "status", &st)) {
		json_object_put(ret);
		rpc_close(c);
		return r < 0 ? r : -EPROTO;
	}
	snprintf(status, len, "%s", json_object_get_string(st));
	json_object_put(ret);
	c->timeout_ms = 250;
	return 0;
}

static void *monitor_main(void *arg)
{
	struct monitor_ctx *m = arg;
	struct daemon *d = m->d;
	struct dom *dom = m->dom;
	struct rpc_conn c = { .rfd = -1, .wfd = -1 };
	bool connected = false;
	struct vmproc proc;

	pthread_mutex_lock(&d->lock);
	proc = dom->proc; /* pid and pidfd stay put until the monitor ends */
	pthread_mutex_unlock(&d->lock);
	for (;;) {
		json_object *ev = NULL;
		char status[32];
		int r;

		if (!connected) {
			if (!monitor_connect(m, &c, status, sizeof(status))) {
				connected = true;
				on_connected(m, status);
				continue;
			}
			if (vmproc_wait(&proc, 50))
				break;
			continue;
		}
		r = rpc_recv(&c, &ev);
		if (r == -ETIMEDOUT) {
			if (vmproc_wait(&proc, 0))
				break;
			continue;
		}
		if (r) {
			/* The VM closed its end: it is going. */
			rpc_close(&c);
			connected = false;
			if (vmproc_wait(&proc, 5000))
				break;
			continue;
		}
		if (json_object_object_get_ex(ev, "event", NULL))
			on_event(ev, m);
		json_object_put(ev);
	}
	if (connected)
		rpc_close(&c);
	pthread_mutex_lock(&d->lock);
	monitor_ended_locked(d, dom, m->shutdown_reason);
	dom_put_locked(d, dom);
	pthread_mutex_unlock(&d->lock);
	free(m);
	return NULL;
}

void monitor_start_locked(struct daemon *d, struct dom *dom)
{
	struct monitor_ctx *m = calloc(1, sizeof(*m));
	pthread_attr_t attr;
	pthread_t t;

	if (!m) {
		log_error("%s: out of memory for its monitor", dom->name);
		return;
	}
	m->d = d;
	m->dom = dom;
	dom->refs++;
	dom->monitored = false;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, monitor_main, m)) {
		log_error("%s: cannot start its monitor thread", dom->name);
		dom->refs--;
		free(m);
	}
	pthread_attr_destroy(&attr);
}

/* ---- the end of a VM process ---- */

static bool ended_cleanly(struct daemon *d, struct dom *dom, const char *shutdown_reason)
{
	char path[STORE_PATH_MAX];
	int code = -1, signo = 0;

	store_path(&d->store, "run", dom->name, ".exit", path);
	/* The waiter writes the file right after the VM is reaped (a VM found
	 * ended at start-up has had all the time it needed). */
	for (int i = 0; i < 40 && vmproc_exit_status(path, &code, &signo) && dom->proc.pid; i++)
		usleep(25000);
	if (signo || code != 0)
		return false;
	return shutdown_reason == NULL || strcmp(shutdown_reason, "internal-error");
}

void monitor_ended_locked(struct daemon *d, struct dom *dom, const char *shutdown_reason)
{
	bool clean = ended_cleanly(d, dom, shutdown_reason);
	bool was_incoming = dom->incoming;
	bool never_answered = !dom->monitored; /* it failed to start */

	vmproc_release(&dom->proc);
	dom->monitored = false;
	dom->id = -1;
	dom->incoming = false;
	dom->persist_on_arrival = false;
	if (was_incoming || dom->ending == END_INCOMING_FAILED) {
		dom->state = DOM_SHUTOFF;
		dom->reason = "failed";
		log_info("%s: the incoming migration did not complete; removed", dom->name);
	} else if (never_answered && dom->ending == END_NONE) {
		/* Gone before its control socket answered: a VM that could not
		 * start, or a guest that powered off at once (exit 0). */
		dom->state = DOM_SHUTOFF;
		dom->reason = clean ? "shutdown" : "failed";
	} else if (dom->ending == END_DESTROY) {
		dom->state = DOM_SHUTOFF;
		dom->reason = "destroyed";
	} else if (dom->ending == END_MIGRATED) {
		dom->state = DOM_SHUTOFF;
		dom->reason = "migrated";
	} else if (clean && shutdown_reason) {
		dom->state = DOM_SHUTOFF;
		dom->reason = !strcmp(shutdown_reason, "host-signal") ||
			      !strcmp(shutdown_reason, "host-qmp-quit") ? "destroyed" : "shutdown";
	} else {
		dom->state = DOM_CRASHED;
		dom->reason = "crashed";
		log_warn("%s: its VM process ended without shutting down: crashed", dom->name);
	}
	dom->ending = END_NONE;
	if (dom->state == DOM_CRASHED) {
		dom_save_run_locked(d, dom); /* remembered across a ferryd restart */
	} else {
		dom_clear_run_locked(d, dom);
		if (dom->live) {
			domain_def_free(dom->live);
			free(dom->live);
			dom->live = NULL;
		}
	}
	log_info("%s: %s (%s)", dom->name, dom_state_name(dom->state), dom->reason);
	pthread_cond_broadcast(&dom->changed);
	if (dom->state == DOM_SHUTOFF && !dom->def && dom->listed)
		dom_forget_locked(d, dom);
}

/* ---- starting ---- */

struct argv_list {
	char **v;
	unsigned n, cap;
};

static int argv_add(struct argv_list *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		unsigned cap = a->cap ? a->cap * 2 : 32;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n] = strdup(s);
	if (!a->v[a->n])
		return -ENOMEM;
	a->v[++a->n] = NULL;
	return 0;
}

static void argv_free(struct argv_list *a)
{
	for (unsigned i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/* ferry-vmm's arguments for dom: from the definition; an incoming VM takes
 * its shape (command line, memory, vCPUs, CPU) from the stream, so those
 * are left out (its --kernel and --initrd say what a guest reboot boots). */
static int build_argv(struct daemon *d, struct dom *dom, bool paused, const char *incoming_uri,
		      const char *token, struct argv_list *a)
{
	static const char *const shape[] = { "--cmdline", "--memory", "--cpus", "--cpu", NULL };
	char path[STORE_PATH_MAX], spec[STORE_PATH_MAX + 8];
	char **base;
	int r = domain_vmm_args(dom->live, &base);

	if (r)
		return r;
	r = argv_add(a, d->vmm_path);
	for (unsigned i = 1; base[i] && !r; i++) {
		bool skip = false;

		for (unsigned j = 0; incoming_uri && shape[j]; j++)
			skip |= !strcmp(base[i], shape[j]);
		if (skip) {
			i++;
			continue;
		}
		r = argv_add(a, base[i]);
	}
	domain_vmm_args_free(base);
	ctl_path(d, dom, path);
	r = r ?: argv_add(a, "--control") ?: argv_add(a, path);
	if (!r && dom->live->serial == DOMAIN_CHR_PTY) {
		store_path(&d->store, "run", dom->name, ".console", path);
		snprintf(spec, sizeof(spec), "unix:%s", path);
		r = argv_add(a, "--serial") ?: argv_add(a, spec);
	}
	if (!r && paused)
		r = argv_add(a, "--paused");
	if (!r && incoming_uri) {
		char timeout[16];

		snprintf(timeout, sizeof(timeout), "%d", d->incoming_timeout_s);
		r = argv_add(a, "--incoming") ?: argv_add(a, incoming_uri) ?:
		    argv_add(a, "--incoming-token") ?: argv_add(a, token);
		if (!r && d->incoming_timeout_s)
			r = argv_add(a, "--incoming-timeout") ?: argv_add(a, timeout);
	}
	return r;
}

static int check_socket_paths(struct daemon *d, struct dom *dom, char *err, size_t errlen)
{
	char path[STORE_PATH_MAX];

	store_path(&d->store, "run", dom->name, ".console", path);
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "the state directory's path is too long for the VM's "
			 "sockets (%s)", path);
		return -ENAMETOOLONG;
	}
	return 0;
}

int dom_launch_locked(struct daemon *d, struct dom *dom, bool paused, const char *incoming_uri,
		      const char *token, char *err, size_t errlen)
{
	char log_path[STORE_PATH_MAX], exit_path[STORE_PATH_MAX], tail[400];
	struct argv_list a = { 0 };
	uint64_t deadline;
	int r;

	r = check_socket_paths(d, dom, err, errlen);
	if (r)
		return r;
	r = build_argv(d, dom, paused, incoming_uri, token, &a);
	if (r) {
		snprintf(err, errlen, "cannot build the VM's command line: %s",
			 r == -EINVAL ? "a disk path or serial holds ','" : strerror(-r));
		argv_free(&a);
		return r;
	}
	dom_clear_run_locked(d, dom);
	store_path(&d->store, "log", dom->name, ".log", log_path);
	store_path(&d->store, "run", dom->name, ".exit", exit_path);
	r = vmproc_spawn(&dom->proc, a.v, log_path, exit_path, err, errlen);
	argv_free(&a);
	if (r)
		return r;
	dom->id = d->next_id++;
	dom->state = DOM_PAUSED;
	dom->reason = incoming_uri ? "migrating" : "unknown";
	dom->incoming = incoming_uri != NULL;
	dom->ending = END_NONE;
	dom_save_run_locked(d, dom);
	monitor_start_locked(d, dom);
	if (incoming_uri)
		return 0;
	/* A fresh VM: wait until it answers on its control socket, or is gone. */
	deadline = time_now_ns() + LAUNCH_TIMEOUT_MS * 1000000ull;
	while (!dom->monitored && dom->proc.pid && time_now_ns() < deadline)
		dom_wait_locked(d, dom, 100);
	if (dom->monitored || (!dom->proc.pid && !strcmp(dom->reason, "shutdown")))
		return 0;
	vmproc_log_tail(log_path, tail, sizeof(tail));
	if (dom->proc.pid) {
		pthread_mutex_unlock(&d->lock);
		dom_stop_process(d, dom, END_DESTROY, 0);
		pthread_mutex_lock(&d->lock);
	}
	snprintf(err, errlen, "the VM did not start%s%s", tail[0] ? ": " : "", tail);
	return -EIO;
}

/* ---- talking to and ending a VM ---- */

int dom_vmm_call(struct daemon *d, struct dom *dom, const char *cmd, json_object *args,
		 json_object **ret, char *err, size_t errlen)
{
	char path[STORE_PATH_MAX];
	struct rpc_conn c;
	int r;

	ctl_path(d, dom, path);
	r = rpc_connect_unix(&c, path, 5000, err, errlen);
	if (r) {
		json_object_put(args);
		return r;
	}
	r = rpc_call(&c, cmd, args, ret, NULL, NULL, err, errlen, NULL);
	rpc_close(&c);
	return r;
}

void dom_stop_process(struct daemon *d, struct dom *dom, enum dom_ending why, int grace_ms)
{
	char err[256];
	uint64_t deadline;
	bool incoming;

	pthread_mutex_lock(&d->lock);
	if (!dom->proc.pid) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	dom->ending = why;
	incoming = dom->incoming;
	pthread_mutex_unlock(&d->lock);
	if (incoming) {
		pthread_mutex_lock(&d->lock);
		vmproc_kill(&dom->proc, SIGTERM);
		pthread_mutex_unlock(&d->lock);
	} else if (grace_ms > 0) {
		dom_vmm_call(d, dom, "quit", NULL, NULL, err, sizeof(err));
	}
	pthread_mutex_lock(&d->lock);
	deadline = time_now_ns() + (uint64_t)grace_ms * 1000000ull;
	while (dom->proc.pid && time_now_ns() < deadline)
		dom_wait_locked(d, dom, 50);
	if (dom->proc.pid)
		vmproc_kill(&dom->proc, SIGKILL);
	while (dom->proc.pid)
		dom_wait_locked(d, dom, 50);
	pthread_mutex_unlock(&d->lock);
}
