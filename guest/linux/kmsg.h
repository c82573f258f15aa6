/*
 * The kernel's log on the console protocol: records of /dev/kmsg whose
 * priority field is at most 4 (facility 0, the kernel's own; level
 * warning or worse) are printed as "ferry-agent KERNEL <text>", so that a
 * test sees them among the agent's lines whatever the console loglevel.
 */
#ifndef FERRY_AGENT_KMSG_H
#define FERRY_AGENT_KMSG_H

#include <stddef.h>

/* The highest priority field relayed: KERN_WARNING of facility 0. */
#define KMSG_RELAY_MAX_PRI 4

/* Parses one /dev/kmsg record, "PRI,SEQ,USEC,FLAGS[,...];TEXT\n" followed
 * by " KEY=VALUE\n" lines, in rec[0..len): *pri gets PRI (facility * 8 +
 * level) and *text the message, NUL-terminated in place at its first
 * newline. Returns 0, or -EINVAL for a record of another shape. */
int kmsg_parse(char *rec, size_t len, unsigned *pri, const char **text);

/* Opens /dev/kmsg non-blocking, at the oldest record the kernel still has
 * (the boot's warnings included). Returns the fd or -errno. */
int kmsg_open(void);

/* Reads every record there is now and prints the relayed ones. Records
 * the kernel overwrote before they were read are skipped, with one
 * "ferry-agent warning:" line saying how often. Returns 0, or -errno when fd cannot be read. */
int kmsg_relay(int fd);

#endif
