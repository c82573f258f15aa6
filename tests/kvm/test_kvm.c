/* Fast KVM tests: tiny hand-made payloads run in a real VM, in-process,
 * through the same vm_create/vm_start/vm_pause API that ferry-vmm uses.
 * Without /dev/kvm they SKIP (exit 77), loudly. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "vm/vm.h"

static const char *payload_dir;

struct run {
	struct vm vm;
	char serial_path[64];
	char serial_spec[80];
	char kernel[512];
};

static int run_create(struct run *r, const char *payload, unsigned cpus)
{
	struct vm_config cfg = { .name = "test", .memory_mib = 64, .cpus = cpus };
	int fd;

	snprintf(r->kernel, sizeof(r->kernel), "%s/%s.elf", payload_dir, payload);
	strcpy(r->serial_path, "/tmp/ferry-kvm-test-XXXXXX");
	fd = mkstemp(r->serial_path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(r->serial_spec, sizeof(r->serial_spec), "file:%s", r->serial_path);
	cfg.kernel = r->kernel;
	cfg.serial = r->serial_spec;
	return vm_create(&r->vm, &cfg);
}

/* Waits until the VM asks to stop, at most timeout_ms. */
static enum vm_stop_reason run_wait(struct run *r, int timeout_ms)
{
	uint64_t deadline = time_now_ns() + (uint64_t)timeout_ms * 1000000;

	while (vm_stop_reason(&r->vm) == VM_STOP_NONE && time_now_ns() < deadline) {
		struct pollfd p = { .fd = r->vm.event_fd, .events = POLLIN };

		poll(&p, 1, 50);
	}
	return vm_stop_reason(&r->vm);
}

static char *run_output(struct run *r)
{
	uint8_t *data = NULL;
	size_t size = 0;
	char *s;

	assert_int_equal(file_read_all(r->serial_path, 1 << 20, &data, &size), 0);
	s = realloc(data, size + 1);
	assert_non_null(s);
	s[size] = 0;
	return s;
}

static void run_destroy(struct run *r)
{
	vm_destroy(&r->vm);
	unlink(r->serial_path);
}

static void test_serial_output_and_poweroff(void **state)
{
	struct run r;
	char *out;

	(void)state;
	assert_int_equal(run_create(&r, "hello", 1), 0);
	assert_int_equal(vm_start(&r.vm), 0);
	assert_int_equal(run_wait(&r, 5000), VM_STOP_POWEROFF);
	vm_pause(&r.vm);
	out = run_output(&r);
	assert_string_equal(out, "hello from payload\n");
	free(out);
	run_destroy(&r);
}

static void test_pio_devices(void **state)
{
	struct run r;
	char *out;

	(void)state;
	assert_int_equal(run_create(&r, "pio", 1), 0);
	assert_int_equal(vm_start(&r.vm), 0);
	assert_int_equal(run_wait(&r, 5000), VM_STOP_POWEROFF);
	vm_pause(&r.vm);
	out = run_output(&r);
	assert_string_equal(out, "pio ok\n");
	free(out);
	run_destroy(&r);
}

static uint32_t spin_counter(struct run *r)
{
	volatile uint32_t *p = mem_gpa_to_hva(&r->vm.mem, 0x200000, 4);

	return *p;
}

static void test_pause_resume(void **state)
{
	struct run r;
	uint32_t a, b;

	(void)state;
	assert_int_equal(run_create(&r, "spin", 2), 0);
	assert_int_equal(vm_start(&r.vm), 0);
	/* Running: the counter moves. */
	usleep(100000);
	a = spin_counter(&r);
	usleep(50000);
	assert_true(spin_counter(&r) != a);
	/* Paused: every vCPU parked, the counter stands still. */
	for (int i = 0; i < 5; i++) {
		vm_pause(&r.vm);
		assert_true(vm_is_paused(&r.vm));
		a = spin_counter(&r);
		usleep(50000);
		b = spin_counter(&r);
		assert_int_equal(a, b);
		vm_resume(&r.vm);
		usleep(50000);
		assert_true(spin_counter(&r) != b);
	}
	assert_int_equal(vm_stop_reason(&r.vm), VM_STOP_NONE);
	run_destroy(&r);
}

static void test_triple_fault_resets(void **state)
{
	struct run r;

	(void)state;
	assert_int_equal(run_create(&r, "triple", 1), 0);
	assert_int_equal(vm_start(&r.vm), 0);
	assert_int_equal(run_wait(&r, 5000), VM_STOP_RESET);
	run_destroy(&r);
}

static void test_more_vcpus_than_kvm_allows(void **state)
{
	struct run r;

	(void)state;
	assert_int_equal(run_create(&r, "hello", 100000), -EINVAL);
	unlink(r.serial_path);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_output_and_poweroff),
		cmocka_unit_test(test_pio_devices),
		cmocka_unit_test(test_pause_resume),
		cmocka_unit_test(test_triple_fault_resets),
		cmocka_unit_test(test_more_vcpus_than_kvm_allows),
	};
	int fd;

	log_init("test_kvm");
	if (argc != 2) {
		fprintf(stderr, "usage: test_kvm PAYLOAD_DIR\n");
		return 2;
	}
	payload_dir = argv[1];
	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "SKIP: /dev/kvm is not usable here (%s): KVM tests not run\n",
			strerror(errno));
		return 77;
	}
	close(fd);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
