#include "vmm/monitor.h"

#include <stdio.h>
#include <string.h>

#include "common/jsonarg.h"
#include "common/util.h"
#include "migration/channel_file.h"
#include "migration/state.h"

static int cmd_capabilities(void *ctx, struct json_object *args, struct json_object **ret,
			    char *err, size_t errlen)
{
	(void)ctx, (void)args, (void)ret, (void)err, (void)errlen;
	return 0; /* accepted for QMP clients; there is nothing to negotiate */
}

const char *monitor_status(struct monitor *m)
{
	struct vm *vm = m->vm;

	switch (vm_stop_reason(vm)) {
	case VM_STOP_NONE:
		if (m->mig.postmigrate)
			return "postmigrate";
		return vm_is_paused(vm) ? "paused" : "running";
	case VM_STOP_ERROR:
		return "internal-error";
	default:
		return "shutdown";
	}
}

static int cmd_query_status(void *ctx, struct json_object *args, struct json_object **ret,
			    char *err, size_t errlen)
{
	struct monitor *m = ctx;
	const char *status = monitor_status(m);

	(void)args, (void)err, (void)errlen;
	*ret = json_object_new_object();
	json_object_object_add(*ret, "status", json_object_new_string(status));
	json_object_object_add(*ret, "running", json_object_new_boolean(!strcmp(status, "running")));
	json_object_object_add(*ret, "singlestep", json_object_new_boolean(0));
	return 0;
}

static int cmd_query_name(void *ctx, struct json_object *args, struct json_object **ret,
			  char *err, size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)err, (void)errlen;
	*ret = json_object_new_object();
	if (m->vm->cfg.name)
		json_object_object_add(*ret, "name", json_object_new_string(m->vm->cfg.name));
	return 0;
}

static int cmd_query_version(void *ctx, struct json_object *args, struct json_object **ret,
			     char *err, size_t errlen)
{
	(void)ctx, (void)args, (void)err, (void)errlen;
	*ret = json_tokener_parse("{\"ferry\": {\"major\": 0, \"minor\": 1, \"micro\": 0},"
				  " \"package\": \"ferry\"}");
	return 0;
}

static int monitor_check_live(struct monitor *m, char *err, size_t errlen)
{
	if (vm_stop_reason(m->vm) == VM_STOP_NONE)
		return 0;
	snprintf(err, errlen, "the VM has stopped for good (%s)", monitor_status(m));
	return -1;
}

/* stop, cont, system_powerdown, save and migrate wait while a migration
 * runs, and nothing runs a VM that was handed over. */
static int monitor_check_migration(struct monitor *m, char *err, size_t errlen)
{
	if (migration_active(&m->mig)) {
		snprintf(err, errlen, "a migration is running (migrate_cancel stops it)");
		return -1;
	}
	if (m->mig.postmigrate) {
		snprintf(err, errlen, "the VM was migrated to another host; this copy never runs "
			 "again (quit ends it)");
		return -1;
	}
	return 0;
}

static int cmd_stop(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret;
	if (monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	if (vm_is_paused(m->vm))
		return 0;
	vm_pause(m->vm);
	m->reported_paused = true;
	control_event(&m->ctl, "STOP", NULL);
	return 0;
}

/* system_reset: the machine resets at once, as if the guest did it, and
 * boots again (paused if it was); with --no-reboot the VM ends, as QEMU's
 * -no-reboot makes it. Refused while a migration runs. */
static int cmd_system_reset(void *ctx, struct json_object *args, struct json_object **ret,
			    char *err, size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret;
	if (monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	m->reset_paused = vm_is_paused(m->vm);
	vm_request_stop(m->vm, VM_STOP_HOST_RESET);
	return 0;
}

/* system_powerdown: QMP's name; the guest sees the ACPI power button.
 * Refused while a migration runs: the migration thread saves the PM device
 * without the io_lock (the vCPUs are parked then, the monitor is not), and
 * a press after that save would be lost with the source's copy. */
static int cmd_system_powerdown(void *ctx, struct json_object *args, struct json_object **ret,
				char *err, size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret;
	if (monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	vm_power_button(m->vm);
	control_event(&m->ctl, "POWERDOWN", NULL);
	return 0;
}

static int cmd_cont(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	static const char *const names[] = { "force", NULL };
	struct monitor *m = ctx;
	bool force = false;

	(void)ret;
	if (jarg_only(args, names, err, errlen) || jarg_bool(args, "force", &force, err, errlen) ||
	    monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	if (m->mig.handover_unknown && !force) {
		snprintf(err, errlen, "a migration's hand-over did not finish: the destination "
			 "may be running this guest. Check it; if it is not running there, "
			 "cont {\"force\": true} resumes it here");
		return -1;
	}
	if (!vm_is_paused(m->vm))
		return 0;
	if (m->mig.handover_unknown)
		m->mig.handover_unknown = false; /* the operator settled it */
	vm_resume(m->vm);
	m->reported_paused = false;
	control_event(&m->ctl, "RESUME", NULL);
	return 0;
}

static int cmd_quit(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret, (void)err, (void)errlen;
	vm_request_stop(m->vm, VM_STOP_QUIT);
	return 0;
}

/* Writes the paused VM to path, atomically. */
static int monitor_save_file(struct vm *vm, const char *path, struct state_stats *st)
{
	struct file_channel ch;
	int ret = vm_flush_devices(vm);

	ret = ret ?: file_channel_create(&ch, path);
	if (ret)
		return ret;
	ret = state_save(vm, ch.fd, st);
	if (ret) {
		file_channel_abort(&ch);
		return ret;
	}
	return file_channel_commit(&ch);
}

/* save {"path": FILE, "debug-ram-hash": bool}: pauses the VM (if it runs),
 * writes its complete state to FILE and stays paused; on failure the VM
 * goes on as it was and no file is left. */
static int cmd_save(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	static const char *const names[] = { "path", "debug-ram-hash", NULL };
	struct monitor *m = ctx;
	const char *path = NULL;
	bool hash = false;
	struct state_stats st;
	bool was_running;
	uint64_t t0;
	int r;

	if (jarg_only(args, names, err, errlen) ||
	    jarg_str(args, "path", true, &path, err, errlen) ||
	    jarg_bool(args, "debug-ram-hash", &hash, err, errlen))
		return -1;
	if (!*path) {
		snprintf(err, errlen, "save needs \"path\": a file name");
		return -1;
	}
	if (monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	was_running = !vm_is_paused(m->vm);
	t0 = time_now_ns();
	vm_pause(m->vm);
	m->reported_paused = true;
	if (was_running)
		control_event(&m->ctl, "STOP", NULL);
	r = monitor_save_file(m->vm, path, &st);
	if (r) {
		snprintf(err, errlen, "saving to %s failed: %s", path, strerror(-r));
		if (was_running) {
			vm_resume(m->vm);
			m->reported_paused = false;
			control_event(&m->ctl, "RESUME", NULL);
		}
		return -1;
	}
	*ret = json_object_new_object();
	json_object_object_add(*ret, "size", json_object_new_int64((int64_t)st.bytes));
	json_object_object_add(*ret, "ram-pages", json_object_new_int64((int64_t)st.pages_full));
	json_object_object_add(*ret, "total-time",
			       json_object_new_int64((int64_t)((time_now_ns() - t0) / 1000000)));
	if (hash) {
		char hex[16];

		snprintf(hex, sizeof(hex), "%08x", state_ram_hash(m->vm));
		json_object_object_add(*ret, "ram-hash", json_object_new_string(hex));
	}
	return 0;
}

/* ---- migration ---- */

/* migrate {"uri", "token", "live", "debug-ram-hash", "detach"}: starts a
 * migration and returns at once; query-migrate and the MIGRATION events
 * tell how it goes. */
static int cmd_migrate(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		       size_t errlen)
{
	static const char *const names[] = { "uri", "token", "live", "debug-ram-hash", "detach",
					     NULL };
	struct monitor *m = ctx;
	const char *uri = NULL, *token = NULL;
	bool live = true, hash = false, detach = true;

	(void)ret;
	if (jarg_only(args, names, err, errlen) ||
	    jarg_str(args, "uri", false, &uri, err, errlen) ||
	    jarg_str(args, "token", false, &token, err, errlen) ||
	    jarg_bool(args, "live", &live, err, errlen) ||
	    jarg_bool(args, "debug-ram-hash", &hash, err, errlen) ||
	    jarg_bool(args, "detach", &detach, err, errlen))
		return -1;
	if (!uri) {
		snprintf(err, errlen, "migrate needs \"uri\": tcp:HOST:PORT or unix:PATH");
		return -1;
	}
	if (monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	return migration_start(&m->mig, uri, token, live, hash, err, errlen);
}

static int cmd_migrate_cancel(void *ctx, struct json_object *args, struct json_object **ret,
			      char *err, size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret;
	return migration_cancel(&m->mig, err, errlen);
}

static int cmd_migrate_set_parameters(void *ctx, struct json_object *args,
				      struct json_object **ret, char *err, size_t errlen)
{
	static const char *const names[] = { "downtime-limit", "max-bandwidth", "auto-converge",
					     "convergence-timeout", "convergence-timeout-action",
					     NULL };
	struct monitor *m = ctx;
	struct mig_params p;
	const char *action = NULL;

	(void)ret;
	migration_get_params(&m->mig, &p);
	if (jarg_only(args, names, err, errlen) ||
	    jarg_u64(args, "downtime-limit", 0, MIG_MAX_DOWNTIME_MS, &p.downtime_limit_ms, NULL,
			 err, errlen) ||
	    jarg_u64(args, "max-bandwidth", 0, INT64_MAX, &p.max_bandwidth, NULL, err, errlen) ||
	    jarg_bool(args, "auto-converge", &p.auto_converge, err, errlen) ||
	    jarg_u64(args, "convergence-timeout", 0, 86400u * 365, &p.convergence_timeout_s, NULL,
			 err, errlen) ||
	    jarg_str(args, "convergence-timeout-action", false, &action, err, errlen))
		return -1;
	if (action && !strcmp(action, "suspend")) {
		p.final_action = POLICY_FINAL_SUSPEND;
	} else if (action && !strcmp(action, "abort")) {
		p.final_action = POLICY_FINAL_ABORT;
	} else if (action) {
		snprintf(err, errlen, "\"convergence-timeout-action\" is \"suspend\" or "
			 "\"abort\"");
		return -1;
	}
	migration_set_params(&m->mig, &p);
	return 0;
}

static int cmd_query_migrate_parameters(void *ctx, struct json_object *args,
					struct json_object **ret, char *err, size_t errlen)
{
	struct monitor *m = ctx;
	struct mig_params p;
	struct json_object *o = json_object_new_object();

	(void)args, (void)err, (void)errlen;
	migration_get_params(&m->mig, &p);
	json_object_object_add(o, "downtime-limit", json_object_new_int64((int64_t)p.downtime_limit_ms));
	json_object_object_add(o, "max-bandwidth", json_object_new_int64((int64_t)p.max_bandwidth));
	json_object_object_add(o, "auto-converge", json_object_new_boolean(p.auto_converge));
	json_object_object_add(o, "convergence-timeout",
			       json_object_new_int64((int64_t)p.convergence_timeout_s));
	json_object_object_add(o, "convergence-timeout-action",
			       json_object_new_string(p.final_action == POLICY_FINAL_ABORT ?
						      "abort" : "suspend"));
	json_object_object_add(o, "cpu-throttle-initial",
			       json_object_new_int(POLICY_THROTTLE_INITIAL));
	json_object_object_add(o, "cpu-throttle-increment",
			       json_object_new_int(POLICY_THROTTLE_STEP));
	json_object_object_add(o, "max-cpu-throttle", json_object_new_int(POLICY_THROTTLE_MAX));
	*ret = o;
	return 0;
}

static void add_ms(struct json_object *o, const char *key, uint64_t ns)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)(ns / 1000000u)));
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_int64((int64_t)v));
}

/* query-migrate: QMP's MigrationInfo, plus "ferry" with the downtime in
 * parts and the rung of the ladder that finished the migration. */
static int cmd_query_migrate(void *ctx, struct json_object *args, struct json_object **ret,
			     char *err, size_t errlen)
{
	struct monitor *m = ctx;
	enum mig_status status;
	struct mig_stats st;
	char error[800];
	struct json_object *o = json_object_new_object(), *ram, *f, *parts;
	bool done;

	(void)args, (void)err, (void)errlen;
	migration_snapshot(&m->mig, &status, &st, NULL, error, sizeof(error));
	*ret = o;
	if (status == MIG_NONE)
		return 0; /* QMP: {} before any migration */
	done = status == MIG_COMPLETED;
	json_object_object_add(o, "status", json_object_new_string(migration_status_name(status)));
	add_ms(o, "total-time", st.total_ns);
	add_ms(o, "setup-time", st.setup_ns);
	if (done)
		add_ms(o, "downtime", st.downtime_ns);
	else if (status == MIG_ACTIVE)
		add_ms(o, "expected-downtime", st.expected_downtime_ns);
	if (st.throttle_pct)
		json_object_object_add(o, "cpu-throttle-percentage",
				       json_object_new_int((int)st.throttle_pct));
	if ((status == MIG_FAILED || status == MIG_CANCELLED) && error[0])
		json_object_object_add(o, "error-desc", json_object_new_string(error));
	ram = json_object_new_object();
	add_u64(ram, "transferred", st.transferred);
	add_u64(ram, "remaining", st.remaining);
	add_u64(ram, "total", st.total);
	add_u64(ram, "duplicate", st.duplicate);
	add_u64(ram, "skipped", st.skipped);
	add_u64(ram, "normal", st.normal);
	add_u64(ram, "normal-bytes", st.normal * 4096);
	json_object_object_add(ram, "mbps", json_object_new_double((double)st.mbps_x1000 / 1000.0));
	add_u64(ram, "dirty-pages-rate", st.dirty_pages_rate);
	add_u64(ram, "dirty-sync-count", st.dirty_sync_count);
	add_u64(ram, "page-size", 4096);
	json_object_object_add(o, "ram", ram);

	f = json_object_new_object();
	add_u64(f, "pass", st.pass);
	json_object_object_add(f, "rung", json_object_new_string(policy_rung_name(st.rung)));
	add_u64(f, "expected-downtime-us", st.expected_downtime_ns / 1000);
	add_u64(f, "bandwidth", st.bandwidth_Bps);
	if (done) {
		parts = json_object_new_object();
		add_u64(parts, "pause-us", st.pause_ns / 1000);
		add_u64(parts, "final-ram-us", st.final_ram_ns / 1000);
		add_u64(parts, "final-ram-bytes", st.final_ram_bytes);
		add_u64(parts, "device-state-us", st.device_ns / 1000);
		add_u64(parts, "destination-load-us", st.dest_load_ns / 1000);
		add_u64(parts, "start-us", st.start_ns / 1000);
		add_u64(parts, "total-us", st.downtime_ns / 1000);
		json_object_object_add(f, "downtime-parts", parts);
	}
	if (st.have_hash) {
		char hex[16];

		snprintf(hex, sizeof(hex), "%08x", st.src_hash);
		json_object_object_add(f, "ram-hash", json_object_new_string(hex));
		snprintf(hex, sizeof(hex), "%08x", st.dst_hash);
		json_object_object_add(f, "destination-ram-hash", json_object_new_string(hex));
	}
	json_object_object_add(o, "ferry", f);
	return 0;
}

/* calc-dirty-rate {"calc-time": SECONDS}: QMP's name and shape. */
static int cmd_calc_dirty_rate(void *ctx, struct json_object *args, struct json_object **ret,
			       char *err, size_t errlen)
{
	static const char *const names[] = { "calc-time", "mode", NULL };
	struct monitor *m = ctx;
	uint64_t secs = 0;
	bool given;
	const char *mode = NULL;

	(void)ret;
	if (jarg_only(args, names, err, errlen) ||
	    jarg_u64(args, "calc-time", 0, 60, &secs, &given, err, errlen) ||
	    jarg_str(args, "mode", false, &mode, err, errlen))
		return -1;
	if (!given || secs == 0) {
		snprintf(err, errlen, "calc-dirty-rate needs \"calc-time\": 1 to 60 seconds");
		return -1;
	}
	if (mode && strcmp(mode, "dirty-bitmap")) {
		snprintf(err, errlen, "only \"mode\": \"dirty-bitmap\" is supported");
		return -1;
	}
	if (monitor_check_live(m, err, errlen) || monitor_check_migration(m, err, errlen))
		return -1;
	return migration_calc_dirty_rate(&m->mig, (unsigned)secs, err, errlen);
}

static int cmd_query_dirty_rate(void *ctx, struct json_object *args, struct json_object **ret,
				char *err, size_t errlen)
{
	struct monitor *m = ctx;
	struct migration *g = &m->mig;
	struct json_object *o = json_object_new_object();
	const char *status;

	(void)args, (void)err, (void)errlen;
	pthread_mutex_lock(&g->lock);
	status = g->rate_measuring ? "measuring" : g->rate_measured ? "measured" : "unstarted";
	json_object_object_add(o, "status", json_object_new_string(status));
	if (g->rate_measured)
		add_u64(o, "dirty-rate", g->rate_MBps);
	if (g->rate_measuring || g->rate_measured) {
		add_u64(o, "start-time", g->rate_start_s);
		add_u64(o, "calc-time", g->rate_calc_s);
	}
	json_object_object_add(o, "calc-time-unit", json_object_new_string("second"));
	json_object_object_add(o, "mode", json_object_new_string("dirty-bitmap"));
	if (g->rate_measured)
		add_u64(o, "dirty-pages-rate", g->rate_pages);
	pthread_mutex_unlock(&g->lock);
	*ret = o;
	return 0;
}

static const struct control_command monitor_commands[] = {
	{ "qmp_capabilities", cmd_capabilities },
	{ "query-status", cmd_query_status },
	{ "query-name", cmd_query_name },
	{ "query-version", cmd_query_version },
	{ "stop", cmd_stop },
	{ "cont", cmd_cont },
	{ "quit", cmd_quit },
	{ "system_powerdown", cmd_system_powerdown },
	{ "system_reset", cmd_system_reset },
	{ "save", cmd_save },
	{ "migrate", cmd_migrate },
	{ "migrate_cancel", cmd_migrate_cancel },
	{ "migrate-set-parameters", cmd_migrate_set_parameters },
	{ "query-migrate-parameters", cmd_query_migrate_parameters },
	{ "query-migrate", cmd_query_migrate },
	{ "calc-dirty-rate", cmd_calc_dirty_rate },
	{ "query-dirty-rate", cmd_query_dirty_rate },
};

int monitor_open(struct monitor *m, struct vm *vm, const char *path)
{
	m->vm = vm;
	m->reported_paused = vm->cfg.start_paused;
	migration_init(&m->mig, vm);
	return control_open(&m->ctl, path, monitor_commands,
			    sizeof(monitor_commands) / sizeof(monitor_commands[0]), m);
}

void monitor_close(struct monitor *m)
{
	migration_shutdown(&m->mig);
	control_close(&m->ctl);
}

void monitor_poll(struct monitor *m)
{
	struct mig_event ev[MIG_MAX_EVENTS];
	unsigned n = migration_take_events(&m->mig, ev, MIG_MAX_EVENTS);
	bool paused;

	for (unsigned i = 0; i < n; i++) {
		struct json_object *data = json_object_new_object();

		if (ev[i].pass) {
			json_object_object_add(data, "pass", json_object_new_int((int)ev[i].value));
			control_event(&m->ctl, "MIGRATION_PASS", data);
		} else {
			json_object_object_add(data, "status", json_object_new_string(
				migration_status_name((enum mig_status)ev[i].value)));
			control_event(&m->ctl, "MIGRATION", data);
		}
	}
	/* The migration thread pauses the VM at switch-over and resumes it
	 * when a migration fails before GO. */
	if (vm_stop_reason(m->vm) != VM_STOP_NONE)
		return;
	paused = vm_is_paused(m->vm);
	if (paused != m->reported_paused) {
		m->reported_paused = paused;
		control_event(&m->ctl, paused ? "STOP" : "RESUME", NULL);
	}
}

void monitor_before_reset(struct monitor *m)
{
	/* A migration of the machine that is going away fails here (QMP
	 * shows it cancelled); a dirty-rate measurement ends. Parameters and
	 * capabilities stay, as QEMU keeps them across a reset. */
	migration_shutdown(&m->mig);
}

/* QMP's {"guest": bool, "reason": ...} of an event for why the VM stopped. */
static struct json_object *stop_reason_data(enum vm_stop_reason reason)
{
	static const char *const reasons[] = {
		[VM_STOP_POWEROFF] = "guest-shutdown",
		[VM_STOP_RESET] = "guest-reset",
		[VM_STOP_HOST_RESET] = "host-qmp-system-reset",
		[VM_STOP_QUIT] = "host-qmp-quit",
		[VM_STOP_SIGNAL] = "host-signal",
		[VM_STOP_ERROR] = "internal-error",
	};
	struct json_object *data = json_object_new_object();
	bool guest = reason == VM_STOP_POWEROFF || reason == VM_STOP_RESET;

	json_object_object_add(data, "guest", json_object_new_boolean(guest));
	json_object_object_add(data, "reason",
			       json_object_new_string(reasons[reason] ? reasons[reason] : "unknown"));
	return data;
}

void monitor_reset_event(struct monitor *m, enum vm_stop_reason reason)
{
	control_event(&m->ctl, "RESET", stop_reason_data(reason));
	m->reported_paused = m->reset_paused;
	m->reset_paused = false;
}

void monitor_shutdown_event(struct monitor *m, enum vm_stop_reason reason)
{
	control_event(&m->ctl, "SHUTDOWN", stop_reason_data(reason));
}
