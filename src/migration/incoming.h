/* The destination side of a migration (ferry-vmm --incoming): listen,
 * accept the one source that presents the token, take the VM's shape,
 * load everything it sends — checked before it touches the VM — then the
 * hand-over: READY, wait for GO, start, STARTED. docs/migration-protocol.md
 * has the sequence. */
#ifndef FERRY_MIGRATION_INCOMING_H
#define FERRY_MIGRATION_INCOMING_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/state.h"
#include "migration/stream.h"

struct vm;

struct incoming {
	int listen_fd;
	int fd;
	char uri[300];
	char peer[128];
	struct stream_reader r;
	struct stream_writer w;
	struct state_info info;
	bool ram_hash;   /* the source asked for a RAM hash in READY */
	uint32_t hash;
	uint64_t t_end;  /* when END arrived */
};

/* Listens on uri. Returns 0, or -1 with an error logged. */
int incoming_listen(struct incoming *in, const char *uri);

/* Waits for a source: a connection that does not start with a HELLO
 * carrying token (when one is set) is dropped and the wait goes on; then
 * WELCOME, and the VM_INFO that follows fills in->info. timeout_s (0: none)
 * bounds the wait for an accepted HELLO, a client that connects and stays
 * silent included. Returns 0, -EINTR when sig_fd became readable (a
 * signal), -ETIMEDOUT, or -errno (error logged). */
int incoming_accept(struct incoming *in, const char *token, int sig_fd, unsigned timeout_s);

/* Tells the source why the destination gives up (an ERROR message), and
 * closes the connection. */
void incoming_refuse(struct incoming *in, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Loads the stream into vm (built from in->info, never run) up to END.
 * Returns 0, or -errno after logging and refusing with the reason. */
int incoming_load(struct incoming *in, struct vm *vm);

/* READY (with the RAM hash when asked), then waits for GO. Returns 0 with
 * *run saying whether the guest was running on the source, or -errno when
 * the source went away or sent something else: the guest must not start. */
int incoming_handover(struct incoming *in, struct vm *vm, bool *run);

/* STARTED, then closes the connection (the source may already be gone: a
 * failed send changes nothing, the guest runs here now). */
void incoming_started(struct incoming *in);

void incoming_close(struct incoming *in);

#endif
