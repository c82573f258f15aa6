/* The kernel's warnings on the console; see kmsg.h. */
#include "kmsg.h"
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* /dev/kmsg gives one record a read; longer ones fail with EINVAL. */
#define KMSG_RECORD_MAX 8192

int kmsg_parse(char *rec, size_t len, unsigned *pri, const char **text)
{
	char *semi = memchr(rec, ';', len), *nl, *end;
	unsigned long p;

	if (!semi || rec[0] < '0' || rec[0] > '9')
		return -EINVAL;
	errno = 0;
	p = strtoul(rec, &end, 10);
	if (errno || end == rec || (*end != ',' && end != semi) || p > 1023)
		return -EINVAL;
	nl = memchr(semi + 1, '\n', len - (size_t)(semi + 1 - rec));
	if (!nl)
		return -EINVAL;
	*nl = '\0';
	*pri = (unsigned)p;
	*text = semi + 1;
	return 0;
}

int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static void relay_record(char *rec, size_t len)
{
	const char *text;
	unsigned pri;

	if (kmsg_parse(rec, len, &pri, &text))
		return;
	if (pri <= KMSG_RELAY_MAX_PRI)
		say("KERNEL %s", text);
}

int kmsg_relay(int fd)
{
	char rec[KMSG_RECORD_MAX];
	unsigned lost = 0;
	ssize_t n;
	int err = 0;

	for (;;) {
		n = read(fd, rec, sizeof(rec));
		if (n > 0)
			relay_record(rec, (size_t)n);
		else if (n < 0 && errno == EPIPE)       /* overwritten; go on */
			lost++;
		else if (!(n < 0 && errno == EINTR))
			break;
	}
	if (n < 0 && errno != EAGAIN)
		err = -errno;
	if (lost)
		say("warning: kernel log records were overwritten before they "
		    "were read (%u times)", lost);
	return err;
}
