/* ferry, the command-line tool: virsh's verbs, options and output over
 * ferryd's RPC (docs/cli.md). A verb is a table entry (name, options, run);
 * options are parsed the virsh way: `--name value`, `--name=value`, bare
 * words filling the positional options in order. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "common/rpc.h"

#define CLI_MAX_OPTS 16

enum cli_opt_type { OPT_BOOL, OPT_STRING, OPT_NUMBER };

struct cli_opt {
	const char *name;        /* without "--" */
	enum cli_opt_type type;
	bool positional;         /* may be given as a bare word (in table order) */
	bool required;
	const char *help;
};

struct cli;

struct cli_verb {
	const char *name;
	const char *group;       /* for `ferry help` */
	const char *summary;     /* one line */
	const char *description; /* for `ferry help VERB` */
	struct cli_opt opts[CLI_MAX_OPTS]; /* ends at a NULL name */
	int (*run)(struct cli *c); /* returns the exit status */
};

struct cli {
	const char *uri;
	bool quiet;
	const struct cli_verb *verb;
	const char *val[CLI_MAX_OPTS];
	bool given[CLI_MAX_OPTS];
	struct rpc_conn conn;
	bool connected;
	FILE *out, *err;
	bool err_open;            /* a progress line without its '\n' is on err */
};

extern const struct cli_verb cli_domain_verbs[];   /* cmd_domain.c */
extern const struct cli_verb cli_migrate_verbs[];  /* cmd_migrate.c */
extern const struct cli_verb cli_misc_verbs[];     /* cli.c */

/* The whole command line (argv[0] is the program): global options, one verb,
 * its run, then virsh's closing empty line on out unless -q. Returns the exit
 * status (0, or 1 after an `error:` line on err). */
int cli_run(int argc, char **argv, FILE *out, FILE *err);

/* `ferry help`: every verb, grouped. */
void cli_help_all(FILE *f);

/* Finds a verb by name; NULL if none. */
const struct cli_verb *cli_find_verb(const char *name);

/* Parses argv (the words after the verb) into c->val/given. Returns 0, or
 * -1 after printing one `error:` line. */
int cli_parse_args(struct cli *c, const struct cli_verb *v, int argc, char **argv);

/* An option's value: NULL / false when not given. */
const char *cli_str(const struct cli *c, const char *name);
bool cli_flag(const struct cli *c, const char *name);
/* A number option: 0 with *out (def when absent), -1 after an error line. */
int cli_num(const struct cli *c, const char *name, uint64_t def, uint64_t *out);

/* One RPC to ferryd (connecting first). args is taken. Returns 0 with *ret
 * (may be NULL), or -1 after printing the error the virsh way; what, when
 * given, names the failed operation ("Failed to start domain 'X'"). */
int cli_call(struct cli *c, const char *cmd, json_object *args, json_object **ret,
	     const char *what);
/* As cli_call, with events passed to on_event while waiting. */
int cli_call_events(struct cli *c, const char *cmd, json_object *args, json_object **ret,
		    const char *what, rpc_event_fn on_event, void *opaque);

/* {"domain": c's --domain} plus nothing else. */
json_object *cli_domain_args(const struct cli *c);

/* Reads an XML file (define, create, migrate --xml), NUL-terminated; NULL
 * after an error line. */
char *cli_read_xml(struct cli *c, const char *path);

/* Prints one error line (`error: ...`) on c->err. */
void cli_error(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- print.c: output formats (pure; unit-tested) ---- */

/* virsh's table: a header row (unless show_header is false: -q) and rows of
 * cells, columns padded. */
void print_table(FILE *f, const char *const *header, unsigned ncols, const char *const *cells,
		 unsigned nrows, bool show_header);
/* `list`'s table from ferryd's list reply (array); header false (-q): the
 * rows only, as vshTable. */
void print_list(FILE *f, json_object *list, bool header);
/* `dominfo` from ferryd's reply. */
void print_dominfo(FILE *f, json_object *info);
/* `domjobinfo` from ferryd's reply (virsh's cmdDomjobinfo: the figures only
 * for a running or completed job, each group only when not all zero). */
void print_jobinfo(FILE *f, json_object *job);
/* `domstats` from ferryd's reply (array). */
void print_domstats(FILE *f, json_object *stats);
/* virsh's vshPrettyCapacity: value scaled to B/KiB/MiB/GiB/TiB; returns the
 * unit, *scaled the number. */
const char *print_capacity(uint64_t bytes, double *scaled);

#endif
