/* Lifecycle commands: define, undefine, create, start, shutdown, destroy,
 * suspend, resume, console. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/commands.h"
#include "daemon/monitor.h"

static bool dom_active(const struct dom *dom)
{
	return dom->proc.pid != 0;
}

/* Marks dom busy for one operation; false (e set) when another runs. */
static bool dom_claim_locked(struct dom *dom, struct cmd_error *e)
{
	if (dom->busy) {
		cmd_fail(e, "OperationInvalid", "domain '%s' has another operation in progress",
			 dom->name);
		return false;
	}
	dom->busy = true;
	return true;
}

static void dom_release_locked(struct dom *dom)
{
	dom->busy = false;
	pthread_cond_broadcast(&dom->changed);
}

static struct domain_def *parse_xml_arg(json_object *args, struct cmd_error *e)
{
	const char *xml = arg_str(args, "xml", true, e);
	struct domain_def *def;
	char err[512];

	if (!xml)
		return NULL;
	def = calloc(1, sizeof(*def));
	if (!def)
		return (void)cmd_fail(e, "GenericError", "out of memory"), NULL;
	if (domain_parse(xml, strlen(xml), def, err, sizeof(err))) {
		free(def);
		cmd_fail(e, "GenericError", "XML error: %s", err);
		return NULL;
	}
	return def;
}

static void def_free(struct domain_def *def)
{
	if (def) {
		domain_def_free(def);
		free(def);
	}
}

/* A domain of def's name or UUID that def may not replace: same name with
 * another UUID, or same UUID with another name. */
static bool def_conflicts_locked(struct daemon *d, struct domain_def *def,
				 struct cmd_error *e)
{
	for (struct dom *dom = d->doms; dom; dom = dom->next) {
		/* A redefinition without <uuid> keeps the domain's (as libvirt). */
		if (def->uuid_generated && !strcmp(dom->name, def->name)) {
			memcpy(def->uuid, dom->uuid, 16);
			def->uuid_generated = false;
		}
		char u[37];

		if (!strcmp(dom->name, def->name) && memcmp(dom->uuid, def->uuid, 16)) {
			domain_uuid_format(dom->uuid, u);
			cmd_fail(e, "OperationInvalid", "domain '%s' already exists with uuid %s",
				 dom->name, u);
			return true;
		}
		if (strcmp(dom->name, def->name) && !memcmp(dom->uuid, def->uuid, 16)) {
			domain_uuid_format(dom->uuid, u);
			cmd_fail(e, "OperationInvalid", "domain '%s' is already defined with uuid %s",
				 dom->name, u);
			return true;
		}
	}
	return false;
}

static const struct arg_spec define_args[] = { { "xml", ARG_STRING }, { NULL, 0 } };

static json_object *cmd_define(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	struct domain_def *def, *old;
	json_object *ret = NULL;
	struct dom *dom;
	bool replaced;
	char u[37];

	if (!(def = parse_xml_arg(args, e)))
		return NULL;
	pthread_mutex_lock(&d->lock);
	if (def_conflicts_locked(d, def, e)) {
		def_free(def);
		goto out;
	}
	dom = dom_lookup_name_locked(d, def->name);
	replaced = dom && dom->def;
	if (!dom) {
		dom = dom_new_locked(d, def);
		dom->refs++;
		old = NULL;
	} else {
		old = dom->def;
		dom->def = def;
	}
	if (dom_save_def_locked(d, dom)) {
		dom->def = old;
		if (!old && !dom_active(dom) && dom->state != DOM_CRASHED)
			dom_forget_locked(d, dom);
		def_free(def);
		dom_put_locked(d, dom);
		cmd_fail(e, "GenericError", "cannot write the definition to the state directory");
		goto out;
	}
	def_free(old);
	domain_uuid_format(dom->uuid, u);
	ret = json_object_new_object();
	json_object_object_add(ret, "name", json_object_new_string(dom->name));
	json_object_object_add(ret, "uuid", json_object_new_string(u));
	json_object_object_add(ret, "replaced", json_object_new_boolean(replaced));
	log_info("%s: defined", dom->name);
	dom_put_locked(d, dom);
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static json_object *cmd_undefine(struct client *cl, struct dom *dom, json_object *args,
				 struct cmd_error *e)
{
	struct daemon *d = cl->d;

	(void)args;
	if (!dom->def) {
		cmd_fail(e, "OperationInvalid", "cannot undefine transient domain");
	} else if (dom_remove_def_locked(d, dom)) {
		cmd_fail(e, "GenericError", "cannot remove the definition from the state directory");
	} else {
		def_free(dom->def);
		dom->def = NULL;
		log_info("%s: undefined", dom->name);
		if (!dom_active(dom)) {
			dom_clear_run_locked(d, dom);
			dom_forget_locked(d, dom);
		}
	}
	return e->cls ? NULL : json_object_new_object();
}

/* Starts dom (lock held, dom claimed). */
static json_object *start_locked(struct daemon *d, struct dom *dom, bool paused,
				 struct cmd_error *e)
{
	char err[512];
	json_object *ret;

	if (dom_active(dom))
		return cmd_fail(e, "OperationInvalid", "domain is already running");
	if (dom->live && dom->state == DOM_CRASHED && dom->def) {
		def_free(dom->live);
		dom->live = NULL;
	}
	if (!dom->live) {
		/* The live definition is a copy of the persistent one. */
		dom->live = domain_def_copy(dom->def);
		if (!dom->live)
			return cmd_fail(e, "GenericError", "out of memory");
	}
	if (dom_launch_locked(d, dom, paused, NULL, NULL, err, sizeof(err))) {
		if (dom->state != DOM_CRASHED && dom->live) {
			def_free(dom->live);
			dom->live = NULL;
		}
		return cmd_fail(e, "GenericError", "%s", err);
	}
	dom->reason = paused ? "user" : "booted";
	log_info("%s: started, id %d, pid %d", dom->name, dom->id, (int)dom->proc.pid);
	ret = json_object_new_object();
	json_object_object_add(ret, "id", json_object_new_int(dom->id));
	json_object_object_add(ret, "name", json_object_new_string(dom->name));
	return ret;
}

static const struct arg_spec start_args[] = {
	{ "domain", ARG_STRING }, { "paused", ARG_BOOL }, { NULL, 0 },
};

static json_object *cmd_start(struct client *cl, struct dom *dom, json_object *args,
			      struct cmd_error *e)
{
	json_object *ret = NULL;

	if (!dom_claim_locked(dom, e))
		return NULL;
	if (!dom->def && !dom_active(dom))
		cmd_fail(e, "OperationInvalid", "domain '%s' is transient and not running",
			 dom->name);
	else
		ret = start_locked(cl->d, dom, arg_bool(args, "paused"), e);
	dom_release_locked(dom);
	return ret;
}

static const struct arg_spec create_args[] = {
	{ "xml", ARG_STRING }, { "paused", ARG_BOOL }, { NULL, 0 },
};

static json_object *cmd_create(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	struct domain_def *def;
	json_object *ret = NULL;
	struct dom *dom;

	if (!(def = parse_xml_arg(args, e)))
		return NULL;
	pthread_mutex_lock(&d->lock);
	if (def_conflicts_locked(d, def, e)) {
		def_free(def);
		goto out;
	}
	dom = dom_lookup_name_locked(d, def->name);
	if (dom) {
		/* virsh create of a defined domain runs the given XML once. */
		if (dom_claim_locked(dom, e)) {
			if (dom_active(dom)) {
				cmd_fail(e, "OperationInvalid", "domain is already running");
				def_free(def);
			} else {
				def_free(dom->live);
				dom->live = def;
				ret = start_locked(d, dom, arg_bool(args, "paused"), e);
			}
			dom_release_locked(dom);
		} else {
			def_free(def);
		}
		dom_put_locked(d, dom);
		goto out;
	}
	dom = dom_new_locked(d, def);
	dom->refs++;
	dom->live = dom->def;
	dom->def = NULL; /* transient */
	dom->busy = true;
	ret = start_locked(d, dom, arg_bool(args, "paused"), e);
	dom_release_locked(dom);
	if (!ret && dom->listed && !dom_active(dom))
		dom_forget_locked(d, dom);
	dom_put_locked(d, dom);
out:
	pthread_mutex_unlock(&d->lock);
	return ret;
}

/* Runs one of the simple active-domain operations. */
static json_object *active_op(struct client *cl, struct dom *dom, struct cmd_error *e,
			      const char *vmm_cmd)
{
	struct daemon *d = cl->d;
	char err[512];
	int r;

	if (!dom_active(dom) || dom->incoming)
		return cmd_fail(e, "OperationInvalid", "domain is not running");
	if (!strcmp(vmm_cmd, "stop") && dom->state == DOM_PAUSED)
		return cmd_fail(e, "OperationInvalid", "domain is already paused");
	if (!strcmp(vmm_cmd, "cont") && dom->job_active)
		return cmd_fail(e, "OperationInvalid", "domain has a migration job in progress");
	pthread_mutex_unlock(&d->lock);
	r = dom_vmm_call(d, dom, vmm_cmd, NULL, NULL, err, sizeof(err));
	if (r == 1 && !strcmp(vmm_cmd, "system_powerdown") && strstr(err, "not been found"))
		cmd_fail(e, "GenericError", "this VM has no power button (ferry-vmm too old)");
	else if (r)
		cmd_fail(e, "GenericError", "%s", r < 0 ? strerror(-r) : err);
	pthread_mutex_lock(&d->lock);
	if (!e->cls && !strcmp(vmm_cmd, "system_powerdown") && dom->proc.pid) {
		dom->state = DOM_SHUTDOWN;
		dom->reason = "user";
	}
	/* The STOP / RESUME event updates the state; wait for it so that
	 * a list right after shows it. */
	for (int i = 0; i < 20 && !e->cls && !strcmp(vmm_cmd, "stop") &&
			dom->state == DOM_RUNNING; i++)
		dom_wait_locked(d, dom, 50);
	for (int i = 0; i < 20 && !e->cls && !strcmp(vmm_cmd, "cont") &&
			dom->state == DOM_PAUSED; i++)
		dom_wait_locked(d, dom, 50);
	return e->cls ? NULL : json_object_new_object();
}

static json_object *cmd_suspend(struct client *cl, struct dom *dom, json_object *args,
				 struct cmd_error *e)
{
	(void)args;
	return active_op(cl, dom, e, "stop");
}

static json_object *cmd_resume(struct client *cl, struct dom *dom, json_object *args,
			        struct cmd_error *e)
{
	(void)args;
	return active_op(cl, dom, e, "cont");
}

static json_object *cmd_shutdown(struct client *cl, struct dom *dom, json_object *args,
				  struct cmd_error *e)
{
	(void)args;
	return active_op(cl, dom, e, "system_powerdown");
}

static const struct arg_spec destroy_args[] = {
	{ "domain", ARG_STRING }, { "graceful", ARG_BOOL }, { NULL, 0 },
};

static json_object *cmd_destroy(struct client *cl, struct dom *dom, json_object *args,
				struct cmd_error *e)
{
	struct daemon *d = cl->d;

	if (dom->state == DOM_CRASHED && !dom_active(dom)) {
		/* Clears the crashed state: shut off, or gone if transient. */
		dom->state = DOM_SHUTOFF;
		dom->reason = "destroyed";
		dom_clear_run_locked(d, dom);
		def_free(dom->live);
		dom->live = NULL;
		if (!dom->def)
			dom_forget_locked(d, dom);
	} else if (!dom_active(dom)) {
		cmd_fail(e, "OperationInvalid", "domain is not running");
	} else if (dom->job_active) {
		cmd_fail(e, "OperationInvalid", "domain has a migration job in progress; "
			 "domjobabort first");
	} else {
		pthread_mutex_unlock(&d->lock);
		dom_stop_process(d, dom, END_DESTROY, arg_bool(args, "graceful") ? 5000 : 2000);
		pthread_mutex_lock(&d->lock);
		log_info("%s: destroyed", dom->name);
	}
	return e->cls ? NULL : json_object_new_object();
}

static int connect_console(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

static const struct arg_spec console_args[] = {
	{ "domain", ARG_STRING }, { "force", ARG_BOOL }, { NULL, 0 },
};

static json_object *cmd_console(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	char path[STORE_PATH_MAX];
	struct dom *dom;
	int fd = -1;

	pthread_mutex_lock(&d->lock);
	dom = arg_domain_locked(d, args, e);
	if (!dom)
		goto out;
	if (!dom_active(dom) || dom->incoming)
		cmd_fail(e, "OperationInvalid", "domain is not running");
	else if (!dom->live || dom->live->serial != DOMAIN_CHR_PTY)
		cmd_fail(e, "OperationInvalid", "cannot find character device <null>: the domain's "
			 "serial port is not a pty");
	store_path(&d->store, "run", dom->name, ".console", path);
	dom_put_locked(d, dom);
out:
	pthread_mutex_unlock(&d->lock);
	if (e->cls)
		return NULL;
	fd = connect_console(path);
	if (fd < 0)
		return cmd_fail(e, "OperationInvalid", "the console is in use or gone: %s",
				strerror(-fd));
	cl->raw_fd = fd;
	return json_object_new_object();
}

const struct cmd lifecycle_cmds[] = {
	{ "define", cmd_define, NULL, define_args },
	{ "undefine", NULL, cmd_undefine, args_domain_only },
	{ "create", cmd_create, NULL, create_args },
	{ "start", NULL, cmd_start, start_args },
	{ "shutdown", NULL, cmd_shutdown, args_domain_only },
	{ "destroy", NULL, cmd_destroy, destroy_args },
	{ "suspend", NULL, cmd_suspend, args_domain_only },
	{ "resume", NULL, cmd_resume, args_domain_only },
	{ "console", cmd_console, NULL, console_args },
	{ NULL, NULL, NULL, NULL },
};
