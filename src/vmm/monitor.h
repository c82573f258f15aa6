/* The VM-facing control commands (query-status, stop, cont, quit, ...) and
 * the events that go with them, on top of control.c's framing. */
#ifndef FERRY_VMM_MONITOR_H
#define FERRY_VMM_MONITOR_H

#include "migration/migrate.h"
#include "vmm/control.h"
#include "vm/vm.h"

struct monitor {
	struct vm *vm;
	struct control ctl;
	struct migration mig;
	bool reported_paused; /* what the last STOP/RESUME event said */
	bool reset_paused;    /* system_reset on a paused VM: it stays paused */
};

/* Opens the control socket at path (NULL: no socket, commands still
 * usable through control_handle_line). Returns 0 or -errno. */
int monitor_open(struct monitor *m, struct vm *vm, const char *path);
void monitor_close(struct monitor *m);

/* Before the VM is made again for a guest reset (vm_reboot): ends what
 * uses it (a migration, a dirty-rate measurement). */
void monitor_before_reset(struct monitor *m);

/* After it: QMP's RESET event (guest: true, reason guest-reset, or for
 * system_reset guest: false, reason host-qmp-system-reset). */
void monitor_reset_event(struct monitor *m, enum vm_stop_reason reason);

/* The SHUTDOWN event for the reason the VM stopped. */
void monitor_shutdown_event(struct monitor *m, enum vm_stop_reason reason);

/* QMP's RunState name of the VM now. */
const char *monitor_status(struct monitor *m);

/* After each turn of the main loop: emits the events of a migration
 * (MIGRATION, MIGRATION_PASS) and STOP/RESUME when it paused or resumed
 * the VM. */
void monitor_poll(struct monitor *m);

#endif
