/*
 * The console protocol's lines (guest/README.md, "Console protocol"): every
 * line the agent prints starts with "ferry-agent " and goes to its standard
 * output (as PID 1, the kernel's /dev/console: ttyS0 with console=ttyS0).
 */
#ifndef FERRY_AGENT_CONSOLE_H
#define FERRY_AGENT_CONSOLE_H

/* Prints "ferry-agent " + the formatted text + "\n" in one write, under a
 * lock: lines from different threads never interleave. Text beyond 1 KiB
 * is cut. A console that fails is not reported (there is nowhere to). */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
