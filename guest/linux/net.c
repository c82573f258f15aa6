/* The agent's network; see net.h. */
#include "net.h"
#include "console.h"
#include "system.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define IFACE           "eth0"
#define EVERY_MS        10
#define NS_PER_MS       1000000ULL
#define LOST_AFTER_NS   (1000 * NS_PER_MS)

enum { PING_ANSWERED = 1, PING_LOST = 2 };

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static int set_addr(int s, unsigned long req, uint32_t addr)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(addr) };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), IFACE);
	memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
	return ioctl(s, req, &ifr) ? -errno : 0;
}

static int set_up(int s, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr))
		return -errno;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr) ? -errno : 0;
}

/* "net=eth0 pci=BB:DD.F mac=... link=up|down", from sysfs. */
static void report_iface(void)
{
	char mac[32] = "?", dev[PATH_MAX] = "?", *pci = dev;
	uint64_t carrier = 0;

	/* device is the virtio device ("virtio1"); its parent the PCI function */
	if (realpath("/sys/class/net/" IFACE "/device/..", dev))
		pci = basename(dev);
	if (!strncmp(pci, "0000:", 5))
		pci += 5;
	sys_read_file("/sys/class/net/" IFACE "/address", mac, sizeof(mac));
	mac[strcspn(mac, "\n")] = '\0';
	sys_read_u64("/sys/class/net/" IFACE "/carrier", &carrier);
	say("net=" IFACE " pci=%s mac=%s link=%s", pci, mac,
	    carrier ? "up" : "down");
}

int net_configure(uint32_t addr, unsigned prefix)
{
	uint32_t mask = prefix == 32 ? ~0u : ~(~0u >> prefix);
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;
	struct in_addr a = { .s_addr = htonl(addr) };

	if (s < 0) {
		r = -errno;
		goto out;
	}
	/* a gratuitous ARP when eth0 comes up: the peer learns us at once */
	write_file("/proc/sys/net/ipv4/conf/all/arp_notify", "1");
	r = set_up(s, "lo");
	r = r ?: set_addr(s, SIOCSIFADDR, addr);
	r = r ?: set_addr(s, SIOCSIFNETMASK, mask);
	r = r ?: set_up(s, IFACE);
	close(s);
out:
	if (r) {
		say("error: ferry.ip: " IFACE ": %s", strerror(-r));
		return r;
	}
	report_iface();
	say("net=" IFACE " ip=%s/%u", inet_ntoa(a), prefix);
	return 0;
}

void ping_sent(struct pinger *p, uint64_t now_ns)
{
	unsigned i = (unsigned)(p->seq % PING_WINDOW);

	p->sent_ns[i] = now_ns;
	p->state[i] = 0;
	p->seq++;
	atomic_fetch_add_explicit(&p->sent, 1, memory_order_relaxed);
}

void ping_reply(struct pinger *p, uint16_t seq16)
{
	/* the latest request with these low 16 bits */
	uint64_t back = (uint16_t)((uint16_t)(p->seq - 1) - seq16), seq;
	unsigned i;

	if (!p->seq || back >= p->seq || back >= PING_WINDOW)
		return;         /* never sent, or forgotten */
	seq = p->seq - 1 - back;
	i = (unsigned)(seq % PING_WINDOW);
	if (p->state[i] & PING_ANSWERED)
		return;         /* a duplicate */
	if (p->state[i] & PING_LOST)
		atomic_fetch_sub_explicit(&p->lost, 1, memory_order_relaxed);
	p->state[i] = PING_ANSWERED;
	atomic_fetch_add_explicit(&p->recv, 1, memory_order_relaxed);
}

void ping_judge(struct pinger *p, uint64_t now_ns)
{
	if (p->seq > PING_WINDOW && p->lost_upto < p->seq - PING_WINDOW)
		p->lost_upto = p->seq - PING_WINDOW;
	for (; p->lost_upto < p->seq; p->lost_upto++) {
		unsigned i = (unsigned)(p->lost_upto % PING_WINDOW);

		if (now_ns - p->sent_ns[i] <= LOST_AFTER_NS)
			break;
		if (!(p->state[i] & PING_ANSWERED)) {
			p->state[i] |= PING_LOST;
			atomic_fetch_add_explicit(&p->lost, 1, memory_order_relaxed);
		}
	}
}

static void send_echo(struct pinger *p, uint64_t now)
{
	struct icmphdr h = { .type = ICMP_ECHO, .un.echo.sequence = htons((uint16_t)p->seq) };
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(p->target) };

	/* the kernel fills in the id (the socket's) and the checksum; a
	 * request it refuses (no route, no neighbour yet) is sent and lost */
	(void)sendto(p->fd, &h, sizeof(h), MSG_DONTWAIT, (struct sockaddr *)&to, sizeof(to));
	ping_sent(p, now);
}

static void read_replies(struct pinger *p)
{
	struct icmphdr h;
	ssize_t n;

	while ((n = recv(p->fd, &h, sizeof(h), MSG_DONTWAIT)) >= 0)
		if (n >= (ssize_t)sizeof(h) && h.type == ICMP_ECHOREPLY)
			ping_reply(p, ntohs(h.un.echo.sequence));
}

static void *pinger_main(void *arg)
{
	struct pinger *p = arg;
	uint64_t next = boottime_ns();

	while (!atomic_load(&p->stop)) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		uint64_t now = boottime_ns();

		if (now >= next) {
			send_echo(p, now);
			next += EVERY_MS * NS_PER_MS;
			if (next <= now)        /* the VM was paused: no catching up */
				next = now + EVERY_MS * NS_PER_MS;
		}
		if (poll(&pfd, 1, (int)((next - now) / NS_PER_MS) + 1) > 0)
			read_replies(p);
		ping_judge(p, boottime_ns());
	}
	return NULL;
}

/* A datagram ICMP socket: the kernel matches the replies to it. Root's
 * group must be in ping_group_range (Linux's default allows nobody). */
static int ping_socket(uint16_t *id)
{
	struct sockaddr_in me = { .sin_family = AF_INET };
	socklen_t len = sizeof(me);
	int fd;

	write_file("/proc/sys/net/ipv4/ping_group_range", "0 0");
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0)
		return -errno;
	/* bound to port 0, the kernel picks the id now */
	if (bind(fd, (struct sockaddr *)&me, sizeof(me)) ||
	    getsockname(fd, (struct sockaddr *)&me, &len)) {
		int err = -errno;

		close(fd);
		return err;
	}
	*id = ntohs(me.sin_port);
	return fd;
}

int pinger_start(struct pinger *p, uint32_t target)
{
	struct in_addr a = { .s_addr = htonl(target) };
	uint16_t id = 0;
	int r;

	*p = (struct pinger){ .target = target };
	p->fd = r = ping_socket(&id);
	if (r >= 0)
		r = -pthread_create(&p->thread, NULL, pinger_main, p);
	if (r < 0) {
		say("error: ferry.ping: %s", strerror(-r));
		if (p->fd >= 0)
			close(p->fd);
		p->fd = -1;
		return r;
	}
	p->running = true;
	say("net=" IFACE " ping=%s id=%u every_ms=%u", inet_ntoa(a), id, EVERY_MS);
	return 0;
}

void pinger_stop(struct pinger *p)
{
	if (!p->running)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	close(p->fd);
	p->running = false;
}
