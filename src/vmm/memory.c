#include "vmm/memory.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

int mem_create(struct guest_mem *mem, uint64_t size, const char *name)
{
	char label[64];

	memset(mem, 0, sizeof(*mem));
	mem->memfd = -1;
	if (size == 0 || size % MiB(1))
		return -EINVAL;
	snprintf(label, sizeof(label), "ferry-ram:%s", name ? name : "vm");
	mem->memfd = memfd_create(label, MFD_CLOEXEC);
	if (mem->memfd < 0)
		return -errno;
	if (ftruncate(mem->memfd, (off_t)size) < 0)
		goto fail;
	mem->host = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			 mem->memfd, 0);
	if (mem->host == MAP_FAILED) {
		mem->host = NULL;
		goto fail;
	}
	mem->size = size;
	mem->low_size = mem_low_size(size);
	mem->high_size = size - mem->low_size;
	return 0;
fail: {
	int err = -errno;

	close(mem->memfd);
	mem->memfd = -1;
	return err;
}
}

static int mem_set_slot(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)hva,
	};

	return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int mem_register(const struct guest_mem *mem, int vm_fd)
{
	int ret = mem_set_slot(vm_fd, 0, 0, mem->low_size, mem->host);

	if (ret == 0 && mem->high_size)
		ret = mem_set_slot(vm_fd, 1, MEM_HIGH_BASE, mem->high_size,
				   mem->host + mem->low_size);
	return ret;
}

void mem_destroy(struct guest_mem *mem)
{
	if (mem->host)
		munmap(mem->host, mem->size);
	if (mem->memfd >= 0)
		close(mem->memfd);
	mem->host = NULL;
	mem->memfd = -1;
}

uint64_t mem_low_size(uint64_t size)
{
	return MIN(size, MEM_LOW_LIMIT);
}

int64_t mem_layout_offset(uint64_t low, uint64_t high, uint64_t gpa, uint64_t len)
{
	if (range_within(gpa, len, low))
		return (int64_t)gpa;
	if (gpa >= MEM_HIGH_BASE && range_within(gpa - MEM_HIGH_BASE, len, high))
		return (int64_t)(low + (gpa - MEM_HIGH_BASE));
	return -1;
}

void *mem_gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	int64_t off = mem_layout_offset(mem->low_size, mem->high_size, gpa, len);

	return off < 0 ? NULL : mem->host + off;
}

uint64_t mem_host_total(void)
{
	struct sysinfo si;

	if (sysinfo(&si) < 0)
		return 0;
	return (uint64_t)si.totalram * si.mem_unit;
}
