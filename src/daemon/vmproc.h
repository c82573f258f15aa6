/* ferry-vmm processes as ferryd runs them: each in its own session (a
 * signal to ferryd's terminal or process group never reaches a VM), its
 * output appended to a log file, and watched by a small waiter process that
 * writes how it ended to a file. VMs and waiters outlive ferryd; a ferryd
 * that starts again finds each VM by pid and start time, and learns how
 * one that ended meanwhile ended from its exit file. */
#ifndef FERRY_DAEMON_VMPROC_H
#define FERRY_DAEMON_VMPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vmproc {
	pid_t pid;          /* ferry-vmm; 0 when none */
	uint64_t start;     /* its start time in clock ticks since boot (/proc/PID/stat) */
	int pidfd;          /* readable once it has ended; -1 */
};

/* Runs argv (argv[0] the program path) as described above. Returns 0 with
 * *p filled, or -errno with one line in err. */
int vmproc_spawn(struct vmproc *p, char *const argv[], const char *log_path,
		 const char *exit_path, char *err, size_t errlen);

/* Takes pid back after a restart. Returns 0 when it is alive and is the same
 * process (start time), -ESRCH otherwise (*p then has no process). */
int vmproc_adopt(struct vmproc *p, pid_t pid, uint64_t start);

/* Waits up to ms (-1: forever, 0: just looks) for the process to end.
 * Returns true when it has ended (or there is none). */
bool vmproc_wait(struct vmproc *p, int ms);

/* Sends sig (no-op when it has ended). */
void vmproc_kill(struct vmproc *p, int sig);

/* Forgets the process (closes the pidfd). */
void vmproc_release(struct vmproc *p);

/* How the process ended, from its exit file: 0 with *code (exit status) or
 * *signo (killing signal, 0 if it exited), or -ENOENT when there is no
 * record (the waiter died too). */
int vmproc_exit_status(const char *exit_path, int *code, int *signo);

/* CPU time used by pid so far, in ns; 0 if unknown. */
uint64_t vmproc_cpu_ns(pid_t pid);

/* The last non-empty line of a log file (for error messages), at most
 * outlen-1 bytes, "" if none. */
void vmproc_log_tail(const char *log_path, char *out, size_t outlen);

#endif
