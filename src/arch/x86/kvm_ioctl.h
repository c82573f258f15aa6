/* KVM ioctls whose failure is logged with the ioctl's name. */
#ifndef FERRY_ARCH_X86_KVM_IOCTL_H
#define FERRY_ARCH_X86_KVM_IOCTL_H

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"

/* Returns 0, or -errno after logging "NAME: error". */
static inline int kvm_ioctl_named(int fd, unsigned long req, void *arg, const char *name)
{
	int ret;

	if (ioctl(fd, req, arg) >= 0)
		return 0;
	ret = -errno;
	log_error("%s: %s", name, strerror(-ret));
	return ret;
}

#define KVM_IOCTL(fd, req, arg) kvm_ioctl_named((fd), (req), (arg), #req)

#endif
