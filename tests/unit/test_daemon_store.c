/* Unit tests for ferryd's state directory (daemon/store.h) and VM process
 * supervision (daemon/vmproc.h), with /bin/sh standing in for ferry-vmm. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "daemon/store.h"
#include "daemon/vmproc.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ferry-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	signal(SIGCHLD, SIG_DFL); /* system() waits for its child */
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void count_name(const char *name, void *opaque)
{
	int *n = opaque;

	assert_true(!strcmp(name, "a") || !strcmp(name, "b.c"));
	(*n)++;
}

static void test_store_layout_and_lock(void **state)
{
	struct store s, s2;
	char err[256], path[STORE_PATH_MAX], sub[256];
	struct stat st;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/state", dir);
	assert_int_equal(store_open(&s, sub, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/run", sub);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	/* A second ferryd on the same directory is refused. */
	assert_int_not_equal(store_open(&s2, sub, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "another ferryd"));
	store_close(&s);
	assert_int_equal(store_open(&s2, sub, err, sizeof(err)), 0);
	store_close(&s2);
}

static void test_atomic_write(void **state)
{
	struct store s;
	char err[256], path[STORE_PATH_MAX], sub[256];
	uint8_t *data;
	size_t size;
	int n = 0;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/s", dir);
	assert_int_equal(store_open(&s, sub, err, sizeof(err)), 0);
	store_path(&s, "domains", "a", ".xml", path);
	assert_int_equal(store_write_atomic(path, "one", 3), 0);
	assert_int_equal(store_write_atomic(path, "second", 6), 0);
	assert_int_equal(file_read_all(path, 100, &data, &size), 0);
	assert_int_equal(size, 6);
	assert_memory_equal(data, "second", 6);
	free(data);
	store_path(&s, "domains", "b.c", ".xml", path);
	assert_int_equal(store_write_atomic(path, "x", 1), 0);
	/* No temporary file is left behind, and other extensions are skipped. */
	store_path(&s, "domains", "skip", ".json", path);
	assert_int_equal(store_write_atomic(path, "{}", 2), 0);
	store_each(&s, "domains", ".xml", count_name, &n);
	assert_int_equal(n, 2);
	/* A write into a missing directory fails and leaves nothing. */
	assert_int_not_equal(store_write_atomic("/nonexistent/dir/x.xml", "x", 1), 0);
	store_path(&s, "domains", "a", ".xml", path);
	assert_int_equal(store_remove(path), 0);
	assert_int_equal(store_remove(path), 0);
	assert_int_equal(access(path, F_OK), -1);
	store_close(&s);
}

static void spawn_sh(struct vmproc *p, const char *script, const char *exit_path)
{
	char log_path[128], err[256];
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };

	snprintf(log_path, sizeof(log_path), "%s/vm.log", dir);
	assert_int_equal(vmproc_spawn(p, argv, log_path, exit_path, err, sizeof(err)), 0);
	assert_true(p->pid > 0);
	assert_true(p->start > 0);
}

/* The waiter records the exit after the process is reaped. */
static void wait_exit_file(const char *path, int *code, int *signo)
{
	for (int i = 0; i < 200; i++) {
		if (!vmproc_exit_status(path, code, signo))
			return;
		usleep(10000);
	}
	fail_msg("no exit file %s", path);
}

static void test_vmproc_exit_and_log(void **state)
{
	char exit_path[128], log_path[128], tail[128];
	struct vmproc p;
	int code, signo;

	(void)state;
	snprintf(exit_path, sizeof(exit_path), "%s/vm.exit", dir);
	snprintf(log_path, sizeof(log_path), "%s/vm.log", dir);
	spawn_sh(&p, "echo first; echo 'error: the last line' >&2; exit 3", exit_path);
	assert_true(vmproc_wait(&p, 5000));
	wait_exit_file(exit_path, &code, &signo);
	assert_int_equal(code, 3);
	assert_int_equal(signo, 0);
	vmproc_log_tail(log_path, tail, sizeof(tail));
	assert_string_equal(tail, "error: the last line");
	vmproc_release(&p);
}

static void test_vmproc_kill_and_adopt(void **state)
{
	char exit_path[128];
	struct vmproc p, q;
	int code, signo;

	(void)state;
	snprintf(exit_path, sizeof(exit_path), "%s/vm2.exit", dir);
	spawn_sh(&p, "exec sleep 30", exit_path);
	assert_false(vmproc_wait(&p, 50));
	/* Taken back by pid and start time; a wrong start time is refused. */
	assert_int_equal(vmproc_adopt(&q, p.pid, p.start), 0);
	vmproc_release(&q);
	assert_int_equal(vmproc_adopt(&q, p.pid, p.start + 1), -ESRCH);
	/* Its own session: not ferryd's process group. */
	assert_int_not_equal(getsid(p.pid), getsid(0));
	vmproc_kill(&p, SIGKILL);
	assert_true(vmproc_wait(&p, 5000));
	wait_exit_file(exit_path, &code, &signo);
	assert_int_equal(signo, SIGKILL);
	assert_int_equal(vmproc_adopt(&q, p.pid, p.start), -ESRCH);
	vmproc_release(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store_layout_and_lock),
		cmocka_unit_test(test_atomic_write),
		cmocka_unit_test(test_vmproc_exit_and_log),
		cmocka_unit_test(test_vmproc_kill_and_adopt),
	};

	signal(SIGCHLD, SIG_IGN); /* as ferryd */
	return cmocka_run_group_tests(tests, setup, teardown);
}
