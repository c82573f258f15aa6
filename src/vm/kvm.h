/* /dev/kvm: the system fd, the capabilities ferry relies on, and whether
 * this host's KVM is kvm_pvm (software nested virtualization, where guest
 * ring 0 runs through KVM's instruction emulator). */
#ifndef FERRY_VM_KVM_H
#define FERRY_VM_KVM_H

#include <stdbool.h>

struct kvm {
	int fd;            /* /dev/kvm */
	int max_vcpus;     /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
	int vcpu_mmap_size;
	bool is_pvm;       /* kvm_pvm module loaded */
};

/* Opens /dev/kvm (path overridable for tests through FERRY_KVM_DEV) and
 * checks the API version and every capability ferry-vmm needs. Returns 0 or
 * -errno with one error line logged naming what is missing. */
int kvm_open(struct kvm *kvm);
void kvm_close(struct kvm *kvm);

/* KVM_CHECK_EXTENSION on the system fd; 0 when absent. */
int kvm_check_cap(const struct kvm *kvm, int cap);

/* The message that explains an emulation failure on kvm_pvm hosts. */
const char *kvm_pvm_explanation(void);

#endif
