/* The destination's side of a migration: migrate-prepare checks that this
 * host can run the VM and starts a ferry-vmm waiting for it; migrate-finish
 * tells the outcome to the source. Once prepared, the destination depends
 * on its incoming ferry-vmm only: GO makes the guest run here, anything else
 * ends that process and the domain with it (monitor.c). */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "daemon/commands.h"
#include "daemon/monitor.h"

#define FINISH_WAIT_MS 10000

static void add_reason(char *out, size_t len, const char *fmt, const char *arg)
{
	size_t n = strlen(out);

	if (n && n + 2 < len) {
		strcat(out, "; ");
		n += 2;
	}
	if (n < len)
		snprintf(out + n, len - n, fmt, arg);
}

static uint64_t mem_available(void)
{
	unsigned long long kib = 0;
	char line[256];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib << 10;
}

static bool is_tap(const char *ifname)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/class/net/%s/tun_flags", ifname);
	return access(path, F_OK) == 0;
}

/* Every reason this host cannot run def, joined with "; " into out ("" if
 * none). */
static void host_check(const struct domain_def *def, char *out, size_t len)
{
	char mem[64];

	out[0] = 0;
	for (unsigned i = 0; i < def->ndisks; i++) {
		const struct domain_disk *k = &def->disks[i];
		struct stat st;

		if (stat(k->path, &st) < 0)
			add_reason(out, len, "disk %s does not exist (no shared storage?)", k->path);
		else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
			add_reason(out, len, "disk %s is not a file or block device", k->path);
		else if (access(k->path, k->readonly ? R_OK : R_OK | W_OK) < 0)
			add_reason(out, len, "disk %s is not accessible", k->path);
	}
	for (unsigned i = 0; i < def->nnets; i++) {
		if (!if_nametoindex(def->nets[i].tap))
			add_reason(out, len, "tap %s does not exist", def->nets[i].tap);
		else if (!is_tap(def->nets[i].tap))
			add_reason(out, len, "interface %s is not a tap", def->nets[i].tap);
	}
	if (mem_available() < def->memory) {
		snprintf(mem, sizeof(mem), "%llu MiB", (unsigned long long)(def->memory >> 20));
		add_reason(out, len, "not enough free memory for %s", mem);
	}
	if (def->serial == DOMAIN_CHR_FILE && def->serial_path) {
		int fd = open(def->serial_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0)
			add_reason(out, len, "cannot write the console file %s", def->serial_path);
		else
			close(fd);
	}
}

/* True when TCP port is in LISTEN state in this network namespace. */
static bool port_listening(unsigned port)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	char line[512];
	bool found = false;

	for (size_t i = 0; i < 2 && !found; i++) {
		FILE *f = fopen(files[i], "re");

		if (!f)
			continue;
		while (!found && fgets(line, sizeof(line), f)) {
			unsigned lport, st;
			char *colon = strchr(line, ':');

			/* "  0: 00000000:3E80 00000000:0000 0A ..." */
			colon = colon ? strchr(colon + 1, ':') : NULL;
			if (colon && sscanf(colon + 1, "%x %*s %x", &lport, &st) == 2 &&
			    lport == port && st == 0x0A)
				found = true;
		}
		fclose(f);
	}
	return found;
}

static void random_token(char *out, size_t len)
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, 0x5a, sizeof(b));
	for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < len; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Where the source connects to: the host it reached us at. */
static void dest_host(struct client *cl, json_object *args, char *out, size_t len)
{
	const char *h = NULL;
	json_object *v;

	if (json_object_object_get_ex(args, "listen-host", &v) && json_object_get_string(v)[0])
		h = json_object_get_string(v);
	else if (cl->tcp && cl->local_host[0])
		h = cl->local_host;
	snprintf(out, len, "%s", h ? h : "127.0.0.1");
}

/* Starts the incoming ferry-vmm on a free port of the range (lock held). */
static int launch_incoming(struct client *cl, struct dom *dom, bool paused, const char *host,
			   json_object *ret, char *err, size_t errlen)
{
	struct daemon *d = cl->d;
	unsigned span = d->port_hi - d->port_lo + 1;
	char token[40], uri[300];
	int r = -EADDRINUSE;

	random_token(token, sizeof(token));
	for (unsigned tries = 0; tries < span && tries < 16; tries++) {
		unsigned port = d->port_lo + (d->next_port++ % span);

		if (port_listening(port))
			continue;
		snprintf(uri, sizeof(uri), "tcp:0.0.0.0:%u", port);
		r = dom_launch_locked(d, dom, paused, uri, token, err, errlen);
		if (r)
			return r;
		/* Wait until it listens (or gives up: the port was taken meanwhile). */
		for (int i = 0; i < 200 && dom->proc.pid && !port_listening(port); i++) {
			pthread_mutex_unlock(&d->lock);
			usleep(10000);
			pthread_mutex_lock(&d->lock);
		}
		if (dom->proc.pid && port_listening(port)) {
			snprintf(uri, sizeof(uri), strchr(host, ':') ? "tcp:[%s]:%u" : "tcp:%s:%u",
				 host, port);
			json_object_object_add(ret, "uri", json_object_new_string(uri));
			json_object_object_add(ret, "token", json_object_new_string(token));
			return 0;
		}
		if (dom->proc.pid) {
			pthread_mutex_unlock(&d->lock);
			dom_stop_process(d, dom, END_INCOMING_FAILED, 0);
			pthread_mutex_lock(&d->lock);
		}
		r = -EADDRINUSE;
	}
	snprintf(err, errlen, "no free migration port in %u-%u", d->port_lo, d->port_hi);
	return r;
}

/* Offline: the definition only. */
static json_object *prepare_offline(struct daemon *d, struct domain_def *def, struct cmd_error *e)
{
	struct dom *dom = dom_lookup_name_locked(d, def->name);
	struct domain_def *old = NULL;

	if (!dom) {
		dom = dom_new_locked(d, def);
		dom->refs++;
	} else {
		old = dom->def;
		dom->def = def;
	}
	if (dom_save_def_locked(d, dom)) {
		dom->def = old;
		if (!old && !dom->proc.pid)
			dom_forget_locked(d, dom);
		domain_def_free(def);
		free(def);
		dom_put_locked(d, dom);
		return cmd_fail(e, "MigrationRefused", "cannot store the definition here");
	}
	if (old) {
		domain_def_free(old);
		free(old);
	}
	log_info("%s: definition migrated in (offline)", dom->name);
	dom_put_locked(d, dom);
	return json_object_new_object();
}

static bool name_uuid_free(struct daemon *d, const struct domain_def *def, char *why, size_t len)
{
	for (struct dom *dom = d->doms; dom; dom = dom->next) {
		bool same_name = !strcmp(dom->name, def->name);
		bool same_uuid = !memcmp(dom->uuid, def->uuid, 16);

		if ((same_name || same_uuid) && dom->proc.pid) {
			add_reason(why, len, "domain '%s' is already active here", dom->name);
			return false;
		}
		if (same_name != same_uuid) {
			add_reason(why, len, "a different domain '%s' is defined here with that name "
				   "or uuid", dom->name);
			return false;
		}
	}
	return true;
}

static const struct arg_spec prepare_args[] = {
	{ "xml", ARG_STRING }, { "offline", ARG_BOOL }, { "persistent", ARG_BOOL },
	{ "suspend", ARG_BOOL }, { "listen-host", ARG_STRING }, { NULL, 0 },
};

static json_object *cmd_prepare(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	const char *xml;
	struct domain_def *def;
	char why[1024] = "", err[512], host[128];
	json_object *ret = NULL;
	struct dom *dom;

	if (!(xml = arg_str(args, "xml", true, e)))
		return NULL;
	def = calloc(1, sizeof(*def));
	if (!def)
		return cmd_fail(e, "GenericError", "out of memory");
	if (domain_parse(xml, strlen(xml), def, err, sizeof(err))) {
		free(def);
		return cmd_fail(e, "MigrationRefused", "the destination refuses the definition: %s",
				err);
	}
	pthread_mutex_lock(&d->lock);
	if (!name_uuid_free(d, def, why, sizeof(why)))
		goto refuse;
	if (arg_bool(args, "offline")) {
		ret = prepare_offline(d, def, e);
		pthread_mutex_unlock(&d->lock);
		return ret;
	}
	host_check(def, why, sizeof(why));
	if (why[0])
		goto refuse;
	dom = dom_lookup_name_locked(d, def->name);
	if (!dom) {
		dom = dom_new_locked(d, def);
		dom->refs++;
		dom->def = NULL; /* transient until the guest runs here and --persistent */
	}
	dom->live = def;
	def = NULL;
	dom->persist_on_arrival = arg_bool(args, "persistent");
	dom->job.start_ns = time_now_ns();
	dom->busy = true;
	dest_host(cl, args, host, sizeof(host));
	ret = json_object_new_object();
	if (launch_incoming(cl, dom, arg_bool(args, "suspend"), host, ret, err, sizeof(err))) {
		json_object_put(ret);
		ret = cmd_fail(e, "MigrationRefused", "the destination cannot start the VM: %s", err);
		if (!dom->proc.pid && dom->live) {
			domain_def_free(dom->live);
			free(dom->live);
			dom->live = NULL;
			if (!dom->def && dom->listed)
				dom_forget_locked(d, dom);
		}
	} else {
		dom_save_run_locked(d, dom);
		log_info("%s: waiting for its migration", dom->name);
	}
	dom->busy = false;
	dom_put_locked(d, dom);
	pthread_mutex_unlock(&d->lock);
	return ret;
refuse:
	pthread_mutex_unlock(&d->lock);
	cmd_fail(e, "MigrationRefused", "the destination cannot run '%s': %s", def->name, why);
	domain_def_free(def);
	free(def);
	return NULL;
}

static const struct arg_spec finish_args[] = {
	{ "domain", ARG_STRING }, { "ok", ARG_BOOL }, { "job", ARG_OBJECT }, { NULL, 0 },
};

static json_object *cmd_finish(struct client *cl, json_object *args, struct cmd_error *e)
{
	struct daemon *d = cl->d;
	bool ok = arg_bool(args, "ok");
	json_object *job = NULL;
	uint64_t deadline = time_now_ns() + FINISH_WAIT_MS * 1000000ull;
	json_object *ret = NULL;
	struct dom *dom;

	pthread_mutex_lock(&d->lock);
	dom = arg_domain_locked(d, args, e);
	if (!dom) {
		pthread_mutex_unlock(&d->lock);
		if (ok)
			return NULL;
		e->cls = NULL; /* nothing here: nothing to undo */
		ret = json_object_new_object();
		json_object_object_add(ret, "state", json_object_new_string("shut off"));
		return ret;
	}
	/* The incoming VM either starts (monitor connects) or ends. */
	while (ok && dom->incoming && dom->proc.pid && time_now_ns() < deadline)
		dom_wait_locked(d, dom, 100);
	if (!ok && dom->incoming && dom->proc.pid) {
		pthread_mutex_unlock(&d->lock);
		dom_stop_process(d, dom, END_INCOMING_FAILED, 0);
		pthread_mutex_lock(&d->lock);
	}
	/* The source's figures become this side's completed job (domjobinfo
	 * --completed here, as libvirt keeps it on the destination). */
	if (ok && dom->proc.pid && !dom->incoming &&
	    json_object_object_get_ex(args, "job", &job) &&
	    json_object_is_type(job, json_type_object)) {
		json_object_put(dom->last_job.info);
		dom->last_job = (struct job){ .type = JOB_COMPLETED, .op = JOB_OP_IN,
					      .start_ns = dom->job.start_ns, .end_ns = time_now_ns(),
					      .info = json_object_get(job), .percent = 100 };
	}
	ret = json_object_new_object();
	json_object_object_add(ret, "state", json_object_new_string(
		dom->proc.pid && !dom->incoming ? dom_state_name(dom->state) : "shut off"));
	dom_put_locked(d, dom);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

const struct cmd mig_in_cmds[] = {
	{ "migrate-prepare", cmd_prepare, NULL, prepare_args },
	{ "migrate-finish", cmd_finish, NULL, finish_args },
	{ NULL, NULL, NULL, NULL },
};
