#include "vm/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/x86/cpu_state.h"
#include "common/log.h"
#include "vm/vm.h"

#define VCPU_KICK_SIGNAL SIGUSR1

/* What an exit handler tells the run loop. */
enum vcpu_next { VCPU_CONTINUE, VCPU_STOP };

typedef enum vcpu_next (*vcpu_exit_fn)(struct vcpu *v);

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "KVM_EXIT_UNKNOWN",
	[KVM_EXIT_EXCEPTION] = "KVM_EXIT_EXCEPTION",
	[KVM_EXIT_IO] = "KVM_EXIT_IO",
	[KVM_EXIT_HYPERCALL] = "KVM_EXIT_HYPERCALL",
	[KVM_EXIT_DEBUG] = "KVM_EXIT_DEBUG",
	[KVM_EXIT_HLT] = "KVM_EXIT_HLT",
	[KVM_EXIT_MMIO] = "KVM_EXIT_MMIO",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "KVM_EXIT_IRQ_WINDOW_OPEN",
	[KVM_EXIT_SHUTDOWN] = "KVM_EXIT_SHUTDOWN",
	[KVM_EXIT_FAIL_ENTRY] = "KVM_EXIT_FAIL_ENTRY",
	[KVM_EXIT_INTR] = "KVM_EXIT_INTR",
	[KVM_EXIT_SET_TPR] = "KVM_EXIT_SET_TPR",
	[KVM_EXIT_TPR_ACCESS] = "KVM_EXIT_TPR_ACCESS",
	[KVM_EXIT_NMI] = "KVM_EXIT_NMI",
	[KVM_EXIT_INTERNAL_ERROR] = "KVM_EXIT_INTERNAL_ERROR",
	[KVM_EXIT_SYSTEM_EVENT] = "KVM_EXIT_SYSTEM_EVENT",
	[KVM_EXIT_IOAPIC_EOI] = "KVM_EXIT_IOAPIC_EOI",
	[KVM_EXIT_X86_RDMSR] = "KVM_EXIT_X86_RDMSR",
	[KVM_EXIT_X86_WRMSR] = "KVM_EXIT_X86_WRMSR",
};

static const char *exit_name(uint32_t reason)
{
	if (reason < sizeof(exit_names) / sizeof(exit_names[0]) && exit_names[reason])
		return exit_names[reason];
	return "unknown exit";
}

/* One line says what happened, where, and (hint) what it means. */
static enum vcpu_next vcpu_fail_hint(struct vcpu *v, const char *what, const char *hint)
{
	log_error("vCPU %u: %s at guest rip 0x%llx; stopping the VM%s%s", v->id, what,
		  (unsigned long long)x86_vcpu_rip(v->fd), hint ? ": " : "", hint ? hint : "");
	vm_request_stop(v->vm, VM_STOP_ERROR);
	return VCPU_STOP;
}

static enum vcpu_next vcpu_fail(struct vcpu *v, const char *what)
{
	return vcpu_fail_hint(v, what, NULL);
}

static enum vcpu_next vcpu_exit_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->io_lock);
	/* String I/O (rep ins/outs) arrives as `count` accesses in a row. */
	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT)
			bus_write(&vm->pio, run->io.port, data, run->io.size);
		else
			bus_read(&vm->pio, run->io.port, data, run->io.size);
	}
	pthread_mutex_unlock(&vm->io_lock);
	return VCPU_CONTINUE;
}

static enum vcpu_next vcpu_exit_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;
	unsigned len = run->mmio.len;

	if (len == 0 || len > sizeof(run->mmio.data))
		return vcpu_fail(v, "MMIO access of impossible size");
	pthread_mutex_lock(&vm->io_lock);
	if (run->mmio.is_write)
		bus_write(&vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
	else
		bus_read(&vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
	pthread_mutex_unlock(&vm->io_lock);
	return VCPU_CONTINUE;
}

static enum vcpu_next vcpu_exit_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[160];

	if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
		return vcpu_fail_hint(v, "KVM internal error: emulation failure",
				      v->vm->kvm.is_pvm ? kvm_pvm_explanation() : NULL);
	snprintf(what, sizeof(what), "KVM internal error (suberror %u)", run->internal.suberror);
	return vcpu_fail(v, what);
}

static enum vcpu_next vcpu_exit_shutdown(struct vcpu *v)
{
	/* A triple fault resets a PC. KVM on SVM has reset the vCPU already
	 * (the VMCB is undefined after a shutdown intercept), so the fault's
	 * rip is gone there. */
	if (x86_kvm_is_svm())
		log_warn("vCPU %u: guest triple fault (where is unknown: KVM on AMD resets the "
			 "vCPU at once): the machine resets", v->id);
	else
		log_warn("vCPU %u: guest triple fault at rip 0x%llx: the machine resets", v->id,
			 (unsigned long long)x86_vcpu_rip(v->fd));
	vm_request_stop(v->vm, VM_STOP_RESET);
	return VCPU_STOP;
}

static enum vcpu_next vcpu_exit_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_stop(v->vm, VM_STOP_POWEROFF);
		return VCPU_STOP;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(v->vm, VM_STOP_RESET);
		return VCPU_STOP;
	default:
		return vcpu_fail(v, "KVM system event (guest crash)");
	}
}

static enum vcpu_next vcpu_exit_fail_entry(struct vcpu *v)
{
	char what[96];

	snprintf(what, sizeof(what), "KVM_EXIT_FAIL_ENTRY (hardware reason 0x%llx)",
		 (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
	return vcpu_fail(v, what);
}

static enum vcpu_next vcpu_exit_nothing(struct vcpu *v)
{
	(void)v;
	return VCPU_CONTINUE;
}

static const vcpu_exit_fn vcpu_exit_handlers[] = {
	[KVM_EXIT_IO] = vcpu_exit_io,
	[KVM_EXIT_MMIO] = vcpu_exit_mmio,
	[KVM_EXIT_INTERNAL_ERROR] = vcpu_exit_internal_error,
	[KVM_EXIT_SHUTDOWN] = vcpu_exit_shutdown,
	[KVM_EXIT_SYSTEM_EVENT] = vcpu_exit_system_event,
	[KVM_EXIT_FAIL_ENTRY] = vcpu_exit_fail_entry,
	[KVM_EXIT_INTR] = vcpu_exit_nothing,
	[KVM_EXIT_IRQ_WINDOW_OPEN] = vcpu_exit_nothing,
};

static enum vcpu_next vcpu_handle_exit(struct vcpu *v)
{
	uint32_t reason = v->run->exit_reason;
	char what[64];

	if (reason < sizeof(vcpu_exit_handlers) / sizeof(vcpu_exit_handlers[0]) &&
	    vcpu_exit_handlers[reason])
		return vcpu_exit_handlers[reason](v);
	snprintf(what, sizeof(what), "unhandled exit %s (%u)", exit_name(reason), reason);
	return vcpu_fail(v, what);
}

/* Parks while the VM is paused; returns true when the thread must end.
 *
 * An I/O or MMIO exit is finished by the next KVM_RUN (an IN's value lands
 * in RAX only then), and a parked vCPU must have no half-done instruction,
 * or its saved registers would lack it. So a vCPU asked to pause with an
 * exit pending runs once more with immediate_exit set: KVM completes the
 * exit and returns -EINTR before any further guest instruction — or
 * returns another exit (the next piece of a split MMIO access, a rep ins
 * refill), which the run loop handles as usual before coming back here.
 *
 * immediate_exit is cleared under run_lock only when no pause is asked
 * for, so a kick between here and KVM_RUN is never lost. */
static bool vcpu_wait_runnable(struct vcpu *v)
{
	struct vm *vm = v->vm;
	bool stop;

	pthread_mutex_lock(&vm->run_lock);
	if (vm->pause_req && !vm->stopping && v->exit_pending) {
		v->run->immediate_exit = 1;
		pthread_mutex_unlock(&vm->run_lock);
		return false;
	}
	if (vm->pause_req && !vm->stopping) {
		vm->nparked++;
		pthread_cond_broadcast(&vm->parked_cond);
		while (vm->pause_req && !vm->stopping)
			pthread_cond_wait(&vm->run_cond, &vm->run_lock);
		vm->nparked--;
	}
	stop = vm->stopping;
	if (!stop)
		v->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->run_lock);
	return stop;
}

static void vcpu_mark_ended(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->run_lock);
	vm->nparked++; /* an ended vCPU counts as parked for good */
	pthread_cond_broadcast(&vm->parked_cond);
	pthread_mutex_unlock(&vm->run_lock);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->id);
	pthread_setname_np(pthread_self(), name);
	while (!vcpu_wait_runnable(v)) {
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->exit_pending = false; /* completed before returning */
				if (__atomic_exchange_n(&v->throttle_due, false, __ATOMIC_ACQ_REL))
					vm_throttle_sleep(v->vm);
				continue;
			}
			log_error("vCPU %u: KVM_RUN failed: %s", v->id, strerror(errno));
			vm_request_stop(v->vm, VM_STOP_ERROR);
			break;
		}
		v->exit_pending = v->run->exit_reason == KVM_EXIT_IO ||
				  v->run->exit_reason == KVM_EXIT_MMIO;
		if (vcpu_handle_exit(v) == VCPU_STOP)
			break;
	}
	vcpu_mark_ended(v);
	return NULL;
}

static void vcpu_kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return EINTR */
}

int vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = vcpu_kick_handler };

	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->run)
		return; /* never created */
	v->run->immediate_exit = 1;
	if (v->thread_started)
		pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_kick_throttle(struct vcpu *v)
{
	if (!v->run || !v->thread_started)
		return;
	__atomic_store_n(&v->throttle_due, true, __ATOMIC_RELEASE);
	/* immediate_exit makes a KVM_RUN entered after this return at once;
	 * vcpu_wait_runnable clears it again (a lost throttle kick costs
	 * nothing but one slice of throttling). */
	v->run->immediate_exit = 1;
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

int vcpu_create(struct vcpu *v, struct vm *vm, unsigned id)
{
	struct cpuid_table *t;
	int ret;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0)
		return -errno;
	v->run = mmap(NULL, (size_t)vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		ret = -errno;
		goto fail;
	}
	t = malloc(sizeof(*t));
	if (!t) {
		ret = -ENOMEM;
		goto fail;
	}
	*t = vm->cpuid;
	x86_cpuid_for_vcpu(t, id, vm->ncpus, vm->tsc_khz);
	ret = x86_vcpu_set_cpuid(v->fd, t);
	free(t);
	if (ret == 0)
		ret = x86_vcpu_init_lapic(v->fd);
	if (ret)
		goto fail;
	return 0;
fail:
	vcpu_destroy(v);
	return ret;
}

int vcpu_start(struct vcpu *v)
{
	int ret = pthread_create(&v->thread, NULL, vcpu_thread, v);

	if (ret)
		return -ret;
	v->thread_started = true;
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->thread_started)
		pthread_join(v->thread, NULL);
	v->thread_started = false;
	if (v->run)
		munmap(v->run, (size_t)v->vm->kvm.vcpu_mmap_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}
