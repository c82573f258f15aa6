/* A fault to inject under LD_PRELOAD, for the failures a test cannot
 * otherwise cause: with FERRY_FAULT=signalfd, signalfd(2) fails with
 * ENOMEM. Anything else passes through to the C library. */
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

int signalfd(int fd, const sigset_t *mask, int flags)
{
	const char *f = getenv("FERRY_FAULT");
	int (*real)(int, const sigset_t *, int);

	if (f && !strcmp(f, "signalfd")) {
		errno = ENOMEM;
		return -1;
	}
	real = (int (*)(int, const sigset_t *, int))dlsym(RTLD_NEXT, "signalfd");
	return real ? real(fd, mask, flags) : (errno = ENOSYS, -1);
}
