/* Console lines; see console.h. */
#include "console.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024
#define PREFIX "ferry-agent "

static pthread_mutex_t console_lock = PTHREAD_MUTEX_INITIALIZER;

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

void say(const char *fmt, ...)
{
	char line[LINE_MAX_BYTES];
	size_t n = sizeof(PREFIX) - 1;
	va_list ap;
	int r;

	snprintf(line, sizeof(line), "%s", PREFIX);
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n - 1 ? (size_t)r : sizeof(line) - n - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&console_lock);
	write_all(STDOUT_FILENO, line, n);
	pthread_mutex_unlock(&console_lock);
}
