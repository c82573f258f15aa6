/* The control socket: a UNIX stream socket (mode 0600) speaking JSON lines
 * in QMP's shapes. A client sends {"execute": NAME, "arguments": {...},
 * "id": ANY} and gets {"return": ...} or {"error": {"class", "desc"}} with
 * the same id; events go to every client as {"event", "data",
 * "timestamp"}. A malformed line gets an error reply; the connection and
 * the VM go on. See docs/control-protocol.md. */
#ifndef FERRY_VMM_CONTROL_H
#define FERRY_VMM_CONTROL_H

#include <json-c/json.h>
#include <poll.h>
#include <stddef.h>

#define CONTROL_MAX_CLIENTS 8
#define CONTROL_MAX_LINE 65536

/* A command handler: fills *ret (NULL means {}) and returns 0, or writes a
 * message to err and returns -1 (a GenericError reply). */
typedef int (*control_cmd_fn)(void *ctx, struct json_object *args, struct json_object **ret,
			      char *err, size_t errlen);

struct control_command {
	const char *name;
	control_cmd_fn fn;
};

struct control_client {
	int fd;
	char *buf; /* partial line */
	size_t len;
};

struct control {
	int listen_fd;
	char *path;
	const struct control_command *cmds;
	unsigned ncmds;
	void *ctx;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

/* Listens on path (replacing a stale socket). Returns 0 or -errno with an
 * error logged. */
int control_open(struct control *c, const char *path, const struct control_command *cmds,
		 unsigned ncmds, void *ctx);
void control_close(struct control *c);

/* Appends the fds to poll (POLLIN) to fds; returns how many. */
unsigned control_poll_fds(const struct control *c, struct pollfd *fds);

/* Handles whatever became readable among the fds control_poll_fds() gave. */
void control_dispatch(struct control *c, const struct pollfd *fds, unsigned n);

/* Sends an event to every client. Takes ownership of data (may be NULL). */
void control_event(struct control *c, const char *name, struct json_object *data);

/* Handles one line as if a client sent it; returns the reply (caller puts
 * it). Exposed for unit tests. */
struct json_object *control_handle_line(struct control *c, const char *line, size_t len);

#endif
