#include "vm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"

/* Capabilities without which ferry-vmm cannot run a guest at all. */
static const struct {
	int cap;
	const char *name;
} kvm_required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_GET_TSC_KHZ, "KVM_CAP_GET_TSC_KHZ" },
};

int kvm_check_cap(const struct kvm *kvm, int cap)
{
	int r = ioctl(kvm->fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

static bool kvm_detect_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

int kvm_open(struct kvm *kvm)
{
	const char *path = getenv("FERRY_KVM_DEV");
	int ver;

	if (!path)
		path = "/dev/kvm";
	kvm->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		int err = errno;

		log_error("cannot open %s: %s%s", path, strerror(err),
			  err == ENOENT ? " (this host has no KVM: load kvm_intel/kvm_amd, "
					  "or run on a host with virtualization enabled)" :
			  err == EACCES ? " (run as root or join the kvm group)" : "");
		return -err;
	}
	ver = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		log_error("%s: KVM API version %d, ferry needs %d", path, ver, KVM_API_VERSION);
		kvm_close(kvm);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]); i++) {
		if (!kvm_check_cap(kvm, kvm_required_caps[i].cap)) {
			log_error("%s lacks %s, which ferry-vmm needs", path, kvm_required_caps[i].name);
			kvm_close(kvm);
			return -ENOTSUP;
		}
	}
	kvm->max_vcpus = kvm_check_cap(kvm, KVM_CAP_MAX_VCPUS);
	if (!kvm->max_vcpus)
		kvm->max_vcpus = kvm_check_cap(kvm, KVM_CAP_NR_VCPUS);
	if (!kvm->max_vcpus)
		kvm->max_vcpus = 4;
	kvm->vcpu_mmap_size = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (kvm->vcpu_mmap_size <= 0) {
		log_error("%s: KVM_GET_VCPU_MMAP_SIZE failed", path);
		kvm_close(kvm);
		return -ENOTSUP;
	}
	kvm->is_pvm = kvm_detect_pvm();
	return 0;
}

void kvm_close(struct kvm *kvm)
{
	if (kvm->fd >= 0)
		close(kvm->fd);
	kvm->fd = -1;
}

const char *kvm_pvm_explanation(void)
{
	return "this host's KVM is kvm_pvm (software nested virtualization): guest ring-0 code "
	       "runs through KVM's instruction emulator, which cannot execute some instructions "
	       "(int3, lock cmpxchg16b, xrstor, ...); a guest kernel that uses them in ring 0, "
	       "such as an unmodified Linux, cannot run on this host";
}
