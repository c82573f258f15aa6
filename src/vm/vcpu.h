/* vCPU threads: one per vCPU, running KVM_RUN and dispatching exits through
 * a table indexed by exit reason. Pausing kicks a vCPU out of KVM_RUN with
 * immediate_exit + a signal and parks it. */
#ifndef FERRY_VM_VCPU_H
#define FERRY_VM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	bool exit_pending; /* the last exit (I/O, MMIO) completes on the next KVM_RUN */
	bool throttle_due; /* kicked to sleep its throttle share (atomic) */
};

/* Creates vCPU id of vm with its CPUID and LAPIC set up. Returns 0/-errno. */
int vcpu_create(struct vcpu *v, struct vm *vm, unsigned id);

/* Starts the vCPU's thread. */
int vcpu_start(struct vcpu *v);

/* Makes the vCPU leave KVM_RUN soon (safe from any thread). The caller
 * must have set the VM's pause or stop flag under run_lock first. */
void vcpu_kick(struct vcpu *v);

/* Kicks the vCPU out of KVM_RUN to sleep its throttle share. */
void vcpu_kick_throttle(struct vcpu *v);

void vcpu_destroy(struct vcpu *v);

/* Installs the (empty) kick signal handler. Once per process. */
int vcpu_signals_init(void);

#endif
