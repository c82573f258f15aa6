/* JSON-lines RPC client: the framing ferry-vmm's control socket speaks
 * (docs/control-protocol.md) and ferryd's RPC (docs/ferryd-rpc.md), as used
 * by the ferry CLI (to ferryd), ferryd (to ferry-vmm, and to the ferryd of
 * another host). One object per line; a greeting object first; then
 * {"execute", "arguments"} requests answered by {"return"} or {"error"},
 * with {"event"} objects possibly in between. */
#ifndef FERRY_COMMON_RPC_H
#define FERRY_COMMON_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#define RPC_LINE_MAX        (1u << 20)   /* longer lines end the connection */
#define RPC_DEFAULT_SOCKET  "/run/ferry/ferryd.sock"
#define RPC_DEFAULT_TCP_PORT 16514

enum rpc_transport { RPC_UNIX, RPC_TCP, RPC_SSH };

/* A parsed connection URI:
 *   ferry+unix:///PATH               (PATH "" = RPC_DEFAULT_SOCKET: "ferry+unix:///")
 *   ferry+unix:///?socket=PATH       (libvirt's spelling, also accepted)
 *   ferry+tcp://HOST[:PORT]/         (PORT default RPC_DEFAULT_TCP_PORT; HOST may be [v6])
 *   ferry+ssh://[USER@]HOST[:PORT]/[?socket=PATH]
 *                                    runs `ssh [-p PORT] [-l USER] -T -o BatchMode=yes HOST
 *                                    -- ferry bridge PATH` (the remote socket, default
 *                                    RPC_DEFAULT_SOCKET); the program is $FERRY_SSH if set,
 *                                    else "ssh" from PATH.
 * "ferry:///" and "" mean the local default socket. */
struct rpc_uri {
	enum rpc_transport transport;
	char host[256];   /* TCP, SSH: without brackets */
	char port[8];     /* TCP, SSH: "" when not given for SSH */
	char user[64];    /* SSH: "" when not given */
	char path[108];   /* UNIX: the socket; SSH: the remote socket */
};

/* Returns 0, or -EINVAL with one line in err ("unsupported URI scheme
 * 'xen'", "ferry+tcp:// needs a host", ...). */
int rpc_uri_parse(const char *uri, struct rpc_uri *u, char *err, size_t errlen);

struct rpc_conn {
	int rfd, wfd;           /* the socket twice, or an ssh child's pipes; -1 when closed */
	pid_t child;            /* ssh, or 0 */
	char *rbuf;             /* bytes read but not yet returned */
	size_t rlen, rcap;
	int timeout_ms;         /* for each read or write; -1: none (default 30000) */
	json_object *greeting;  /* the server's first line */
	char peer[128];         /* for messages: the URI or path */
};

/* Connects and reads the greeting (within timeout_ms; -1: no limit). Returns
 * 0, or -errno with one line in err naming the URI ("cannot connect to
 * ferry+tcp://198.18.0.2:16514/: Connection refused"). */
int rpc_connect(struct rpc_conn *c, const struct rpc_uri *u, int timeout_ms, char *err,
		size_t errlen);
int rpc_connect_unix(struct rpc_conn *c, const char *path, int timeout_ms, char *err,
		     size_t errlen);
/* Takes over an already connected fd (both directions); no greeting is read. */
void rpc_attach_fd(struct rpc_conn *c, int fd, const char *peer);

/* Called for each event line read while waiting for a reply; the object is
 * borrowed. */
typedef void (*rpc_event_fn)(json_object *event, void *opaque);

/* Sends {"execute": cmd, "arguments": args} (args taken, may be NULL) and
 * waits for the reply, passing events to on_event (may be NULL: dropped).
 * Returns 0 with *ret the "return" value (owned by the caller; may be NULL
 * if ret is NULL), 1 with the server's error: err = its "desc", *err_class
 * (if given, NUL-terminated, up to 32 bytes) its "class"; or -errno for a
 * transport failure (err says what: "connection to X closed", "timed out",
 * "malformed reply"). After -ETIMEDOUT the reply may still come and would
 * be taken as the next call's: close the connection rather than reuse it. */
int rpc_call(struct rpc_conn *c, const char *cmd, json_object *args, json_object **ret,
	     rpc_event_fn on_event, void *opaque, char *err, size_t errlen, char *err_class);

/* Low level: write one object as a line (not taken). 0 or -errno. */
int rpc_send(struct rpc_conn *c, json_object *obj);
/* Reads one line as an object (the caller owns it). 0, -ENODATA on a clean
 * end of stream, -ETIMEDOUT, -EPROTO (not JSON or not an object, or too
 * long), -errno. */
int rpc_recv(struct rpc_conn *c, json_object **obj);

/* Closes, and reaps an ssh child (killing it if it does not end within a
 * second). Safe to call twice. */
void rpc_close(struct rpc_conn *c);

/* Raw byte mode after a "console" reply: bytes already buffered behind the
 * reply line are handed back here (moved out of c). */
size_t rpc_take_buffered(struct rpc_conn *c, char *out, size_t cap);

#endif
