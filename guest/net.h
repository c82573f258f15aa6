/*
 * The network of the workload (ring 3): virtio-net devices found on PCI
 * bus 0, named eth0, eth1, ... in scan order, and a tiny IPv4 stack on
 * eth0 (ferry.ip): it answers ARP requests for its address and ICMP echo
 * requests to it, and ignores everything else. ferry.ping=ADDR resolves
 * ADDR by ARP and sends it an echo request every 10 ms, counting replies
 * and losses (net_sent / net_recv / net_lost at the end of the beat
 * line). See guest/README.md for the console lines.
 *
 * net_init runs on CPU 0 before "ready"; net_tick on one CPU only (the
 * I/O CPU, after the disk writer), from its tick loop and the earlier
 * wake-ups net_wake() asks for.
 */
#ifndef FERRY_GUEST_NET_H
#define FERRY_GUEST_NET_H

#include "pci.h"
#include "types.h"
#include "user.h"

#define NET_MAX         4       /* NICs set up; more are ignored */
#define NET_POLL_US     1000    /* rx polled this often while configured */
#define NET_PING_MS     10      /* one echo request per period */
#define NET_ARP_MS      100     /* ARP retry while unresolved */
#define NET_LOST_MS     1000    /* unanswered this long: counted lost */
#define NET_PING_WIN    4096    /* seqs remembered (~41 s at 100/s) */

struct net_stats {
	volatile u64 sent;      /* echo requests sent */
	volatile u64 recv;      /* distinct seqs answered (late ones too) */
	volatile u64 lost;      /* sent > NET_LOST_MS ago, never answered */
};

extern struct net_stats net_stats;

/* Set up every virtio-net function among found[0..n) (interrupts aimed at
 * CPU irq_cpu), print a line per NIC, and, with ferry.ip, configure eth0
 * and send a gratuitous ARP. A NIC that misbehaves is dropped with a
 * warning; ferry.ip without a NIC is a warning too. */
void net_init(const struct pci_dev *found, u32 n, u32 irq_cpu,
	      const struct options *o);

/* True while ferry.ping runs (the beat line then carries the figures). */
bool net_pinging(void);

/* Poll eth0's rx ring, answer what needs an answer, send the due echo
 * request or ARP request, and age outstanding requests. Bounded: at most
 * a ring's worth of frames a call. */
void net_tick(u64 now);

/* TSC deadline of the next wake-up the network needs (NET_POLL_US from
 * now while configured); ~0 when it needs none. */
u64 net_wake(u64 now);

/* One line per NIC with its interrupt and frame counts ("ferry-agent
 * net=ethN rx_irqs=.. tx_irqs=.. config_irqs=.."), e.g. before power-off. */
void net_report(void);

#endif
