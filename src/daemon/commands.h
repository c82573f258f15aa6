/* ferryd's RPC commands (docs/ferryd-rpc.md): the dispatch table and the
 * helpers each handler uses to read its arguments. */
#ifndef FERRY_DAEMON_COMMANDS_H
#define FERRY_DAEMON_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "common/rpc.h"
#include "daemon/daemon.h"

struct cmd_error {
	const char *cls;   /* NULL: no error */
	char desc[1024];
};

/* One client connection. */
struct client {
	struct daemon *d;
	struct rpc_conn conn;
	bool tcp;              /* came in over --listen */
	char local_host[64];   /* tcp: the address the peer reached us at */
	int raw_fd;            /* after `console`: bytes are copied to and from it */
};

/* What a command takes: each argument's name and JSON type. The getters
 * below follow src/common/jsonarg.h's rules (absent or null: not given). */
enum arg_type { ARG_STRING = 1, ARG_BOOL, ARG_UINT, ARG_ARRAY, ARG_OBJECT };

struct arg_spec {
	const char *name; /* NULL ends a spec */
	enum arg_type type;
};

typedef json_object *(*cmd_fn)(struct client *cl, json_object *args, struct cmd_error *e);

/* A command on the domain its "domain" argument names: the dispatcher
 * looks it up, and calls this with d->lock held and dom referenced (and
 * puts both back after). It may drop the lock for a while (to wait for the
 * VM, say) as long as it takes it again before it returns. */
typedef json_object *(*cmd_dom_fn)(struct client *cl, struct dom *dom, json_object *args,
				   struct cmd_error *e);

struct cmd {
	const char *name;
	cmd_fn fn;                   /* either this */
	cmd_dom_fn dom_fn;           /* or this */
	const struct arg_spec *args; /* what it takes, checked before it runs */
};

/* Sets e (class, printf-style description); returns NULL for `return cmd_fail(...)`. */
json_object *cmd_fail(struct cmd_error *e, const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The spec of commands that take only "domain". */
extern const struct arg_spec args_domain_only[];

/* False (and e set) when args has a member not in spec, or one of another
 * type: after it, a handler's arg_bool cannot meet a string "false". The
 * dispatcher checks every command's spec so. */
bool args_check(json_object *args, const struct arg_spec spec[], struct cmd_error *e);
/* A string argument; NULL when absent (required: e set). */
const char *arg_str(json_object *args, const char *key, bool required, struct cmd_error *e);
/* A boolean argument (args_check checked its type); false when absent. */
bool arg_bool(json_object *args, const char *key);
/* An unsigned argument in [lo, hi]; def when absent. False with e set. */
bool arg_u64(json_object *args, const char *key, uint64_t lo, uint64_t hi, uint64_t def,
	     uint64_t *out, struct cmd_error *e);
/* The domain named by args' "domain" (name, UUID or id), referenced (lock held). */
struct dom *arg_domain_locked(struct daemon *d, json_object *args, struct cmd_error *e);

/* Sends an event line to the client; false when it is gone. */
bool client_event(struct client *cl, const char *name, json_object *data);

extern const struct cmd lifecycle_cmds[];   /* lifecycle.c */
extern const struct cmd info_cmds[];        /* info.c */
extern const struct cmd mig_out_cmds[];     /* migrate_out.c */
extern const struct cmd mig_in_cmds[];      /* migrate_in.c */

#endif
