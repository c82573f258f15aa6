#include "vmm/monitor.h"

#include <stdio.h>
#include <string.h>

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

static const struct control_command monitor_commands[] = {
	{ "qmp_capabilities", cmd_capabilities },
	{ "query-status", cmd_query_status },
	{ "query-name", cmd_query_name },
	{ "query-version", cmd_query_version },
	{ "stop", cmd_stop },
	{ "cont", cmd_cont },
	{ "quit", cmd_quit },
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
