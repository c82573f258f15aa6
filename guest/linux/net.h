/*
 * The agent's network, through Linux's virtio_net and its own IPv4 stack:
 * ferry.ip configures eth0 (and brings lo up), ferry.ping sends an ICMP
 * echo request to an address every 10 ms and counts the replies, as the
 * test guest does (guest/README.md, "Console protocol": net_sent,
 * net_recv, net_lost).
 *
 * Counting, as the test guest's: `sent` the requests sent; `recv` the
 * distinct requests answered (a late reply counts, a duplicate does not);
 * `lost` the requests sent more than 1 s ago without a reply. A reply to
 * a request already counted lost takes it back out of `lost`. The last
 * PING_WINDOW requests (~41 s) are remembered.
 */
#ifndef FERRY_AGENT_NET_H
#define FERRY_AGENT_NET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define PING_WINDOW 4096

/* Brings lo up, and eth0 up with addr/prefix (host order); gratuitous ARP
 * on the way up (arp_notify). Prints "net=eth0 pci=... mac=... link=..."
 * and "net=eth0 ip=A.B.C.D/P". 0, or -errno (reported as an error line). */
int net_configure(uint32_t addr, unsigned prefix);

struct pinger {
	int fd;                         /* ICMP datagram ("ping") socket */
	uint32_t target;                /* host order */
	uint64_t seq;                   /* requests sent (the next one's seq) */
	uint64_t lost_upto;             /* seqs below it were judged */
	uint64_t sent_ns[PING_WINDOW];  /* by seq % PING_WINDOW */
	uint8_t state[PING_WINDOW];     /* PING_ANSWERED | PING_LOST */
	pthread_t thread;
	bool running;
	atomic_bool stop;
	_Atomic uint64_t sent, recv, lost;
};

/* Starts pinging target (host order) and prints
 * "net=eth0 ping=ADDR id=I every_ms=10". 0, or -errno (reported). */
int pinger_start(struct pinger *p, uint32_t target);

/* Stops the thread (within 10 ms) and closes the socket. */
void pinger_stop(struct pinger *p);

/* The reply bookkeeping, apart from the socket for the unit tests: a
 * request of seq sent at now_ns; a reply to 16-bit sequence number seq16;
 * the requests judged at now_ns. */
void ping_sent(struct pinger *p, uint64_t now_ns);
void ping_reply(struct pinger *p, uint16_t seq16);
void ping_judge(struct pinger *p, uint64_t now_ns);

#endif
