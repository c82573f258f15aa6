/* Logging: one line per message on stderr, prefixed with the program name.
 * Library code reports errors with log_error() and returns -errno; only
 * entry points (main) decide to exit. */
#ifndef FERRY_COMMON_LOG_H
#define FERRY_COMMON_LOG_H

#include <stdbool.h>

/* Sets the prefix of every line ("ferry-vmm"). Call once, before any log. */
void log_init(const char *prog);

/* Enables log_debug() output (off by default). */
void log_set_verbose(bool verbose);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
