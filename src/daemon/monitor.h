/* Watching a domain's ferry-vmm: one thread per VM process holds a
 * connection to its control socket, follows its events (STOP, RESUME,
 * SHUTDOWN) into the domain's state, and records how the process ended —
 * shut off, destroyed, migrated away, or crashed (no orderly SHUTDOWN, or a
 * non-zero exit) — when it is gone. */
#ifndef FERRY_DAEMON_MONITOR_H
#define FERRY_DAEMON_MONITOR_H

#include "daemon/daemon.h"

/* Starts the monitor thread for dom->proc (lock held). */
void monitor_start_locked(struct daemon *d, struct dom *dom);

/* Records that dom's process has ended (lock held): the domain's new state
 * from dom->ending, the SHUTDOWN event's reason (NULL if none was seen) and
 * the exit file; a transient domain that shut off leaves the table. */
void monitor_ended_locked(struct daemon *d, struct dom *dom, const char *shutdown_reason);

/* Removes the VM's files in run/ (lock held). */
void dom_clear_run_locked(struct daemon *d, struct dom *dom);

#endif
