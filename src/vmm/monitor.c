#include "vmm/monitor.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "migration/channel_file.h"
#include "migration/state.h"

static int cmd_capabilities(void *ctx, struct json_object *args, struct json_object **ret,
			    char *err, size_t errlen)
{
	(void)ctx, (void)args, (void)ret, (void)err, (void)errlen;
	return 0; /* accepted for QMP clients; there is nothing to negotiate */
}

const char *monitor_status(struct vm *vm)
{
	switch (vm_stop_reason(vm)) {
	case VM_STOP_NONE:
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
	const char *status = monitor_status(m->vm);

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
	snprintf(err, errlen, "the VM has stopped for good (%s)", monitor_status(m->vm));
	return -1;
}

static int cmd_stop(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret;
	if (monitor_check_live(m, err, errlen))
		return -1;
	if (vm_is_paused(m->vm))
		return 0;
	vm_pause(m->vm);
	control_event(&m->ctl, "STOP", NULL);
	return 0;
}

static int cmd_cont(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	struct monitor *m = ctx;

	(void)args, (void)ret;
	if (monitor_check_live(m, err, errlen))
		return -1;
	if (!vm_is_paused(m->vm))
		return 0;
	vm_resume(m->vm);
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

/* Checks that args has only the named members; returns -1 with a message. */
static int monitor_args_only(struct json_object *args, const char *const *names, char *err,
			     size_t errlen)
{
	if (!args)
		return 0;
	json_object_object_foreach(args, key, val) {
		bool known = false;

		(void)val;
		for (unsigned i = 0; names[i]; i++)
			known |= !strcmp(key, names[i]);
		if (!known) {
			snprintf(err, errlen, "unexpected argument \"%s\"", key);
			return -1;
		}
	}
	return 0;
}

/* Writes the paused VM to path, atomically. */
static int monitor_save_file(struct vm *vm, const char *path, struct state_stats *st)
{
	struct file_channel ch;
	int ret = file_channel_create(&ch, path);

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
	struct json_object *jpath = NULL, *jhash = NULL;
	struct state_stats st;
	bool was_running;
	uint64_t t0;
	int r;

	if (monitor_args_only(args, names, err, errlen))
		return -1;
	if (!args || !json_object_object_get_ex(args, "path", &jpath) ||
	    !json_object_is_type(jpath, json_type_string) || !json_object_get_string_len(jpath)) {
		snprintf(err, errlen, "save needs \"path\": a file name");
		return -1;
	}
	if (json_object_object_get_ex(args, "debug-ram-hash", &jhash) &&
	    !json_object_is_type(jhash, json_type_boolean)) {
		snprintf(err, errlen, "\"debug-ram-hash\" must be true or false");
		return -1;
	}
	if (monitor_check_live(m, err, errlen))
		return -1;
	was_running = !vm_is_paused(m->vm);
	t0 = time_now_ns();
	vm_pause(m->vm);
	if (was_running)
		control_event(&m->ctl, "STOP", NULL);
	r = monitor_save_file(m->vm, json_object_get_string(jpath), &st);
	if (r) {
		snprintf(err, errlen, "saving to %s failed: %s", json_object_get_string(jpath),
			 strerror(-r));
		if (was_running) {
			vm_resume(m->vm);
			control_event(&m->ctl, "RESUME", NULL);
		}
		return -1;
	}
	*ret = json_object_new_object();
	json_object_object_add(*ret, "size", json_object_new_int64((int64_t)st.bytes));
	json_object_object_add(*ret, "ram-pages", json_object_new_int64((int64_t)st.pages_full));
	json_object_object_add(*ret, "total-time",
			       json_object_new_int64((int64_t)((time_now_ns() - t0) / 1000000)));
	if (jhash && json_object_get_boolean(jhash)) {
		char hex[16];

		snprintf(hex, sizeof(hex), "%08x", state_ram_hash(m->vm));
		json_object_object_add(*ret, "ram-hash", json_object_new_string(hex));
	}
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
	{ "save", cmd_save },
};

int monitor_open(struct monitor *m, struct vm *vm, const char *path)
{
	m->vm = vm;
	return control_open(&m->ctl, path, monitor_commands,
			    sizeof(monitor_commands) / sizeof(monitor_commands[0]), m);
}

void monitor_close(struct monitor *m)
{
	control_close(&m->ctl);
}

void monitor_shutdown_event(struct monitor *m, enum vm_stop_reason reason)
{
	static const char *const reasons[] = {
		[VM_STOP_POWEROFF] = "guest-shutdown",
		[VM_STOP_RESET] = "guest-reset",
		[VM_STOP_QUIT] = "host-qmp-quit",
		[VM_STOP_SIGNAL] = "host-signal",
		[VM_STOP_ERROR] = "internal-error",
	};
	struct json_object *data = json_object_new_object();
	bool guest = reason == VM_STOP_POWEROFF || reason == VM_STOP_RESET;

	json_object_object_add(data, "guest", json_object_new_boolean(guest));
	json_object_object_add(data, "reason",
			       json_object_new_string(reasons[reason] ? reasons[reason] : "unknown"));
	control_event(&m->ctl, "SHUTDOWN", data);
}
