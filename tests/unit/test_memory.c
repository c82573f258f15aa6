/* Unit tests for the VMM's own dirty tracking of guest RAM (the pages ferry
 * writes on the guest's behalf: mem_mark_dirty in arch/x86/guest_mem.h,
 * dirty_vmm_* in migration/dirty.h): bits set by
 * mem_mark_dirty, read, cleared and put back as a migration pass does, and
 * tracking switched off and on while device threads keep marking, as a
 * failed live migration or the end of calc-dirty-rate does with the guest
 * running. The last is a race: run under ASan (make check's sanitizer
 * build) a marker that touches a freed bitmap is a heap-use-after-free. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "migration/dirty.h"
#include "vm/memory.h"

#define RAM_MIB 64
#define WORDS ((MiB(RAM_MIB) >> 12) / 64)

static int setup(void **state)
{
	static struct guest_mem mem;

	if (mem_create(&mem, MiB(RAM_MIB), "test"))
		return -1;
	*state = &mem;
	return 0;
}

static int teardown(void **state)
{
	mem_destroy(*state);
	return 0;
}

static void test_untracked_marks_nothing(void **state)
{
	struct guest_mem *mem = *state;
	uint64_t bits[WORDS] = { 0 };

	mem_mark_dirty(mem, 0x5000, 4096);
	assert_int_equal(dirty_vmm_enable(mem, true), 0);
	dirty_vmm_read(mem, bits, WORDS);
	for (unsigned w = 0; w < WORDS; w++)
		assert_int_equal(bits[w], 0);
	assert_int_equal(dirty_vmm_enable(mem, false), 0);
}

static void test_mark_read_clear_put_back(void **state)
{
	struct guest_mem *mem = *state;
	uint64_t bits[WORDS] = { 0 }, again[WORDS] = { 0 };

	assert_int_equal(dirty_vmm_enable(mem, true), 0);
	mem_mark_dirty(mem, 0x5000, 1);          /* page 5 */
	mem_mark_dirty(mem, 0x7fff, 2);          /* straddles pages 7 and 8 */
	mem_mark_dirty(mem, MiB(RAM_MIB), 4096); /* not RAM: ignored */
	dirty_vmm_read(mem, bits, WORDS);
	assert_int_equal(bits[0], (1ull << 5) | (1ull << 7) | (1ull << 8));
	/* Reading leaves the bits set; clearing takes exactly the ones read. */
	dirty_vmm_read(mem, again, WORDS);
	assert_int_equal(again[0], bits[0]);
	mem_mark_dirty(mem, 0x9000, 4096); /* page 9, after the read */
	dirty_vmm_clear(mem, bits, 0, 1);
	memset(again, 0, sizeof(again));
	dirty_vmm_read(mem, again, WORDS);
	assert_int_equal(again[0], 1ull << 9);
	/* A send that failed puts its pages back. */
	dirty_vmm_put_back(mem, bits, 0, 1);
	memset(again, 0, sizeof(again));
	dirty_vmm_read(mem, again, WORDS);
	assert_int_equal(again[0], bits[0] | (1ull << 9));
	/* Off and on again: a fresh start, nothing left over. */
	assert_int_equal(dirty_vmm_enable(mem, false), 0);
	assert_int_equal(dirty_vmm_enable(mem, true), 0);
	memset(again, 0, sizeof(again));
	dirty_vmm_read(mem, again, WORDS);
	assert_int_equal(again[0], 0);
	assert_int_equal(dirty_vmm_enable(mem, false), 0);
}

struct marker {
	struct guest_mem *mem;
	atomic_bool stop;
	atomic_ulong marks;
};

/* A virtio worker completing requests: marks pages all the time, holding
 * nothing the migration thread holds. */
static void *marker_thread(void *arg)
{
	struct marker *m = arg;
	unsigned long n = 0;

	while (!atomic_load(&m->stop)) {
		mem_mark_dirty(m->mem, (n % 1024) << 12, 4096);
		n++;
	}
	atomic_fetch_add(&m->marks, n);
	return NULL;
}

static void test_toggle_while_marking(void **state)
{
	struct marker m = { .mem = *state };
	pthread_t t[2];

	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, marker_thread, &m), 0);
	for (unsigned i = 0; i < 20000; i++) {
		uint64_t bits[WORDS] = { 0 };

		assert_int_equal(dirty_vmm_enable(m.mem, true), 0);
		dirty_vmm_read(m.mem, bits, WORDS);
		assert_int_equal(dirty_vmm_enable(m.mem, false), 0);
	}
	atomic_store(&m.stop, true);
	for (unsigned i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&m.marks) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_untracked_marks_nothing),
		cmocka_unit_test(test_mark_read_clear_put_back),
		cmocka_unit_test(test_toggle_while_marking),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
