/* ferryd: one per host. Keeps domain definitions, runs and watches ferry-vmm
 * processes, serves the ferry CLI and other hosts' ferryd (docs/ferryd-rpc.md).
 *
 *   ferryd [--state-dir DIR] [--socket PATH] [--listen ferry+tcp://HOST:PORT/]
 *          [--migration-ports LOW-HIGH] [--vmm PATH] [--verbose]
 *
 * VMs outlive ferryd: stopping it (SIGTERM) leaves them running, and the
 * next ferryd on the same state directory takes them back. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rpc.h"
#include "common/util.h"
#include "daemon/daemon.h"
#include "daemon/server.h"

#define DEFAULT_STATE_DIR "/var/lib/ferry"

struct options {
	const char *state_dir;
	const char *socket;
	const char *listen;
	const char *vmm;
	unsigned port_lo, port_hi;
	int incoming_timeout;
	bool verbose;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ferryd [options]\n"
		"  --state-dir DIR          definitions, run records, logs (default %s)\n"
		"  --socket PATH            local RPC socket, mode 0600 (default %s)\n"
		"  --listen URI             also accept ferry+tcp://HOST:PORT/ (no authentication:\n"
		"                           trusted networks only)\n"
		"  --migration-ports LO-HI  ports incoming migrations listen on (default 49152-49215)\n"
		"  --vmm PATH               the ferry-vmm program (default: next to ferryd)\n"
		"  --incoming-timeout S     an incoming VM no source reaches ends after S s\n"
		"                           (default 60; 0: never)\n"
		"  --verbose                debug messages\n",
		DEFAULT_STATE_DIR, RPC_DEFAULT_SOCKET);
}

static int parse_ports(const char *s, unsigned *lo, unsigned *hi)
{
	char end;

	if (sscanf(s, "%u-%u%c", lo, hi, &end) != 2 || !*lo || *lo > *hi || *hi > 65535)
		return -EINVAL;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "state-dir", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "migration-ports", required_argument, NULL, 'p' },
		{ "vmm", required_argument, NULL, 'm' },
		{ "incoming-timeout", required_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int c;

	*o = (struct options){ .state_dir = DEFAULT_STATE_DIR, .socket = RPC_DEFAULT_SOCKET,
			       .port_lo = 49152, .port_hi = 49215, .incoming_timeout = 60 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->state_dir = optarg; break;
		case 's': o->socket = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'm': o->vmm = optarg; break;
		case 'v': o->verbose = true; break;
		case 'h': usage(stdout); exit(0);
		case 'p':
			if (parse_ports(optarg, &o->port_lo, &o->port_hi)) {
				log_error("--migration-ports: expected LOW-HIGH within 1-65535, not '%s'",
					  optarg);
				return -EINVAL;
			}
			break;
		case 't':
			if (parse_u64(optarg, &v) || v > 86400) {
				log_error("--incoming-timeout: 0 (none) to 86400 seconds, not '%s'",
					  optarg);
				return -EINVAL;
			}
			o->incoming_timeout = (int)v;
			break;
		default:
			log_error("unknown option %s (see --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s' (see --help)", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

static int find_vmm(const struct options *o, char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	if (o->vmm) {
		snprintf(out, len, "%s", o->vmm);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			return -errno;
		self[n] = 0;
		snprintf(out, len, "%s/ferry-vmm", dirname(self));
	}
	if (access(out, X_OK)) {
		log_error("ferry-vmm not found at %s (give --vmm PATH)", out);
		return -ENOENT;
	}
	return 0;
}

static int open_listeners(const struct options *o, int *unix_fd, int *tcp_fd)
{
	char err[512];
	struct rpc_uri u;

	*tcp_fd = -1;
	*unix_fd = server_listen_unix(o->socket, err, sizeof(err));
	if (*unix_fd < 0) {
		log_error("%s", err);
		return *unix_fd;
	}
	if (!o->listen)
		return 0;
	if (rpc_uri_parse(o->listen, &u, err, sizeof(err)) || u.transport != RPC_TCP) {
		log_error("--listen: expected ferry+tcp://HOST:PORT/, not '%s'", o->listen);
		return -EINVAL;
	}
	*tcp_fd = server_listen_tcp(u.host, u.port, err, sizeof(err));
	if (*tcp_fd < 0) {
		log_error("%s", err);
		return *tcp_fd;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct daemon d = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct options o;
	char err[512];
	int unix_fd, tcp_fd, sig_fd, ret;
	sigset_t sigs;

	log_init("ferryd");
	if (parse_options(argc, argv, &o))
		return 2;
	log_set_verbose(o.verbose);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_IGN); /* VM waiters are reaped by the kernel */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sig_fd < 0) {
		/* Without it SIGTERM would be blocked and never read. */
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	if (find_vmm(&o, d.vmm_path, sizeof(d.vmm_path)))
		return 1;
	if (store_open(&d.store, o.state_dir, err, sizeof(err))) {
		log_error("%s", err);
		return 1;
	}
	if (gethostname(d.hostname, sizeof(d.hostname)))
		snprintf(d.hostname, sizeof(d.hostname), "localhost");
	d.port_lo = o.port_lo;
	d.port_hi = o.port_hi;
	d.incoming_timeout_s = o.incoming_timeout;
	pthread_mutex_lock(&d.lock);
	doms_load(&d);
	pthread_mutex_unlock(&d.lock);
	if (open_listeners(&o, &unix_fd, &tcp_fd))
		return 1;
	log_info("ready: state %s, socket %s%s%s", o.state_dir, o.socket,
		 o.listen ? ", listening on " : "", o.listen ? o.listen : "");
	ret = server_run(&d, unix_fd, tcp_fd, sig_fd);
	log_info("stopping; running VMs go on and the next ferryd takes them back");
	unlink_stale_socket(o.socket);
	store_close(&d.store);
	return ret ? 1 : 0;
}
