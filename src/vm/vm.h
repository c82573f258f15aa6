/* One virtual machine: KVM VM, guest RAM, vCPU threads, the PC's devices,
 * and its run state (running, paused, stopping). All of it hangs off
 * struct vm, so a second VM in the same process just works. */
#ifndef FERRY_VM_VM_H
#define FERRY_VM_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch/x86/kvm_devices.h"
#include "arch/x86/cpuid.h"
#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/device.h"
#include "devices/i8042.h"
#include "devices/pci.h"
#include "devices/rtc.h"
#include "devices/serial.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "vm/chardev.h"
#include "vm/kvm.h"
#include "vm/memory.h"

#define VM_MIN_MEMORY_MIB 8
#define VM_MAX_DISKS      8
#define VM_MAX_NETS       4

struct vm_config {
	const char *name;
	const char *kernel;   /* NULL: no boot (a restore fills the VM) */
	const char *initrd;   /* may be NULL */
	const char *cmdline;  /* may be NULL */
	uint64_t memory_mib;
	unsigned cpus;
	const char *cpu;      /* CPU spec (x86_cpuid_apply_spec); NULL: host */
	const char *serial;   /* chardev spec */
	bool serial_append;   /* file: append rather than truncate (restore) */
	bool start_paused;    /* vCPUs wait for vm_resume() (QEMU -S) */
	struct virtio_blk_config disks[VM_MAX_DISKS];
	unsigned ndisks;
	struct virtio_net_config nets[VM_MAX_NETS];
	unsigned nnets;
	/* The VM's state comes from elsewhere (restore, incoming): disks
	 * open at the first vm_resume(), once the hand-over committed. */
	bool incoming;
};

/* Why the VM stopped for good; the first reason wins. */
enum vm_stop_reason {
	VM_STOP_NONE,
	VM_STOP_POWEROFF, /* the guest powered off (ACPI S5) */
	VM_STOP_RESET,    /* the guest reset the machine */
	VM_STOP_HOST_RESET, /* the operator reset it (QMP system_reset) */
	VM_STOP_QUIT,     /* the operator said quit */
	VM_STOP_SIGNAL,   /* SIGINT/SIGTERM */
	VM_STOP_ERROR,    /* a vCPU hit something the VMM cannot handle */
};

struct vcpu;

struct vm {
	struct vm_config cfg;
	struct kvm kvm;
	int fd;
	bool ioeventfd_any_len;     /* KVM_CAP_IOEVENTFD_ANY_LENGTH */
	struct guest_mem mem;
	uint32_t tsc_khz;
	struct cpuid_table cpuid; /* what KVM supports; per-vCPU copies derive */

	unsigned ncpus;
	struct vcpu *vcpus;

	/* Devices and buses: vCPU threads dispatch under io_lock; the main
	 * loop takes it to feed serial input and drain serial output. Lock
	 * order: io_lock, then run_lock. */
	pthread_mutex_t io_lock;
	struct bus pio;
	struct bus mmio;
	struct device_list devices;
	struct serial serial;
	struct i8042 i8042;
	struct rtc rtc;
	struct acpi_pm pm;         /* under io_lock (vm_power_button from other threads) */
	struct pci_host pci;
	struct virtio_blk *disks;   /* cfg.ndisks of them */
	struct virtio_net *nets;    /* cfg.nnets of them */
	struct x86_kvm_devices kvm_devs; /* irqchip, PIT, clock: state in KVM */
	struct chardev console;

	/* Run state, under run_lock. */
	pthread_mutex_t run_lock;
	pthread_cond_t run_cond;    /* parked vCPUs wait here for resume/stop */
	pthread_cond_t parked_cond; /* vm_pause waits here for nparked to grow */
	bool pause_req;          /* vCPUs must park */
	bool stopping;           /* vCPU threads must end */
	unsigned nparked;        /* vCPUs parked or ended */
	enum vm_stop_reason stop_reason;
	int event_fd;            /* eventfd: the main loop has something to look at */

	/* vCPU throttling (migration auto-converge): every 10 ms of running, a
	 * vCPU sleeps throttle_pct / (100 - throttle_pct) × 10 ms. */
	unsigned throttle_pct;   /* under run_lock */
	pthread_t throttle_thread;
	bool throttle_running;
};

/* Builds the VM described by cfg: KVM VM, RAM, irqchip, PIT, devices,
 * vCPUs created (threads not yet started), and, when cfg->kernel is set,
 * the kernel loaded with its PVH start info. Returns 0 or -errno with one error line logged; on error
 * everything already made is undone. */
int vm_create(struct vm *vm, const struct vm_config *cfg);

/* A guest reset, as a power cycle: every vCPU, device and byte of RAM
 * made anew from vm's configuration, kernel and initrd booted again (the
 * kernel command line is the VM's), vCPUs started (paused: waiting for
 * vm_resume); only the console (and its clients) carries over. Call it
 * paused, with nothing else (migration, dirty-rate thread) using the VM.
 * Returns 0, or -errno with the VM gone (vm_destroy is still safe). */
int vm_reboot(struct vm *vm, const char *kernel, const char *initrd, bool paused);

/* Starts one thread per vCPU. The VM runs (or, with start_paused, waits
 * for vm_resume()) until vm_destroy(). Fails (-errno, logged) when a device
 * cannot resume (a restored VM's disk or tap cannot be opened). */
int vm_start(struct vm *vm);

/* Parks every vCPU outside KVM_RUN and returns once all are parked. The
 * guest's time goes on; nothing runs. Idempotent. */
void vm_pause(struct vm *vm);

/* Releases parked vCPUs. */
void vm_resume(struct vm *vm);

bool vm_is_paused(struct vm *vm);

/* Makes what the devices wrote durable (disks: fdatasync). Call paused,
 * before the state leaves (save, migration's hand-over). */
int vm_flush_devices(struct vm *vm);

/* Throttles every vCPU to run (100 - pct) % of the time (0: not at all),
 * as QEMU's cpu-throttle does. Call from the main or migration thread. */
void vm_set_throttle(struct vm *vm, unsigned pct);

/* Called by a vCPU thread kicked for throttling: sleeps its share, or
 * less when the VM pauses or stops meanwhile. */
void vm_throttle_sleep(struct vm *vm);

/* Presses the ACPI power button (the guest decides what to do). Safe from
 * any thread but a vCPU's. */
void vm_power_button(struct vm *vm);

/* Records why the VM must stop (first reason wins), parks the vCPUs and
 * wakes the main loop. Safe from any thread, including a vCPU's. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason);

enum vm_stop_reason vm_stop_reason(struct vm *vm);

/* Ends the vCPU threads and frees everything. */
void vm_destroy(struct vm *vm);

/* Serial input from the host: moves what the chardev has into the UART
 * while its FIFO has room. Called by the main loop when
 * chardev_poll_fd(&vm->console) is readable. */
void vm_console_input(struct vm *vm);

/* True when the UART can take more input (poll the console fd then). */
bool vm_console_wants_input(struct vm *vm);

/* Serial output to the host: offers what the UART holds (bytes a slow
 * console reader did not take when the guest wrote them) to the console
 * again; THRE and its interrupt follow. Call it from the main loop on each
 * pass, with writable set when the fd it returned last polled POLLOUT (a
 * vCPU that leaves bytes pending wakes the loop through event_fd, and so
 * does vm_resume). Returns the fd to poll for POLLOUT, or -1 when nothing
 * waits for the console (all out, or paused: nothing drains until the VM
 * runs). */
int vm_console_output(struct vm *vm, bool writable);

/* At the end of the guest's run (it powered off or reset itself; the VM
 * paused): sends what the UART still holds, waiting at most timeout_ms for
 * a slow reader, so that the guest's last words are not lost. Not after a
 * migration: the destination sends those bytes. */
void vm_console_flush(struct vm *vm, unsigned timeout_ms);

#endif
