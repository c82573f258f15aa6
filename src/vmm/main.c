/* ferry-vmm: one process, one VM.
 *
 *   ferry-vmm --kernel PATH [--initrd PATH] [--cmdline STR] [--memory MIB]
 *             [--cpus N] [--serial stdio|file:PATH|unix:PATH|null]
 *             [--control PATH] [--name NAME] [--paused] [--no-reboot]
 *   ferry-vmm --restore FILE [--kernel PATH [--initrd PATH]] [--serial SPEC]
 *             [--control PATH] [--paused] [--no-reboot]
 *   ferry-vmm --incoming tcp:HOST:PORT|unix:PATH [--incoming-token TOKEN]
 *             [--kernel PATH [--initrd PATH]] [--serial SPEC] [--control PATH]
 *             [--paused] [--no-reboot]
 *
 * A guest reset (reboot) boots the kernel again in the same process, as
 * QEMU does: with --no-reboot, or for a restored or migrated VM given no
 * --kernel, the VM ends instead.
 *
 * Exit status: 0 when the guest powered off or reset (and did not
 * reboot), or on quit or SIGINT/SIGTERM; 1 when the VM could not start or
 * stopped on an error. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "migration/incoming.h"
#include "migration/state.h"
#include "vmm/monitor.h"
#include "vm/vm.h"

#define DEFAULT_MEMORY_MIB 512

struct options {
	struct vm_config vm;
	const char *control;
	const char *restore;   /* --restore FILE */
	const char *incoming;  /* --incoming URI */
	const char *incoming_token;
	uint64_t incoming_timeout; /* --incoming-timeout S, 0: none */
	bool shape_given;      /* --cmdline/--memory/--cpus/--cpu */
	const char *boot_kernel; /* --kernel, --initrd: what a reboot boots */
	const char *boot_initrd;
	bool no_reboot;        /* --no-reboot: a guest reset ends the VM */
	bool serial_given;
	bool name_given;
	bool debug_ram_hash;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferry-vmm --kernel PATH [options]\n"
		"       ferry-vmm --restore FILE [--kernel PATH [--initrd PATH]] [--serial SPEC]\n"
		"                 [--control PATH] [--paused] [--no-reboot]\n"
		"       ferry-vmm --incoming URI [--incoming-token TOKEN] [--kernel PATH\n"
		"                 [--initrd PATH]] [--serial SPEC] [--control PATH] [--paused]\n"
		"                 [--no-reboot]\n"
		"  --kernel PATH      PVH ELF kernel (Linux vmlinux, the ferry test guest); with\n"
		"                     --restore or --incoming, what a guest reboot boots\n"
		"  --initrd PATH      initial ramdisk, passed as PVH module 0\n"
		"  --cmdline STR      kernel command line\n"
		"  --memory MIB       guest RAM in MiB (default %d)\n"
		"  --cpus N           vCPUs (default 1)\n"
		"  --cpu host[,-FEATURE|FEATURE=off|+FEATURE...]\n"
		"                     the guest's CPUID: what KVM supports here (default),\n"
		"                     less the features turned off (libvirt's or QEMU's\n"
		"                     names: kvm_pv_unhalt, avx2); +FEATURE requires one\n"
		"  --serial SPEC      console: stdio (default), file:PATH, unix:PATH, null\n"
		"  --control PATH     control socket (JSON lines, QMP-style)\n"
		"  --name NAME        VM name\n"
		"  --paused           do not run the guest until the control command cont\n"
		"  --no-reboot        a guest reboot ends the VM (exit 0) instead of booting\n"
		"                     the kernel again\n"
		"  --disk PATH[,readonly=on][,cache=none|writeback][,serial=ID]\n"
		"                     a virtio-blk disk on a raw image (repeatable; give the\n"
		"                     same disks to --restore and --incoming)\n"
		"  --net tap=IFNAME[,mac=MAC]\n"
		"                     a virtio-net NIC on an existing tap device (repeatable)\n"
		"  --restore FILE     restore a VM saved with the control command save; its\n"
		"                     shape comes from the file, its serial backend by default\n"
		"  --incoming URI     wait for a migration on tcp:HOST:PORT or unix:PATH; the\n"
		"                     VM's shape comes from the stream (the control socket\n"
		"                     opens once the migrated guest runs)\n"
		"  --incoming-token T drop connections that do not present token T first\n"
		"  --incoming-timeout S  exit 1 if no source has connected within S seconds\n"
		"  --debug-ram-hash   with --restore: print a checksum of guest RAM after loading\n"
		"  --verbose          debug messages\n",
		DEFAULT_MEMORY_MIB);
}

static int parse_number(const char *opt, const char *arg, uint64_t max, uint64_t *out)
{
	if (parse_u64(arg, out) || *out > max) {
		log_error("%s: '%s' is not a number from 0 to %llu", opt, arg,
			  (unsigned long long)max);
		return -EINVAL;
	}
	return 0;
}

/* --disk PATH[,readonly=on|off][,cache=none|writeback][,serial=ID] */
static int parse_disk(const char *arg, struct vm_config *vm)
{
	struct virtio_blk_config *d;
	const char *p = strchr(arg, ',');

	if (vm->ndisks == VM_MAX_DISKS) {
		log_error("--disk: at most %d disks", VM_MAX_DISKS);
		return -EINVAL;
	}
	d = &vm->disks[vm->ndisks];
	*d = (struct virtio_blk_config){ .path = arg };
	if (p == arg || !arg[0]) {
		log_error("--disk '%s': the image path comes first", arg);
		return -EINVAL;
	}
	if (p) {
		char *path = strndup(arg, (size_t)(p - arg));

		if (!path)
			return -ENOMEM;
		d->path = path; /* lives as long as the process */
	}
	while (p && *p == ',') {
		const char *opt = p + 1, *end = strchr(opt, ','), *eq;
		size_t n = end ? (size_t)(end - opt) : strlen(opt);

		eq = memchr(opt, '=', n);
#define OPT_IS(k) (eq && (size_t)(eq - opt) == strlen(k) && !strncmp(opt, k, strlen(k)))
#define VAL_IS(v) (eq && n - (size_t)(eq + 1 - opt) == strlen(v) && \
		   !strncmp(eq + 1, v, strlen(v)))
		if (OPT_IS("readonly") && (VAL_IS("on") || VAL_IS("off"))) {
			d->readonly = VAL_IS("on");
		} else if (OPT_IS("cache") && (VAL_IS("none") || VAL_IS("writeback"))) {
			d->direct = VAL_IS("none");
		} else if (OPT_IS("serial") && n - (size_t)(eq + 1 - opt) <= VIRTIO_BLK_ID_BYTES) {
			memcpy(d->serial, eq + 1, n - (size_t)(eq + 1 - opt));
		} else {
			log_error("--disk %s: bad option '%.*s' (readonly=on|off, "
				  "cache=none|writeback, serial=ID of at most %d bytes)", d->path,
				  (int)n, opt, VIRTIO_BLK_ID_BYTES);
			return -EINVAL;
		}
#undef OPT_IS
#undef VAL_IS
		p = end;
	}
	vm->ndisks++;
	return 0;
}

/* --net tap=IFNAME[,mac=MAC] */
static int parse_net(const char *arg, struct vm_config *vm)
{
	struct virtio_net_config *n;
	char buf[128], *save = NULL, *tok;

	if (vm->nnets == VM_MAX_NETS) {
		log_error("--net: at most %d NICs", VM_MAX_NETS);
		return -EINVAL;
	}
	n = &vm->nets[vm->nnets];
	*n = (struct virtio_net_config){ .mac = { 0x52, 0x54, 0x00, 0x12, 0x34,
						  (uint8_t)(0x56 + vm->nnets) } };
	if (strlen(arg) >= sizeof(buf)) {
		log_error("--net '%s': too long", arg);
		return -EINVAL;
	}
	strcpy(buf, arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "tap=", 4) && tok[4] && strlen(tok + 4) <= NET_IFNAME_MAX &&
		    !strchr(tok + 4, '/')) {
			strcpy(n->tap, tok + 4);
		} else if (!strncmp(tok, "mac=", 4) && virtio_net_parse_mac(tok + 4, n->mac)) {
			n->mac_given = true;
		} else {
			log_error("--net %s: bad option '%s' (tap=IFNAME of at most %d bytes, "
				  "mac=52:54:00:xx:xx:xx, unicast)", arg, tok, NET_IFNAME_MAX);
			return -EINVAL;
		}
	}
	if (!n->tap[0]) {
		log_error("--net %s: tap=IFNAME is required", arg);
		return -EINVAL;
	}
	vm->nnets++;
	return 0;
}

/* One option (getopt's c, with optarg; opt: the option as written, for
 * the error); 0 or -EINVAL with an error logged. */
static int take_option(struct options *o, int c, const char *opt)
{
	uint64_t v;

	switch (c) {
	case 'k': o->vm.kernel = o->boot_kernel = optarg; break;
	case 'i': o->vm.initrd = o->boot_initrd = optarg; break;
	case 'r': o->no_reboot = true; break;
	case 'c': o->vm.cmdline = optarg; o->shape_given = true; break;
	case 'U': o->vm.cpu = optarg; o->shape_given = true; break;
	case 's': o->vm.serial = optarg; o->serial_given = true; break;
	case 'C': o->control = optarg; break;
	case 'N': o->vm.name = optarg; o->name_given = true; break;
	case 'p': o->vm.start_paused = true; break;
	case 'R': o->restore = optarg; break;
	case 'H': o->debug_ram_hash = true; break;
	case 'I': o->incoming = optarg; break;
	case 'T': o->incoming_token = optarg; break;
	case 'O':
		if (parse_u64(optarg, &o->incoming_timeout) || !o->incoming_timeout ||
		    o->incoming_timeout > 86400) {
			log_error("--incoming-timeout: '%s' is not a number of seconds from 1 "
				  "to 86400", optarg);
			return -EINVAL;
		}
		break;
	case 'v': log_set_verbose(true); break;
	case 'D':
		if (parse_disk(optarg, &o->vm))
			return -EINVAL;
		break;
	case 'E':
		if (parse_net(optarg, &o->vm))
			return -EINVAL;
		break;
	case 'm':
		if (parse_number("--memory", optarg, UINT32_MAX, &o->vm.memory_mib))
			return -EINVAL;
		o->shape_given = true;
		break;
	case 'n':
		if (parse_number("--cpus", optarg, UINT32_MAX, &v))
			return -EINVAL;
		o->vm.cpus = (unsigned)v;
		o->shape_given = true;
		break;
	case 'h':
		usage(stdout);
		exit(0);
	default:
		log_error("unknown or incomplete option '%s' (see --help)", opt);
		return -EINVAL;
	}
	return 0;
}

/* The options that do not go together; 0 or -EINVAL with an error logged. */
static int check_options(const struct options *o)
{
	if (o->incoming && o->restore) {
		log_error("--incoming and --restore: choose one");
		return -EINVAL;
	}
	if (o->incoming && o->shape_given) {
		log_error("--incoming: the VM's command line, memory and vCPUs come from the "
			  "migration stream; do not give --cmdline, --memory, --cpus or --cpu");
		return -EINVAL;
	}
	if (o->boot_initrd && !o->boot_kernel) {
		log_error("--initrd goes with --kernel");
		return -EINVAL;
	}
	if (o->incoming_timeout && !o->incoming) {
		log_error("--incoming-timeout goes with --incoming");
		return -EINVAL;
	}
	if (o->incoming_token && !o->incoming) {
		log_error("--incoming-token goes with --incoming");
		return -EINVAL;
	}
	if (o->incoming_token && (!o->incoming_token[0] ||
				  strlen(o->incoming_token) > MIG_MAX_TOKEN)) {
		log_error("--incoming-token: 1 to %u bytes", MIG_MAX_TOKEN);
		return -EINVAL;
	}
	if (o->restore && o->shape_given) {
		log_error("--restore: the VM's command line, memory and vCPUs come from the "
			  "saved file; do not give --cmdline, --memory, --cpus or --cpu");
		return -EINVAL;
	}
	if (!o->restore && !o->incoming && !o->vm.kernel) {
		log_error("--kernel PATH is required (see --help)");
		return -EINVAL;
	}
	if (!o->restore && !o->incoming && o->debug_ram_hash) {
		log_error("--debug-ram-hash goes with --restore or --incoming");
		return -EINVAL;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'n' },
		{ "cpu", required_argument, NULL, 'U' },
		{ "serial", required_argument, NULL, 's' },
		{ "control", required_argument, NULL, 'C' },
		{ "name", required_argument, NULL, 'N' },
		{ "paused", no_argument, NULL, 'p' },
		{ "no-reboot", no_argument, NULL, 'r' },
		{ "restore", required_argument, NULL, 'R' },
		{ "debug-ram-hash", no_argument, NULL, 'H' },
		{ "incoming", required_argument, NULL, 'I' },
		{ "incoming-token", required_argument, NULL, 'T' },
		{ "incoming-timeout", required_argument, NULL, 'O' },
		{ "disk", required_argument, NULL, 'D' },
		{ "net", required_argument, NULL, 'E' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	*o = (struct options){ .vm = { .memory_mib = DEFAULT_MEMORY_MIB, .cpus = 1,
				       .serial = "stdio", .name = "ferry" } };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1)
		if (take_option(o, c, argv[optind - 1]))
			return -EINVAL;
	if (optind < argc) {
		log_error("unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	return check_options(o);
}

static int signals_open(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* Blocked in every thread (they inherit the mask), read here. */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The main loop: control clients, console input and output, signals and
 * the vCPUs' stop requests. Returns the reason the VM stopped. A pass over
 * them is made even when the VM stopped already, so that a guest that
 * resets as soon as it runs cannot starve quit and signals (which a
 * pending reset gives way to, vm_request_stop). */
static enum vm_stop_reason run_loop(struct vm *vm, struct monitor *mon, int sig_fd)
{
	enum vm_stop_reason reason;
	bool console_writable = false;

	for (bool first = true;; first = false) {
		struct pollfd fds[4 + CONTROL_MAX_CLIENTS + 1];
		int console_fd = chardev_poll_fd(&vm->console);
		bool want_console = console_fd >= 0 &&
				    (vm->console.kind == CHARDEV_UNIX && vm->console.in_fd < 0 ?
				     true : vm_console_wants_input(vm));
		unsigned n = 0, nctl;
		int timeout = console_fd >= 0 && !want_console ? 10 : -1;

		reason = vm_stop_reason(vm);
		if (reason != VM_STOP_NONE && !first)
			break;
		if (reason != VM_STOP_NONE)
			timeout = 0;
		fds[n++] = (struct pollfd){ .fd = vm->event_fd, .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
		fds[n++] = (struct pollfd){ .fd = want_console ? console_fd : -1, .events = POLLIN };
		/* Output a slow console reader held back: sent as it catches up. */
		fds[n++] = (struct pollfd){ .fd = vm_console_output(vm, console_writable),
					    .events = POLLOUT };
		console_writable = false;
		nctl = control_poll_fds(&mon->ctl, fds + n);
		/* A full UART FIFO is polled again shortly, once the guest read it. */
		if (poll(fds, n + nctl, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			vm_request_stop(vm, VM_STOP_ERROR);
			break;
		}
		if (fds[0].revents) {
			uint64_t cnt;

			if (read(vm->event_fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
				log_warn("eventfd: %s", strerror(errno));
		}
		if (fds[1].revents) {
			struct signalfd_siginfo si;

			if (read(sig_fd, &si, sizeof(si)) == sizeof(si))
				log_info("terminating on signal %u", si.ssi_signo);
			vm_request_stop(vm, VM_STOP_SIGNAL);
		}
		if (fds[2].revents)
			vm_console_input(vm);
		console_writable = fds[3].revents != 0;
		control_dispatch(&mon->ctl, fds + n, nctl);
		monitor_poll(mon);
	}
	return vm_stop_reason(vm);
}

/* The VM's shape from a saved or migrated stream's VM_INFO; host-side
 * resources from the command line. */
static void take_shape(struct options *o, const struct state_info *info)
{
	o->vm.memory_mib = info->ram_size >> 20;
	o->vm.cpus = info->ncpus;
	o->vm.cpu = info->cpu;
	o->vm.cmdline = info->cmdline;
	o->vm.kernel = NULL; /* the state is loaded, not booted */
	o->vm.initrd = NULL;
	if (!o->name_given && info->name[0])
		o->vm.name = info->name;
	/* A stream names host paths; taking them on trust would let a crafted
	 * one make ferry-vmm write or unlink any file. Only stdio and null
	 * carry over by themselves; a file or socket must be given again. */
	if (!o->serial_given && (!strcmp(info->serial, "stdio") || !strcmp(info->serial, "null")))
		o->vm.serial = info->serial;
	else if (!o->serial_given && info->serial[0])
		log_info("the VM's console was --serial %s; here it is on stdio "
			 "(give --serial to choose)", info->serial);
	o->vm.serial_append = true; /* a console log file goes on */
	o->vm.incoming = true;      /* disks open once the guest may run */
}

/* --incoming: waits for a source, builds the VM of the shape it sends,
 * loads everything and takes part in the hand-over. On success the VM's
 * vCPU threads run (or wait, paused) and the monitor is open. Returns 0,
 * 1 when a signal ended the wait (nothing ran), or -errno. */
static int incoming_vm(struct vm *vm, struct options *o, struct monitor *mon, int sig_fd,
		       struct state_info *info)
{
	struct incoming in;
	bool run = false;
	uint64_t t;
	int ret;

	if (incoming_listen(&in, o->incoming))
		return -EINVAL;
	ret = incoming_accept(&in, o->incoming_token, sig_fd, (unsigned)o->incoming_timeout);
	if (ret == -EINTR) {
		log_info("terminating on a signal while waiting for a migration; no VM ran");
		incoming_close(&in);
		return 1;
	}
	if (ret)
		goto out;
	/* The VM's config points into the info: it lives as long as main. */
	*info = in.info;
	memset(&in.info, 0, sizeof(in.info));
	take_shape(o, info);
	ret = vm_create(vm, &o->vm);
	if (ret) {
		incoming_refuse(&in, "the destination cannot build a %llu MiB, %u-vCPU VM (its "
				"log says why)", (unsigned long long)o->vm.memory_mib, o->vm.cpus);
		goto out;
	}
	ret = incoming_load(&in, vm);
	/* The vCPU threads are made now, parked: GO then only releases them. */
	vm->cfg.start_paused = true;
	ret = ret ?: vm_start(vm);
	ret = ret ?: incoming_handover(&in, vm, &run);
	if (ret) {
		vm_destroy(vm);
		goto out;
	}
	/* GO: the guest is ours now. Start it, then say so. */
	t = time_now_ns();
	if (run && !o->vm.start_paused)
		vm_resume(vm);
	incoming_started(&in);
	log_debug("incoming: vCPUs released in %llu us",
		  (unsigned long long)(time_now_ns() - t) / 1000);
	ret = monitor_open(mon, vm, o->control);
	if (ret)
		vm_request_stop(vm, VM_STOP_ERROR);
	ret = 0; /* the VM exists; main's loop reports how it ends */
out:
	incoming_close(&in);
	return ret;
}

/* Builds the VM a saved file describes and loads its state: nothing runs
 * until every record has been read and checked. Host-side resources come
 * from the command line, or the saved ones (serial) by default. */
static int restore_vm(struct vm *vm, struct options *o, struct state_info *info)
{
	struct stream_reader r;
	uint64_t t0, t1;
	int fd, ret;

	fd = open(o->restore, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("--restore %s: %s", o->restore, strerror(errno));
		return -errno;
	}
	ret = state_read_info(&r, fd, info);
	if (ret) {
		log_error("--restore %s: %s", o->restore, r.error);
		goto out;
	}
	take_shape(o, info);
	t0 = time_now_ns();
	ret = vm_create(vm, &o->vm);
	if (ret)
		goto out;
	t1 = time_now_ns();
	ret = state_load(vm, &r, true);
	log_debug("restore: VM built in %llu ms, state loaded in %llu ms",
		  (unsigned long long)(t1 - t0) / 1000000,
		  (unsigned long long)(time_now_ns() - t1) / 1000000);
	if (ret) {
		log_error("--restore %s: %s", o->restore, r.error);
		vm_destroy(vm);
		goto out;
	}
	if (o->debug_ram_hash)
		log_info("ram-hash=%08x (after loading %s)", state_ram_hash(vm), o->restore);
out:
	stream_reader_free(&r);
	close(fd);
	return ret;
}

/* A guest reset: the VM boots again, in place (vm_reboot), unless
 * --no-reboot or there is no kernel to boot. 1 when it runs again, 0
 * when it ends as it should, -errno when the reboot failed. */
static int guest_reboot(struct vm *vm, const struct options *o, struct monitor *mon,
			enum vm_stop_reason reason)
{
	const char *who = reason == VM_STOP_RESET ? "the guest" : "system_reset";
	int ret;

	if (o->no_reboot) {
		log_info("%s reset the machine; --no-reboot: the VM ends here", who);
		return 0;
	}
	if (!o->boot_kernel) {
		log_info("%s reset the machine; this VM was %s without --kernel, so there is "
			 "nothing to boot: the VM ends here", who,
			 o->restore ? "restored" : "migrated in");
		return 0;
	}
	log_info("%s reset the machine: booting %s again", who, o->boot_kernel);
	monitor_before_reset(mon);
	ret = vm_reboot(vm, o->boot_kernel, o->boot_initrd, mon->reset_paused);
	if (ret) {
		log_error("reboot: the VM could not be made again (%s): it ends here",
			  strerror(-ret));
		return ret;
	}
	monitor_reset_event(mon, reason);
	return 1;
}

int main(int argc, char **argv)
{
	struct options o;
	struct state_info info = { 0 };
	struct monitor mon = { 0 };
	static struct vm vm;
	enum vm_stop_reason reason;
	int sig_fd, ret;

	log_init("ferry-vmm");
	if (parse_options(argc, argv, &o))
		return 1;
	sig_fd = signals_open();
	if (sig_fd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	if (o.incoming) {
		ret = incoming_vm(&vm, &o, &mon, sig_fd, &info);
		if (ret) {
			state_info_free(&info);
			return ret == 1 ? 0 : 1;
		}
		ret = mon.vm ? 0 : -EIO;
	} else {
		if (o.restore ? restore_vm(&vm, &o, &info) : vm_create(&vm, &o.vm)) {
			state_info_free(&info);
			return 1;
		}
		ret = monitor_open(&mon, &vm, o.control);
		if (ret == 0)
			ret = vm_start(&vm);
	}
	if (ret) {
		monitor_close(&mon);
		vm_destroy(&vm);
		state_info_free(&info);
		return 1;
	}
	for (;;) {
		reason = run_loop(&vm, &mon, sig_fd);
		vm_pause(&vm);
		/* The guest's last words before it powered off or reset: a
		 * slow console reader gets a moment for them. */
		if (reason == VM_STOP_POWEROFF || reason == VM_STOP_RESET)
			vm_console_flush(&vm, 1000);
		if (reason != VM_STOP_RESET && reason != VM_STOP_HOST_RESET)
			break;
		ret = guest_reboot(&vm, &o, &mon, reason);
		if (ret < 0)
			reason = VM_STOP_ERROR;
		if (ret <= 0)
			break;
	}
	if (reason == VM_STOP_ERROR)
		control_event(&mon.ctl, "STOP", NULL);
	monitor_shutdown_event(&mon, reason);
	monitor_close(&mon);
	vm_destroy(&vm);
	state_info_free(&info);
	close(sig_fd);
	return reason == VM_STOP_ERROR ? 1 : 0;
}
