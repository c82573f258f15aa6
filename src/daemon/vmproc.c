#include "daemon/vmproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The fields of /proc/PID/stat from field 3 (state) on, into buf; NULL if
 * the process is gone. The command name may hold spaces and ')': the fields
 * follow the last ')'. */
static const char *proc_stat_fields(pid_t pid, char *buf, size_t len)
{
	char path[64], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return NULL;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p + 2 : NULL;
}

/* Start time (field 22), 0 if the process is gone, or (unless even_ended)
 * has ended and waits to be reaped. */
static uint64_t proc_start_time(pid_t pid, bool even_ended)
{
	char buf[1024];
	const char *f = proc_stat_fields(pid, buf, sizeof(buf));
	unsigned long long start = 0;

	if (!f || (!even_ended && (f[0] == 'Z' || f[0] == 'X')))
		return 0;
	if (sscanf(f, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
		      "%*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

uint64_t vmproc_cpu_ns(pid_t pid)
{
	char buf[1024];
	const char *f = proc_stat_fields(pid, buf, sizeof(buf));
	unsigned long long ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);

	/* utime and stime: fields 14 and 15 */
	if (!f || hz <= 0 ||
	    sscanf(f, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return 0;
	return (ut + st) * (1000000000ull / (uint64_t)hz);
}

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Async-signal-safe decimal formatting for the forked children. */
static size_t fmt_uint(char *out, unsigned v)
{
	char tmp[16];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static void write_exit_file(const char *exit_path, const char *tmp_path, int status)
{
	char line[40];
	size_t n;
	int fd;

	if (WIFSIGNALED(status)) {
		memcpy(line, "signal ", 7);
		n = 7 + fmt_uint(line + 7, (unsigned)WTERMSIG(status));
	} else {
		memcpy(line, "exit ", 5);
		n = 5 + fmt_uint(line + 5, (unsigned)WEXITSTATUS(status));
	}
	line[n++] = '\n';
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, n) == (ssize_t)n && fsync(fd) == 0) {
		close(fd);
		rename(tmp_path, exit_path);
		return;
	}
	close(fd);
	unlink(tmp_path);
}

/* The VM process proper: output to the log, nothing else inherited. */
static void __attribute__((noreturn)) exec_vmm(char *const argv[], int log_fd)
{
	sigset_t all;
	int null_fd = open("/dev/null", O_RDONLY);

	if (null_fd >= 0 && null_fd != 0) {
		dup2(null_fd, 0);
		close(null_fd);
	}
	dup2(log_fd, 1);
	dup2(log_fd, 2);
	if (log_fd > 2)
		close(log_fd);
	syscall(SYS_close_range, 3, ~0u, 0);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	signal(SIGTERM, SIG_DFL); /* the waiter ignores these; ignoring survives exec */
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	execv(argv[0], argv);
	{
		static const char msg[] = "ferryd: cannot execute ferry-vmm\n";

		(void)!write(2, msg, sizeof(msg) - 1);
	}
	_exit(127);
}

/* The waiter: a new session, the VM as its child, and the exit file. Only
 * async-signal-safe calls: ferryd has threads. */
static void __attribute__((noreturn)) run_waiter(char *const argv[], int pid_w, int ack_r,
						 int log_fd, const char *exit_path,
						 const char *tmp_path)
{
	int status;
	pid_t pid;
	char c;

	setsid();
	prctl(PR_SET_NAME, "ferry-waiter"); /* not taken for ferryd by ps or pkill -x */
	signal(SIGCHLD, SIG_DFL); /* ferryd ignores it; waitpid needs it back */
	signal(SIGTERM, SIG_IGN); /* the VM decides; its waiter just records */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	pid = fork();
	if (pid == 0) {
		close(pid_w);
		exec_vmm(argv, log_fd);
	}
	(void)!write(pid_w, &pid, sizeof(pid));
	close(pid_w);
	close(log_fd);
	/* ferryd reads the VM's start time before it may be reaped (a VM that
	 * ends at once is a zombie until then): it closes the pipe when done. */
	while (read(ack_r, &c, 1) < 0 && errno == EINTR)
		;
	/* Nothing of ferryd's stays open here (a listening socket or the state
	 * directory's lock would otherwise outlive ferryd). */
	syscall(SYS_close_range, 0, ~0u, 0);
	if (pid < 0)
		_exit(1);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			_exit(1);
	}
	write_exit_file(exit_path, tmp_path, status);
	_exit(0);
}

int vmproc_spawn(struct vmproc *p, char *const argv[], const char *log_path,
		 const char *exit_path, char *err, size_t errlen)
{
	char tmp_path[4200];
	int pipefd[2] = { -1, -1 }, ack[2], log_fd;
	pid_t waiter, pid = -1;
	ssize_t n;

	*p = (struct vmproc){ .pidfd = -1 };
	snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", exit_path);
	unlink(exit_path);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", log_path, strerror(errno));
		return -errno;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0 || pipe2(ack, O_CLOEXEC) < 0) {
		int e = errno;

		snprintf(err, errlen, "pipe: %s", strerror(e));
		if (pipefd[0] >= 0) {
			close(pipefd[0]);
			close(pipefd[1]);
		}
		close(log_fd);
		return -e;
	}
	waiter = fork();
	if (waiter == 0) {
		close(pipefd[0]);
		close(ack[1]);
		run_waiter(argv, pipefd[1], ack[0], log_fd, exit_path, tmp_path);
	}
	close(pipefd[1]);
	close(ack[0]);
	close(log_fd);
	if (waiter < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(ack[1]);
		return -EAGAIN;
	}
	do
		n = read(pipefd[0], &pid, sizeof(pid));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n != sizeof(pid) || pid <= 0) {
		close(ack[1]);
		snprintf(err, errlen, "cannot start %s", argv[0]);
		return -ECHILD;
	}
	p->pid = pid;
	p->pidfd = pidfd_of(pid);
	p->start = proc_start_time(pid, true);
	close(ack[1]); /* the waiter may reap it now */
	return 0;
}

int vmproc_adopt(struct vmproc *p, pid_t pid, uint64_t start)
{
	*p = (struct vmproc){ .pidfd = -1 };
	if (pid <= 0 || !start)
		return -ESRCH;
	p->pidfd = pidfd_of(pid);
	if (p->pidfd < 0 || proc_start_time(pid, false) != start) {
		if (p->pidfd >= 0)
			close(p->pidfd);
		p->pidfd = -1;
		return -ESRCH;
	}
	p->pid = pid;
	p->start = start;
	return 0;
}

bool vmproc_wait(struct vmproc *p, int ms)
{
	struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
	int ret;

	if (!p->pid)
		return true;
	if (p->pidfd < 0)
		return !proc_start_time(p->pid, false);
	do
		ret = poll(&pfd, 1, ms);
	while (ret < 0 && errno == EINTR);
	return ret > 0;
}

void vmproc_kill(struct vmproc *p, int sig)
{
	if (!p->pid || vmproc_wait(p, 0))
		return;
	if (p->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0);
	else
		kill(p->pid, sig);
}

void vmproc_release(struct vmproc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	*p = (struct vmproc){ .pidfd = -1 };
}

int vmproc_exit_status(const char *exit_path, int *code, int *signo)
{
	char buf[64] = "";
	unsigned v;
	ssize_t n;
	int fd = open(exit_path, O_RDONLY | O_CLOEXEC);

	*code = 0;
	*signo = 0;
	if (fd < 0)
		return -ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	buf[n] = 0;
	if (sscanf(buf, "exit %u", &v) == 1)
		*code = (int)v;
	else if (sscanf(buf, "signal %u", &v) == 1)
		*signo = (int)v;
	else
		return -ENOENT;
	return 0;
}

void vmproc_log_tail(const char *log_path, char *out, size_t outlen)
{
	char buf[4096];
	ssize_t n;
	off_t size;
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);
	char *end, *start;

	out[0] = 0;
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1, size > (off_t)sizeof(buf) - 1 ?
					  size - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	end = buf + n;
	while (end > buf && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		*--end = 0;
	start = strrchr(buf, '\n');
	start = start ? start + 1 : buf;
	snprintf(out, outlen, "%s", start);
}
