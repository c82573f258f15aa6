/*
 * NIC discovery and the tiny IPv4 stack (ring 3); see net.h.
 *
 * One address (ferry.ip) on eth0, one neighbour (the ping target) in a
 * one-entry ARP cache. Frames are handled as they come off the rx ring:
 * an ARP request for our address or an ICMP echo request to it is
 * answered from the same call, anything else is dropped.
 *
 * The target's MAC is re-learnt from any ARP frame it sends; and when
 * echo requests have gone unanswered for PROBE_MS, it is asked again
 * (broadcast ARP, every PROBE_MIN_MS at first, backing off to
 * NET_ARP_MS): after a migration to another host, the same address may
 * sit behind another MAC, and frames to the old one are dropped there.
 */
#include "net.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "virtio_net.h"

#define ETH_HLEN        14
#define ETH_P_IP        0x0800
#define ETH_P_ARP       0x0806
#define ARP_LEN         28
#define ARP_REQUEST     1
#define ARP_REPLY       2
#define IP_HLEN         20
#define IP_PROTO_ICMP   1
#define ICMP_ECHOREPLY  0
#define ICMP_ECHO       8
#define ICMP_HLEN       8
#define PING_PAYLOAD    56      /* as ping(8) */
#define PROBE_MS        5       /* unanswered this long: ask the MAC again */
#define PROBE_MIN_MS    10
#define NET_BACKLOG_MS  100     /* late ping slots caught up to this */
#define LOG_PER_SEC     5

enum seq_state { SEQ_FREE, SEQ_PENDING, SEQ_LOST, SEQ_RECEIVED };

struct net_stats net_stats;

static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static u8 rx_mem[NET_MAX][VNET_QUEUE_SIZE][VNET_SLOT_BYTES]
	__attribute__((aligned(4096)));
static u8 tx_mem[NET_MAX][VNET_TX_SLOTS][VNET_SLOT_BYTES]
	__attribute__((aligned(4096)));
static struct vnet nics[NET_MAX];
static u32 nnics;

/* The stack on eth0: written by CPU 0 before "ready", then only by the
 * CPU that runs net_tick (the beat reads net_stats). */
static struct {
	struct vnet *nic;       /* NULL: no ferry.ip (or no NIC) */
	u32 ip, mask;
	u16 ip_id;
	bool ping;
	u32 target;
	u8 target_mac[6];
	bool resolved;
	u64 arp_t;              /* last ARP request for the target */
	u64 probe_gap;          /* current re-probe interval (TSC) */
	u64 silent_since;       /* first request sent since the last reply */
	u16 id;                 /* echo identifier of this boot */
	u64 next_seq;           /* next request's seq (from 1) */
	u64 aged;               /* seqs below this were aged (from 1) */
	u64 ping_t;             /* next request due (0: not started) */
	u64 sent_t[NET_PING_WIN];
	u8 state[NET_PING_WIN];
	u64 log_window;
	u32 log_lines;
	u8 out[VNET_ETH_MAX];   /* frame being built */
} S;

static u64 ms_tsc(u64 ms)
{
	return ms * boot.tsc_khz;
}

static u16 get16(const u8 *p)
{
	return (u16)(p[0] << 8 | p[1]);
}

static u32 get32(const u8 *p)
{
	return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3];
}

static void put16(u8 *p, u16 v)
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}

static void put32(u8 *p, u32 v)
{
	put16(p, (u16)(v >> 16));
	put16(p + 2, (u16)v);
}

/* RFC 1071: the one's complement of the one's complement sum; over data
 * holding a correct checksum it gives 0. */
static u16 csum(const u8 *p, u32 len)
{
	u64 s = 0;

	for (; len > 1; p += 2, len -= 2)
		s += get16(p);
	if (len)
		s += (u32)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (u16)~s;
}

static void fmt_ip(char *buf, size_t size, u32 ip)
{
	fmt_sn(buf, size, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff,
	       (ip >> 8) & 0xff, ip & 0xff);
}

static void fmt_mac(char *buf, size_t size, const u8 *m)
{
	fmt_sn(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
	       m[3], m[4], m[5]);
}

static u8 *eth_header(u8 *f, const u8 *dst, u16 type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, S.nic->mac, 6);
	put16(f + 12, type);
	return f + ETH_HLEN;
}

static void arp_send(u16 op, const u8 *eth_dst, const u8 *tha, u32 tpa)
{
	static const u8 zero[6];
	u8 *a = eth_header(S.out, eth_dst, ETH_P_ARP);

	put16(a, 1);                    /* Ethernet */
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, S.nic->mac, 6);
	put32(a + 14, S.ip);
	memcpy(a + 18, tha ? tha : zero, 6);
	put32(a + 24, tpa);
	vnet_send(S.nic, S.out, ETH_HLEN + ARP_LEN);
}

/* At most LOG_PER_SEC lines a second from the receive path. */
static bool may_log(u64 now)
{
	if (now - S.log_window > ms_tsc(1000)) {
		S.log_window = now;
		S.log_lines = 0;
	}
	return S.log_lines++ < LOG_PER_SEC;
}

static void learn_target(const u8 *mac)
{
	char ip[16], m[18];

	if (S.resolved && !memcmp(S.target_mac, mac, 6))
		return;
	memcpy(S.target_mac, mac, 6);
	S.resolved = true;
	if (may_log(now_tsc())) {
		fmt_ip(ip, sizeof(ip), S.target);
		fmt_mac(m, sizeof(m), mac);
		console_printf("ferry-agent net=%s arp %s is-at %s\n",
			       S.nic->name, ip, m);
	}
}

static void on_arp(const u8 *f, u32 len)
{
	const u8 *a = f + ETH_HLEN;
	u32 spa, tpa;

	if (len < ETH_HLEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETH_P_IP ||
	    a[4] != 6 || a[5] != 4)
		return;
	spa = get32(a + 14);
	tpa = get32(a + 24);
	if (S.ping && spa == S.target && !(a[8] & 1))
		learn_target(a + 8);
	if (get16(a + 6) == ARP_REQUEST && tpa == S.ip && spa != S.ip)
		arp_send(ARP_REPLY, a + 8, a + 8, spa);
}

static void echo_reply(const u8 *f, const u8 *ip, const u8 *icmp, u32 icmp_len)
{
	u8 *o, *r;

	if (ETH_HLEN + IP_HLEN + icmp_len > VNET_ETH_MAX)
		return;
	o = eth_header(S.out, f + 6, ETH_P_IP);
	memset(o, 0, IP_HLEN);
	o[0] = 0x45;
	put16(o + 2, (u16)(IP_HLEN + icmp_len));
	put16(o + 4, S.ip_id++);
	o[8] = 64;
	o[9] = IP_PROTO_ICMP;
	put32(o + 12, S.ip);
	memcpy(o + 16, ip + 12, 4);     /* back to the sender */
	put16(o + 10, csum(o, IP_HLEN));
	r = o + IP_HLEN;
	memcpy(r, icmp, icmp_len);      /* same id, seq and payload */
	r[0] = ICMP_ECHOREPLY;
	r[1] = 0;
	put16(r + 2, 0);
	put16(r + 2, csum(r, icmp_len));
	vnet_send(S.nic, S.out, ETH_HLEN + IP_HLEN + icmp_len);
}

/* A reply to wire seq w: the newest seq sent with those low 16 bits. */
static void on_echo_reply(u16 w)
{
	u64 last = S.next_seq - 1, seq = last - (u16)((u16)last - w);
	u8 *st;

	S.silent_since = 0;
	S.probe_gap = ms_tsc(PROBE_MIN_MS);
	if (!seq || seq > last || last - seq >= NET_PING_WIN)
		return;
	st = &S.state[seq % NET_PING_WIN];
	if (*st == SEQ_LOST)
		net_stats.lost--;       /* late, but answered */
	if (*st == SEQ_PENDING || *st == SEQ_LOST) {
		*st = SEQ_RECEIVED;
		net_stats.recv++;
	}
}

static void on_ipv4(const u8 *f, u32 len)
{
	const u8 *ip = f + ETH_HLEN, *icmp;
	u32 ihl, tot, icmp_len;

	if (len < ETH_HLEN + IP_HLEN || ip[0] >> 4 != 4)
		return;
	ihl = (ip[0] & 0xf) * 4u;
	tot = get16(ip + 2);
	if (ihl < IP_HLEN || tot < ihl || tot > len - ETH_HLEN ||
	    csum(ip, ihl) || get32(ip + 16) != S.ip ||
	    (get16(ip + 6) & 0x3fff) || ip[9] != IP_PROTO_ICMP)
		return;         /* not ours, damaged, a fragment, not ICMP */
	icmp = ip + ihl;
	icmp_len = tot - ihl;
	if (icmp_len < ICMP_HLEN || csum(icmp, icmp_len))
		return;
	if (icmp[0] == ICMP_ECHO && icmp[1] == 0)
		echo_reply(f, ip, icmp, icmp_len);
	else if (icmp[0] == ICMP_ECHOREPLY && S.ping &&
		 get32(ip + 12) == S.target && get16(icmp + 4) == S.id)
		on_echo_reply(get16(icmp + 6));
}

static void on_frame(void *ctx, const u8 *f, u32 len)
{
	(void)ctx;
	if (len < ETH_HLEN ||
	    (memcmp(f, S.nic->mac, 6) && memcmp(f, bcast, 6)))
		return;
	if (get16(f + 12) == ETH_P_ARP)
		on_arp(f, len);
	else if (get16(f + 12) == ETH_P_IP)
		on_ipv4(f, len);
}

static void ping_send(u64 now)
{
	u64 seq = S.next_seq++, up = (now - boot.start_tsc) / boot.tsc_khz;
	u8 *ip = eth_header(S.out, S.target_mac, ETH_P_IP), *icmp = ip + IP_HLEN;
	u32 icmp_len = ICMP_HLEN + PING_PAYLOAD;

	memset(ip, 0, IP_HLEN + icmp_len);
	ip[0] = 0x45;
	put16(ip + 2, (u16)(IP_HLEN + icmp_len));
	put16(ip + 4, S.ip_id++);
	ip[6] = 0x40;                   /* don't fragment */
	ip[8] = 64;
	ip[9] = IP_PROTO_ICMP;
	put32(ip + 12, S.ip);
	put32(ip + 16, S.target);
	put16(ip + 10, csum(ip, IP_HLEN));
	icmp[0] = ICMP_ECHO;
	put16(icmp + 4, S.id);
	put16(icmp + 6, (u16)seq);
	/* payload: TSC, uptime in ms, the full seq; then a byte pattern */
	memcpy(icmp + 8, &now, 8);
	memcpy(icmp + 16, &up, 8);
	memcpy(icmp + 24, &seq, 8);
	for (u32 i = 32; i < icmp_len; i++)
		icmp[i] = (u8)i;
	put16(icmp + 2, csum(icmp, icmp_len));

	S.state[seq % NET_PING_WIN] = SEQ_PENDING;
	S.sent_t[seq % NET_PING_WIN] = now;
	if (!S.silent_since)
		S.silent_since = now;
	net_stats.sent++;
	vnet_send(S.nic, S.out, ETH_HLEN + IP_HLEN + icmp_len);
}

/* Count requests older than NET_LOST_MS that have no reply; a slot about
 * to be reused is aged whatever its age. */
static void age(u64 now)
{
	while (S.aged < S.next_seq) {
		u32 i = (u32)(S.aged % NET_PING_WIN);

		if (S.next_seq - S.aged < NET_PING_WIN &&
		    now - S.sent_t[i] <= ms_tsc(NET_LOST_MS))
			break;
		if (S.state[i] == SEQ_PENDING) {
			S.state[i] = SEQ_LOST;
			net_stats.lost++;
		}
		S.aged++;
	}
}

static void ping_tick(u64 now)
{
	if (!S.resolved) {
		if (!S.arp_t || now - S.arp_t >= ms_tsc(NET_ARP_MS)) {
			S.arp_t = now;
			arp_send(ARP_REQUEST, bcast, NULL, S.target);
		}
		return;
	}
	if (S.silent_since && now - S.silent_since > ms_tsc(PROBE_MS) &&
	    now - S.arp_t >= S.probe_gap) {
		S.arp_t = now;
		if (S.probe_gap < ms_tsc(NET_ARP_MS))
			S.probe_gap *= 2;
		arp_send(ARP_REQUEST, bcast, NULL, S.target);
	}
	if (!S.ping_t)
		S.ping_t = now;
	if (now >= S.ping_t) {
		/* One slot of the 10 ms grid a call: a slot missed by a late
		 * wake-up goes at the next poll, ~1 ms later; a backlog of
		 * more than NET_BACKLOG_MS (the VM or this CPU was stopped)
		 * is skipped, not sent in a burst. */
		ping_send(now);
		S.ping_t += ms_tsc(NET_PING_MS);
		if (now > S.ping_t + ms_tsc(NET_BACKLOG_MS))
			S.ping_t += ((now - S.ping_t) / ms_tsc(NET_PING_MS) + 1) *
				    ms_tsc(NET_PING_MS);
	}
	age(now);
}

void net_tick(u64 now)
{
	if (!S.nic)
		return;
	if (vnet_poll(S.nic, VNET_QUEUE_SIZE, on_frame, NULL))
		now = now_tsc();
	if (S.ping)
		ping_tick(now);
}

u64 net_wake(u64 now)
{
	return S.nic ? now + NET_POLL_US * boot.tsc_khz / 1000 : ~0ULL;
}

bool net_pinging(void)
{
	return S.ping;
}

static void configure(struct vnet *nic, const struct options *o)
{
	char ip[16], target[16];

	S.nic = nic;
	S.ip = o->ip;
	S.mask = o->ip_prefix >= 32 ? ~0u : ~(~0u >> o->ip_prefix);
	fmt_ip(ip, sizeof(ip), S.ip);
	console_printf("ferry-agent net=%s ip=%s/%u\n", nic->name, ip, o->ip_prefix);
	arp_send(ARP_REQUEST, bcast, NULL, S.ip);       /* gratuitous */
	if (!o->ping_set)
		return;
	S.ping = true;
	S.target = o->ping_ip;
	S.id = (u16)(now_tsc() >> 4 ^ now_tsc() >> 20);
	S.next_seq = S.aged = 1;
	S.probe_gap = ms_tsc(PROBE_MIN_MS);
	fmt_ip(target, sizeof(target), S.target);
	console_printf("ferry-agent net=%s ping=%s id=%u every_ms=%u\n",
		       nic->name, target, S.id, NET_PING_MS);
}

void net_init(const struct pci_dev *found, u32 n, u32 irq_cpu,
	      const struct options *o)
{
	for (u32 i = 0; i < n; i++) {
		struct vnet *v = &nics[nnics];
		char name[8], mac[18];

		if (virtio_pci_type(&found[i]) != VIRTIO_ID_NET)
			continue;
		if (nnics == NET_MAX) {
			console_printf("ferry-agent warning: pci %s: more than %u "
				       "NICs, ignored\n", found[i].name, NET_MAX);
			continue;
		}
		fmt_sn(name, sizeof(name), "eth%u", nnics);
		if (vnet_init(v, &found[i], name, boot.apic_id[irq_cpu],
			      rx_mem[nnics], tx_mem[nnics]))
			continue;
		nnics++;
		fmt_mac(mac, sizeof(mac), v->mac);
		console_printf("ferry-agent net=%s pci=%s mac=%s link=%s\n", name,
			       found[i].name, mac, vnet_link_up(v) ? "up" : "down");
		console_printf("ferry-agent net=%s features=0x%lx rx_queue=%u "
			       "tx_queue=%u\n", name, v->vdev.features,
			       v->rxq.size, v->txq.size);
	}
	if (!o->ip_set)
		return;
	if (!nnics) {
		console_printf("ferry-agent warning: ferry.ip: no network "
			       "device\n");
		return;
	}
	configure(&nics[0], o);
}

void net_report(void)
{
	for (u32 i = 0; i < nnics; i++)
		console_printf("ferry-agent net=%s rx_irqs=%lu tx_irqs=%lu "
			       "config_irqs=%lu rx_frames=%lu tx_frames=%lu "
			       "tx_dropped=%lu\n", nics[i].name,
			       vnet_rx_irqs(&nics[i]), vnet_tx_irqs(&nics[i]),
			       virtio_cfg_irqs(&nics[i].vdev), nics[i].rx_frames,
			       nics[i].tx_frames, nics[i].tx_dropped);
}
