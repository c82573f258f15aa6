#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

static const char *log_prog = "ferry";
static bool log_verbose;

void log_init(const char *prog)
{
	log_prog = prog;
}

void log_set_verbose(bool verbose)
{
	log_verbose = verbose;
}

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* One fprintf per line so that lines from vCPU threads never mix. */
	fprintf(stderr, "%s: %s%s\n", log_prog, level, line);
}

#define LOG_FN(name, level, gate)                 \
	void name(const char *fmt, ...)           \
	{                                         \
		va_list ap;                       \
		if (!(gate))                      \
			return;                   \
		va_start(ap, fmt);                \
		log_line(level, fmt, ap);         \
		va_end(ap);                       \
	}

LOG_FN(log_error, "error: ", true)
LOG_FN(log_warn, "warning: ", true)
LOG_FN(log_info, "", true)
LOG_FN(log_debug, "debug: ", log_verbose)
