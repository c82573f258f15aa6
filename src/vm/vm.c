#include "vm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "arch/x86/acpi.h"
#include "arch/x86/boot.h"
#include "arch/x86/cpu_state.h"
#include "arch/x86/layout.h"
#include "common/log.h"
#include "common/util.h"
#include "vm/vcpu.h"

#define KERNEL_MAX_SIZE GiB(1)
#define INITRD_MAX_SIZE GiB(2)

static void vm_irq_set(void *ctx, unsigned gsi, bool level)
{
	struct vm *vm = ctx;
	struct kvm_irq_level irq = { .irq = gsi, .level = level };

	if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE %u: %s", gsi, strerror(errno));
}

static int vm_send_msi(void *ctx, uint64_t addr, uint32_t data)
{
	struct vm *vm = ctx;
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data,
	};

	/* 0: the guest blocked it (masked in its APIC); 1: delivered. */
	return ioctl(vm->fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

static int vm_ioeventfd(void *ctx, uint64_t addr, int fd, bool assign)
{
	struct vm *vm = ctx;
	struct kvm_ioeventfd io = {
		.addr = addr, .fd = fd, .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	/* Length 0 matches a write of any width (drivers write 2 or 4). */
	io.len = vm->ioeventfd_any_len ? 0 : 2;
	if (ioctl(vm->fd, KVM_IOEVENTFD, &io) < 0) {
		int ret = -errno;

		if (assign)
			log_debug("KVM_IOEVENTFD at %#llx: %s (notifications go through the "
				  "VMM)", (unsigned long long)addr, strerror(-ret));
		return ret;
	}
	return 0;
}

static void *vm_ram_map(void *ctx, uint64_t gpa, uint64_t len)
{
	struct vm *vm = ctx;

	return mem_gpa_to_hva(&vm->mem, gpa, len);
}

static void vm_ram_dirty(void *ctx, uint64_t gpa, uint64_t len)
{
	struct vm *vm = ctx;

	mem_mark_dirty(&vm->mem, gpa, len);
}

static void vm_machine_request(void *ctx, enum machine_request req)
{
	vm_request_stop(ctx, req == MACHINE_POWEROFF ? VM_STOP_POWEROFF : VM_STOP_RESET);
}

/* Tells the main loop to look at the VM again (a stop was asked for, or
 * its poll set changed). */
static void vm_wake_main_loop(struct vm *vm)
{
	uint64_t one = 1;

	if (write(vm->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("waking the main loop: %s", strerror(errno));
}

/* The UART's sink, on a vCPU thread under io_lock. When the console stops
 * taking output, the UART keeps the rest with THRE clear and the main loop
 * must start waiting for POLLOUT (vm_console_output): wake it, once, when
 * the console becomes blocked. */
static size_t vm_console_out(void *ctx, const uint8_t *data, size_t len)
{
	struct vm *vm = ctx;
	bool was_blocked = chardev_out_fd(&vm->console) >= 0;
	size_t n = chardev_write(&vm->console, data, len);

	if (!was_blocked && chardev_out_fd(&vm->console) >= 0)
		vm_wake_main_loop(vm);
	return n;
}

/* GSI routing as on a PC with an IOAPIC: ISA IRQs 0-15 reach both PICs and
 * the IOAPIC, except that IRQ 0 (the PIT) arrives on IOAPIC pin 2, as the
 * MADT's interrupt source override says; GSIs 16-23 are IOAPIC only. */
static int vm_set_gsi_routing(struct vm *vm)
{
	struct {
		struct kvm_irq_routing head;
		struct kvm_irq_routing_entry e[64];
	} r;
	unsigned n = 0;

	memset(&r, 0, sizeof(r));
	for (unsigned i = 0; i < 16; i++) {
		if (i == 2)
			continue; /* the cascade */
		r.e[n++] = (struct kvm_irq_routing_entry){
			.gsi = i, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = i < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				       .pin = i % 8 } };
	}
	for (unsigned i = 0; i < 24; i++) {
		if (i == 2)
			continue;
		r.e[n++] = (struct kvm_irq_routing_entry){
			.gsi = i, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = i == 0 ? 2 : i } };
	}
	r.head.nr = n;
	return ioctl(vm->fd, KVM_SET_GSI_ROUTING, &r) < 0 ? -errno : 0;
}

static int vm_create_kvm(struct vm *vm)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		log_error("KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){ KVM_IDENTITY_MAP }) < 0 ||
	    ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_error("setting up the KVM VM (TSS, irqchip, PIT): %s", strerror(errno));
		return -errno;
	}
	/* Exact exception state in KVM_GET/SET_VCPU_EVENTS: without it KVM
	 * reports a pending exception as injected, and a save -> restore ->
	 * save would not give the same vCPU state (QEMU enables it too). */
	if (kvm_check_cap(&vm->kvm, KVM_CAP_EXCEPTION_PAYLOAD)) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXCEPTION_PAYLOAD, .args = { 1 } };

		if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
			log_warn("KVM_CAP_EXCEPTION_PAYLOAD: %s", strerror(errno));
	}
	if (vm_set_gsi_routing(vm) < 0) {
		log_error("KVM_SET_GSI_ROUTING: %s", strerror(errno));
		return -errno;
	}
	vm->ioeventfd_any_len = kvm_check_cap(&vm->kvm, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	if ((vm->cfg.ndisks || vm->cfg.nnets) && kvm_check_cap(&vm->kvm, KVM_CAP_SIGNAL_MSI) <= 0) {
		log_error("this host's KVM cannot signal MSIs (KVM_CAP_SIGNAL_MSI), which "
			  "virtio devices need");
		return -ENOTSUP;
	}
	return 0;
}

static int vm_check_config(const struct vm *vm, const struct vm_config *cfg)
{
	uint64_t host = mem_host_total();

	if (cfg->memory_mib < VM_MIN_MEMORY_MIB) {
		log_error("--memory %llu: a VM needs at least %d MiB",
			  (unsigned long long)cfg->memory_mib, VM_MIN_MEMORY_MIB);
		return -EINVAL;
	}
	if (host && cfg->memory_mib > host >> 20) {
		log_error("--memory %llu: more than this host's %llu MiB of RAM",
			  (unsigned long long)cfg->memory_mib, (unsigned long long)(host >> 20));
		return -EINVAL;
	}
	if (cfg->cpus == 0 || cfg->cpus > (unsigned)vm->kvm.max_vcpus ||
	    cfg->cpus > ACPI_MAX_CPUS) {
		log_error("--cpus %u: must be between 1 and %d (this host's KVM allows %d, "
			  "ferry's xAPIC machine %d)", cfg->cpus,
			  MIN(vm->kvm.max_vcpus, ACPI_MAX_CPUS), vm->kvm.max_vcpus, ACPI_MAX_CPUS);
		return -EINVAL;
	}
	return 0;
}

static int vm_read_file(const char *what, const char *path, size_t max, uint8_t **data,
			size_t *size)
{
	int ret = file_read_all(path, max, data, size);

	if (ret)
		log_error("%s %s: %s", what, path,
			  ret == -EFBIG ? "file too large" : strerror(-ret));
	return ret;
}

/* Loads the kernel, the initrd and the ACPI tables, and writes the PVH
 * start info. Returns the start info address in *start_info. */
static int vm_load_guest(struct vm *vm, uint64_t *entry, uint64_t *start_info)
{
	const struct vm_config *cfg = &vm->cfg;
	struct acpi_config acpi = { .ncpus = vm->ncpus };
	struct pvh_boot_params bp = { .cmdline = cfg->cmdline };
	uint8_t *kernel = NULL, *initrd = NULL;
	size_t ksize = 0, isize = 0;
	struct pvh_kernel k;
	int64_t addr;
	int ret;

	ret = vm_read_file("--kernel", cfg->kernel, KERNEL_MAX_SIZE, &kernel, &ksize);
	if (ret == 0 && cfg->initrd)
		ret = vm_read_file("--initrd", cfg->initrd, INITRD_MAX_SIZE, &initrd, &isize);
	if (ret)
		goto out;
	ret = pvh_parse(cfg->kernel, kernel, ksize, &vm->mem, &k);
	if (ret)
		goto out;
	pvh_load(kernel, ksize, &vm->mem);
	addr = acpi_build(mem_gpa_to_hva(&vm->mem, ACPI_BASE, ACPI_SIZE), ACPI_BASE, ACPI_SIZE,
			  &acpi);
	if (addr < 0) {
		ret = (int)addr;
		log_error("building the ACPI tables: %s", strerror(-ret));
		goto out;
	}
	bp.rsdp = (uint64_t)addr;
	bp.initrd = initrd;
	bp.initrd_size = isize;
	bp.kernel_high = k.load_high;
	addr = pvh_write_start_info(&vm->mem, &bp);
	if (addr < 0) {
		ret = (int)addr;
		goto out;
	}
	*entry = k.entry;
	*start_info = (uint64_t)addr;
out:
	free(kernel);
	free(initrd);
	return ret;
}

static void vm_destroy_pci_devices(struct vm *vm)
{
	for (unsigned i = 0; vm->disks && i < vm->cfg.ndisks; i++)
		virtio_blk_destroy(&vm->disks[i]);
	for (unsigned i = 0; vm->nets && i < vm->cfg.nnets; i++)
		virtio_net_destroy(&vm->nets[i]);
	free(vm->disks);
	free(vm->nets);
	vm->disks = NULL;
	vm->nets = NULL;
}

/* virtio devices on PCI bus 0: the disks in --disk order (slots 1, 2, ...),
 * then the NICs in --net order. On error, none is left. */
static int vm_create_pci_devices(struct vm *vm)
{
	struct virtio_host host = {
		.ioeventfd = vm_ioeventfd, .ctx = vm,
		.ram = { vm_ram_map, vm_ram_dirty, vm },
		.msi = { vm_send_msi, vm },
	};
	bool paused = vm->cfg.start_paused || vm->cfg.incoming;
	/* Created one by one: a failed one is not destroyed twice. */
	unsigned made_disks = 0, made_nets = 0;
	int ret = 0;

	vm->disks = calloc(vm->cfg.ndisks + 1, sizeof(*vm->disks));
	vm->nets = calloc(vm->cfg.nnets + 1, sizeof(*vm->nets));
	if (!vm->disks || !vm->nets)
		ret = -ENOMEM;
	for (unsigned i = 0; i < vm->cfg.ndisks && !ret; i++) {
		struct virtio_blk_config c = vm->cfg.disks[i];

		c.defer_open = vm->cfg.incoming;
		ret = virtio_blk_create(&vm->disks[i], &c, &host, paused);
		if (ret)
			break;
		made_disks++;
		if (pci_host_plug(&vm->pci, &vm->disks[i].vp.pci) < 0) {
			log_error("--disk %s: no room on the PCI bus", c.path);
			ret = -ENOSPC;
		}
	}
	for (unsigned i = 0; i < vm->cfg.nnets && !ret; i++) {
		struct virtio_net_config c = vm->cfg.nets[i];

		c.defer_open = vm->cfg.incoming;
		ret = virtio_net_create(&vm->nets[i], &c, &host, paused);
		if (ret)
			break;
		made_nets++;
		if (pci_host_plug(&vm->pci, &vm->nets[i].vp.pci) < 0) {
			log_error("--net tap=%s: no room on the PCI bus", c.tap);
			ret = -ENOSPC;
		}
	}
	if (ret) {
		for (unsigned i = 0; i < made_disks; i++)
			virtio_blk_destroy(&vm->disks[i]);
		for (unsigned i = 0; i < made_nets; i++)
			virtio_net_destroy(&vm->nets[i]);
		free(vm->disks);
		free(vm->nets);
		vm->disks = NULL;
		vm->nets = NULL;
	}
	return ret;
}

/* The devices of the ferry PC, in the order their state is saved. */
static int vm_create_devices(struct vm *vm)
{
	struct machine_link machine = { vm_machine_request, vm };
	struct bus *pio = &vm->pio;
	int ret = 0;

	serial_init(&vm->serial, (struct irq_line){ vm_irq_set, vm, IRQ_COM1 }, vm_console_out, vm);
	i8042_init(&vm->i8042, machine);
	rtc_init(&vm->rtc, vm->mem.low_size, vm->mem.high_size);
	acpi_pm_init(&vm->pm, machine, (struct irq_line){ vm_irq_set, vm, IRQ_SCI },
		     ACPI_SLP_TYP_S5);

	ret = ret ?: bus_register(pio, PORT_COM1, 8, &serial_bus_ops, &vm->serial);
	/* 0x60-0x64: the i8042 answers 0x60 and 0x64 (0x61 is KVM's). */
	ret = ret ?: bus_register(pio, PORT_I8042_DATA, 5, &i8042_bus_ops, &vm->i8042);
	ret = ret ?: bus_register(pio, PORT_RTC, 2, &rtc_bus_ops, &vm->rtc);
	ret = ret ?: bus_register(pio, PORT_ACPI_PM, 12, &acpi_pm_bus_ops, &vm->pm);
	/* 0xCF8-0xCFF: PCI configuration mechanism #1, with the reset
	 * control register at 0xCF9 in its midst; the same spaces through
	 * ECAM for guests that prefer it (Linux, once MCFG names it). */
	pci_host_init(&vm->pci, &acpi_cf9_bus_ops, &vm->pm);
	ret = ret ?: bus_register(pio, PORT_PCI_CONFIG, 8, &pci_host_pio_ops, &vm->pci);
	ret = ret ?: bus_register(&vm->mmio, PCI_MMIO_BASE, PCI_MMIO_END - PCI_MMIO_BASE,
				  &pci_host_mmio_ops, &vm->pci);
	ret = ret ?: bus_register(&vm->mmio, PCI_ECAM_BASE, PCI_ECAM_SIZE, &pci_host_ecam_ops,
				  &vm->pci);
	if (ret == 0) {
		ret = vm_create_pci_devices(vm);
		if (ret)
			return ret; /* said which device and why */
	}

	/* Save/load order: the in-kernel irqchip and PIT first, the emulated
	 * devices, (the vCPUs,) and the guest clock after the vCPUs. */
	vm->kvm_devs.vm_fd = vm->fd;
	ret = ret ?: device_register(&vm->devices, &x86_irqchip_ops, 0, &vm->kvm_devs);
	ret = ret ?: device_register(&vm->devices, &x86_pit_ops, 0, &vm->kvm_devs);
	ret = ret ?: device_register(&vm->devices, &serial_device_ops, 0, &vm->serial);
	ret = ret ?: device_register(&vm->devices, &i8042_device_ops, 0, &vm->i8042);
	ret = ret ?: device_register(&vm->devices, &rtc_device_ops, 0, &vm->rtc);
	ret = ret ?: device_register(&vm->devices, &acpi_pm_device_ops, 0, &vm->pm);
	ret = ret ?: device_register(&vm->devices, &pci_host_device_ops, 0, &vm->pci);
	for (unsigned i = 0; i < vm->cfg.ndisks && !ret; i++)
		ret = device_register(&vm->devices, &virtio_blk_device_ops, i, &vm->disks[i]);
	for (unsigned i = 0; i < vm->cfg.nnets && !ret; i++)
		ret = device_register(&vm->devices, &virtio_net_device_ops, i, &vm->nets[i]);
	ret = ret ?: device_register_after_vcpus(&vm->devices, &x86_clock_ops, 0, &vm->kvm_devs);
	if (ret)
		log_error("registering devices: %s", strerror(-ret));
	return ret;
}

static int vm_create_vcpus(struct vm *vm)
{
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->ncpus; i++)
		vm->vcpus[i] = (struct vcpu){ .vm = vm, .fd = -1 };
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int ret = vcpu_create(&vm->vcpus[i], vm, i);

		if (ret) {
			log_error("creating vCPU %u: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* A fresh boot: the kernel and its PVH start info in RAM, the boot vCPU
 * at the entry point. (A restore loads all of this from the stream.) */
static int vm_boot_setup(struct vm *vm)
{
	uint64_t entry = 0, start_info = 0;
	int ret = vm_load_guest(vm, &entry, &start_info);

	if (ret)
		return ret;
	ret = x86_vcpu_set_pvh_entry(vm->vcpus[0].fd, entry, start_info);
	if (ret)
		log_error("setting the boot vCPU's entry state: %s", strerror(-ret));
	return ret;
}

static int vm_init_state(struct vm *vm, const struct vm_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->fd = vm->event_fd = -1;
	vm->kvm.fd = -1;
	vm->mem.memfd = -1;
	vm->console = (struct chardev){ .kind = CHARDEV_NULL, .out_fd = -1, .in_fd = -1,
					.listen_fd = -1 };
	vm->pio.name = "pio";
	vm->mmio.name = "mmio";
	vm->ncpus = cfg->cpus;
	pthread_mutex_init(&vm->io_lock, NULL);
	pthread_mutex_init(&vm->run_lock, NULL);
	pthread_cond_init(&vm->run_cond, NULL);
	pthread_cond_init(&vm->parked_cond, NULL);
	vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return vm->event_fd < 0 ? -errno : 0;
}

/* vm_create, with the console already open (console: moved in) or to
 * open from cfg->serial (NULL). */
static int vm_build(struct vm *vm, const struct vm_config *cfg, struct chardev *console)
{
	int ret = vm_init_state(vm, cfg);
	char err[160];
	int tsc;

	if (console) {
		vm->console = *console;
		*console = (struct chardev){ .kind = CHARDEV_NULL, .out_fd = -1, .in_fd = -1,
					     .listen_fd = -1 };
	}

	ret = ret ?: kvm_open(&vm->kvm);
	ret = ret ?: vm_check_config(vm, cfg);
	ret = ret ?: vcpu_signals_init();
	ret = ret ?: vm_create_kvm(vm);
	if (ret)
		goto fail;
	ret = mem_create(&vm->mem, MiB(cfg->memory_mib), cfg->name);
	if (ret == 0)
		ret = mem_register(&vm->mem, vm->fd);
	if (ret) {
		log_error("guest RAM (%llu MiB): %s", (unsigned long long)cfg->memory_mib,
			  strerror(-ret));
		goto fail;
	}
	ret = x86_cpuid_supported(vm->kvm.fd, &vm->cpuid);
	if (ret) {
		log_error("KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
		goto fail;
	}
	ret = x86_cpuid_apply_spec(&vm->cpuid, cfg->cpu, err, sizeof(err));
	if (ret) {
		log_error("--cpu %s: %s", cfg->cpu, err);
		goto fail;
	}
	tsc = ioctl(vm->fd, KVM_GET_TSC_KHZ, 0);
	vm->tsc_khz = tsc > 0 ? (uint32_t)tsc : 0;
	if (!console)
		ret = chardev_open(&vm->console, cfg->serial, cfg->serial_append);
	ret = ret ?: vm_create_devices(vm);
	ret = ret ?: vm_create_vcpus(vm);
	if (ret == 0 && cfg->kernel)
		ret = vm_boot_setup(vm);
	if (ret)
		goto fail;
	return 0;
fail:
	vm_destroy(vm);
	return ret;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	return vm_build(vm, cfg, NULL);
}

int vm_reboot(struct vm *vm, const char *kernel, const char *initrd, bool paused)
{
	struct vm_config cfg = vm->cfg;
	struct chardev console = vm->console;
	int ret;

	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.start_paused = paused;
	cfg.incoming = false;
	/* The console goes on as it is (its clients stay connected); the
	 * rest is made anew, as a power cycle would. */
	vm->console = (struct chardev){ .kind = CHARDEV_NULL, .out_fd = -1, .in_fd = -1,
					.listen_fd = -1 };
	vm_destroy(vm);
	ret = vm_build(vm, &cfg, &console);
	return ret ?: vm_start(vm);
}

int vm_start(struct vm *vm)
{
	/* A VM that runs at once runs its devices too (a restored one opens
	 * its disks and taps here); a paused one does at vm_resume(). */
	if (!vm->cfg.start_paused) {
		int ret = device_list_resume(&vm->devices);

		if (ret)
			return ret;
	}
	pthread_mutex_lock(&vm->run_lock);
	vm->pause_req = vm->cfg.start_paused;
	pthread_mutex_unlock(&vm->run_lock);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int ret = vcpu_start(&vm->vcpus[i]);

		if (ret) {
			log_error("starting vCPU %u's thread: %s", i, strerror(-ret));
			vm_request_stop(vm, VM_STOP_ERROR);
			return ret;
		}
	}
	return 0;
}

static unsigned vm_started_vcpus(const struct vm *vm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm->ncpus; i++)
		n += vm->vcpus[i].thread_started;
	return n;
}

/* Under run_lock: asks every vCPU to leave KVM_RUN. */
static void vm_kick_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	vm->pause_req = true;
	vm_kick_all(vm);
	pthread_cond_broadcast(&vm->run_cond); /* ends throttle sleeps */
	while (vm->nparked < vm_started_vcpus(vm))
		pthread_cond_wait(&vm->parked_cond, &vm->run_lock);
	pthread_mutex_unlock(&vm->run_lock);
	/* Then the devices' own threads: requests in flight finish, none
	 * starts, so RAM and device state hold still. */
	device_list_pause(&vm->devices);
	/* And the main loop's console drain: one in progress ends before we
	 * return (the caller may save the UART next, without io_lock), and
	 * none starts while paused (vm_console_output checks). */
	pthread_mutex_lock(&vm->io_lock);
	pthread_mutex_unlock(&vm->io_lock);
}

int vm_flush_devices(struct vm *vm)
{
	return device_list_flush(&vm->devices);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->run_lock);
	/* Nothing resumes a VM that has asked to stop for good. */
	if (!vm->stopping && vm->stop_reason == VM_STOP_NONE) {
		if (device_list_resume(&vm->devices))
			log_warn("a device could not resume; the guest will see it fail");
		vm->pause_req = false;
		pthread_cond_broadcast(&vm->run_cond);
	}
	pthread_mutex_unlock(&vm->run_lock);
	/* The UART may hold output that waited for the pause to end. */
	vm_wake_main_loop(vm);
}

bool vm_is_paused(struct vm *vm)
{
	bool paused;

	pthread_mutex_lock(&vm->run_lock);
	paused = vm->pause_req;
	pthread_mutex_unlock(&vm->run_lock);
	return paused;
}

static bool stop_is_reset(enum vm_stop_reason r)
{
	return r == VM_STOP_RESET || r == VM_STOP_HOST_RESET;
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason)
{
	pthread_mutex_lock(&vm->run_lock);
	/* The first reason stands; but a reset only boots the VM again, so a
	 * stop for good (quit, a signal, an error, a power-off) that comes
	 * before the reboot replaces it, and is not lost with the old VM. */
	if (vm->stop_reason == VM_STOP_NONE ||
	    (stop_is_reset(vm->stop_reason) && !stop_is_reset(reason)))
		vm->stop_reason = reason;
	/* Nothing of the guest runs after a power-off or an error. */
	vm->pause_req = true;
	vm_kick_all(vm);
	pthread_mutex_unlock(&vm->run_lock);
	vm_wake_main_loop(vm);
}

enum vm_stop_reason vm_stop_reason(struct vm *vm)
{
	enum vm_stop_reason r;

	pthread_mutex_lock(&vm->run_lock);
	r = vm->stop_reason;
	pthread_mutex_unlock(&vm->run_lock);
	return r;
}

#define THROTTLE_SLICE_NS 10000000ull

void vm_throttle_sleep(struct vm *vm)
{
	struct timespec until;
	uint64_t ns;

	pthread_mutex_lock(&vm->run_lock);
	ns = vm->throttle_pct ? THROTTLE_SLICE_NS * vm->throttle_pct / (100 - vm->throttle_pct) : 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(ns / 1000000000u);
	until.tv_nsec += (long)(ns % 1000000000u);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (ns && !vm->pause_req && !vm->stopping && vm->throttle_pct &&
	       pthread_cond_timedwait(&vm->run_cond, &vm->run_lock, &until) == 0)
		;
	pthread_mutex_unlock(&vm->run_lock);
}

/* Kicks every vCPU once per period: each runs a 10 ms slice, then sleeps
 * its share (QEMU's cpu_throttle_timer_tick, one thread for all). */
static void *throttle_thread(void *arg)
{
	struct vm *vm = arg;

	pthread_setname_np(pthread_self(), "throttle");
	for (;;) {
		unsigned pct;
		uint64_t period;
		struct timespec ts;

		pthread_mutex_lock(&vm->run_lock);
		pct = vm->throttle_pct;
		if (pct && !vm->pause_req && !vm->stopping)
			for (unsigned i = 0; i < vm->ncpus; i++)
				vcpu_kick_throttle(&vm->vcpus[i]);
		pthread_mutex_unlock(&vm->run_lock);
		if (!pct)
			return NULL;
		period = THROTTLE_SLICE_NS * 100 / (100 - pct);
		ts = (struct timespec){ (time_t)(period / 1000000000u), (long)(period % 1000000000u) };
		nanosleep(&ts, NULL);
	}
}

void vm_set_throttle(struct vm *vm, unsigned pct)
{
	bool join = false;

	if (pct > 99)
		pct = 99;
	pthread_mutex_lock(&vm->run_lock);
	vm->throttle_pct = pct;
	pthread_cond_broadcast(&vm->run_cond); /* a new share from the next slice */
	if (pct && !vm->throttle_running) {
		if (pthread_create(&vm->throttle_thread, NULL, throttle_thread, vm) == 0)
			vm->throttle_running = true;
		else
			log_warn("cannot start the vCPU throttle thread; not throttling");
	} else if (!pct && vm->throttle_running) {
		vm->throttle_running = false;
		join = true;
	}
	pthread_mutex_unlock(&vm->run_lock);
	if (join)
		pthread_join(vm->throttle_thread, NULL);
}

void vm_destroy(struct vm *vm)
{
	if (vm->throttle_running) /* only this thread starts or stops it */
		vm_set_throttle(vm, 0);
	if (vm->vcpus) {
		pthread_mutex_lock(&vm->run_lock);
		vm->stopping = true;
		vm_kick_all(vm);
		pthread_cond_broadcast(&vm->run_cond);
		pthread_mutex_unlock(&vm->run_lock);
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
		vm->vcpus = NULL;
	}
	vm_destroy_pci_devices(vm);
	chardev_close(&vm->console);
	mem_destroy(&vm->mem);
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	kvm_close(&vm->kvm);
	if (vm->event_fd >= 0)
		close(vm->event_fd);
	vm->event_fd = -1;
}

void vm_power_button(struct vm *vm)
{
	pthread_mutex_lock(&vm->io_lock);
	acpi_pm_power_button(&vm->pm);
	pthread_mutex_unlock(&vm->io_lock);
}

bool vm_console_wants_input(struct vm *vm)
{
	bool wants;

	pthread_mutex_lock(&vm->io_lock);
	wants = serial_rx_room(&vm->serial) > 0;
	pthread_mutex_unlock(&vm->io_lock);
	return wants;
}

void vm_console_input(struct vm *vm)
{
	uint8_t buf[SERIAL_FIFO];
	size_t n;

	pthread_mutex_lock(&vm->io_lock);
	/* Read only what the FIFO can take now: the rest waits in the host's
	 * buffer, so nothing typed is lost. */
	n = chardev_ready(&vm->console, buf, serial_rx_room(&vm->serial));
	if (n)
		serial_receive(&vm->serial, buf, (unsigned)n);
	pthread_mutex_unlock(&vm->io_lock);
}

int vm_console_output(struct vm *vm, bool writable)
{
	int fd = -1;

	pthread_mutex_lock(&vm->io_lock);
	/* With nothing pending a held-up console is tried afresh, so that the
	 * next byte that does not go out wakes us again (vm_console_out). */
	if (writable || !serial_tx_pending(&vm->serial))
		chardev_out_retry(&vm->console);
	/* Paused, the UART's state holds still: a migration may be saving it
	 * (pending bytes then come out on the destination, not here too).
	 * While the console is held up, the drain takes nothing and costs no
	 * system call. */
	if (serial_tx_pending(&vm->serial) && !vm_is_paused(vm) &&
	    serial_tx_drain(&vm->serial))
		fd = chardev_out_fd(&vm->console);
	pthread_mutex_unlock(&vm->io_lock);
	return fd;
}

void vm_console_flush(struct vm *vm, unsigned timeout_ms)
{
	uint64_t deadline = time_now_ns() + timeout_ms * 1000000ull;

	pthread_mutex_lock(&vm->io_lock);
	chardev_out_retry(&vm->console);
	while (serial_tx_drain(&vm->serial) && chardev_out_fd(&vm->console) >= 0) {
		uint64_t now = time_now_ns();

		if (now >= deadline)
			break;
		chardev_out_wait(&vm->console, (int)((deadline - now + 999999) / 1000000));
	}
	pthread_mutex_unlock(&vm->io_lock);
}
