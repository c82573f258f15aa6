/* ferryd's shared state: the domain table and what each entry knows of its
 * VM. One mutex (daemon.lock) guards the table and every field of every
 * domain marked (L). A domain is held by a reference while used without the
 * lock; a lifecycle operation marks it busy so two cannot interleave. Talking
 * to a VM (its control socket) is done without the lock. */
#ifndef FERRY_DAEMON_DAEMON_H
#define FERRY_DAEMON_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "daemon/domain.h"
#include "daemon/store.h"
#include "daemon/vmproc.h"

enum dom_state {
	DOM_SHUTOFF,
	DOM_RUNNING,
	DOM_PAUSED,
	DOM_SHUTDOWN,   /* power button pressed, guest not off yet */
	DOM_CRASHED,
};

enum job_type { JOB_NONE, JOB_UNBOUNDED, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED };
enum job_op { JOB_OP_NONE, JOB_OP_OUT, JOB_OP_IN };

/* A migration as asked by `migrate` (also kept in the run record, so that a
 * restarted ferryd can finish it). */
struct mig_req {
	char desturi[512];
	char migrateuri[512];
	bool live, offline, suspend, persistent, undefinesource, auto_converge, timeout_suspend;
	char *xml;                 /* the destination's definition, or NULL */
	uint64_t bandwidth_mib;    /* 0: the domain's setting */
	unsigned timeout_s;
};

struct job {
	enum job_type type;
	enum job_op op;
	uint64_t start_ns;
	uint64_t end_ns;
	json_object *info;         /* the last query-migrate (owned), or NULL */
	char error[1024];
	char error_class[32];      /* the RPC error class of a failure */
	bool abort;                /* domjobabort asked */
	int percent;               /* -1 before the first figures */
	uint64_t downtime_ms, total_ms;
};

/* Why a VM process is being ended by ferryd: decides the domain's fate
 * when the process is gone. */
enum dom_ending { END_NONE, END_DESTROY, END_MIGRATED, END_INCOMING_FAILED };

struct dom {
	struct dom *next;                  /* (L) */
	int refs;                          /* (L) */
	bool listed;                       /* (L) in the table */
	char name[DOMAIN_NAME_MAX + 1];
	uint8_t uuid[16];
	struct domain_def *def;            /* (L) the persistent definition, or NULL */
	struct domain_def *live;           /* (L) what runs, NULL when inactive */
	enum dom_state state;              /* (L) */
	const char *reason;                /* (L) virsh domstate --reason word */
	int id;                            /* (L) -1 when inactive */
	struct vmproc proc;                /* (L) */
	bool incoming;                     /* (L) migrating in; the guest does not run yet */
	bool persist_on_arrival;           /* (L) migrate --persistent */
	bool busy;                         /* (L) a lifecycle operation or migration runs */
	bool monitored;                    /* (L) a monitor thread watches proc */
	enum dom_ending ending;            /* (L) */
	bool job_active;                   /* (L) an outgoing migration thread runs */
	struct job job, last_job;          /* (L) */
	struct mig_req mig;                /* (L) of the outgoing migration */
	uint64_t downtime_ms;              /* (L) migrate-setmaxdowntime */
	uint64_t bandwidth_mib;            /* (L) migrate-setspeed, 0 unlimited */
	pthread_cond_t changed;            /* broadcast on state and job changes */
};

struct daemon {
	pthread_mutex_t lock;
	struct store store;
	struct dom *doms;                  /* (L) */
	int next_id;                       /* (L) */
	char vmm_path[1024];
	char hostname[256];
	unsigned port_lo, port_hi;         /* --migration-ports */
	unsigned next_port;                /* (L) */
	int incoming_timeout_s;
};

/* ---- domains.c: the table, VM processes, the monitor ---- */

/* Reads the definitions and run records of the state directory and takes
 * back the VMs still running. Call once at start-up. */
void doms_load(struct daemon *d);

/* Finds a domain by name, UUID or id; a reference the caller drops with
 * dom_put. NULL when none. Lock held or not, as the _locked suffix says. */
struct dom *dom_lookup_locked(struct daemon *d, const char *key);
struct dom *dom_lookup_name_locked(struct daemon *d, const char *name);
struct dom *dom_lookup_uuid_locked(struct daemon *d, const uint8_t uuid[16]);
void dom_get_locked(struct dom *dom);
void dom_put_locked(struct daemon *d, struct dom *dom);
void dom_put(struct daemon *d, struct dom *dom);

/* Adds a new domain for def (taken) to the table (lock held). */
struct dom *dom_new_locked(struct daemon *d, struct domain_def *def);

/* Drops an inactive, transient domain from the table (lock held). */
void dom_forget_locked(struct daemon *d, struct dom *dom);

/* Writes / removes the persistent definition (lock held). 0 or -errno. */
int dom_save_def_locked(struct daemon *d, struct dom *dom);
int dom_remove_def_locked(struct daemon *d, struct dom *dom);

/* Starts dom's VM with its definition (a fresh boot), or, with incoming_uri,
 * a ferry-vmm waiting for a migration. Lock held on entry and exit; dropped
 * while waiting for the VM. Returns 0 or -errno with err. */
int dom_launch_locked(struct daemon *d, struct dom *dom, bool paused, const char *incoming_uri,
		      const char *token, char *err, size_t errlen);

/* Sends one command to dom's ferry-vmm (lock NOT held; dom referenced).
 * Returns 0 with *ret (may be NULL), 1 with the VM's error in err, -errno. */
int dom_vmm_call(struct daemon *d, struct dom *dom, const char *cmd, json_object *args,
		 json_object **ret, char *err, size_t errlen);

/* Ends dom's process: quit, then SIGKILL after grace_ms. Lock NOT held.
 * Returns once the process is gone and the monitor has recorded it. */
void dom_stop_process(struct daemon *d, struct dom *dom, enum dom_ending why, int grace_ms);

/* Writes dom's run record (lock held). */
void dom_save_run_locked(struct daemon *d, struct dom *dom);

/* Waits on dom->changed for at most ms (lock held). */
void dom_wait_locked(struct daemon *d, struct dom *dom, int ms);

const char *dom_state_name(enum dom_state s);

/* ---- migrate_job.c: an outgoing migration's thread ---- */

#define MIG_POLL_MS 100 /* query-migrate, progress events */

/* Starts the outgoing migration of dom->mig (lock held): marks the domain
 * busy with an active job and runs it in a thread of its own; recover: it
 * may already run in ferry-vmm (after a ferryd restart). 0 or -errno. */
int mig_job_spawn_locked(struct daemon *d, struct dom *dom, bool recover);
/* After a restart: picks up an outgoing migration recorded in the run record. */
void mig_out_recover_locked(struct daemon *d, struct dom *dom);

/* The integer at a dotted path ("ram.total") of a JSON object; 0 if absent. */
int64_t json_path_i64(json_object *o, const char *path);

#endif
