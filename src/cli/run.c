/* ferry's command line: the global options (-c URI, -q), one verb, and
 * virsh's closing empty line. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* -c URI / --connect URI / --connect=URI, -q / --quiet, -h / --help; returns
 * the index of the verb, argc when there is none, or -1 after an error line
 * (-2: help was printed). */
static int global_options(struct cli *c, int argc, char **argv)
{
	int k = 1;

	for (; k < argc && argv[k][0] == '-'; k++) {
		if ((!strcmp(argv[k], "-c") || !strcmp(argv[k], "--connect")) && k + 1 < argc) {
			c->uri = argv[++k];
		} else if (!strncmp(argv[k], "--connect=", 10)) {
			c->uri = argv[k] + 10;
		} else if (!strcmp(argv[k], "-q") || !strcmp(argv[k], "--quiet")) {
			c->quiet = true;
		} else if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
			cli_help_all(c->out);
			return -2;
		} else {
			cli_error(c, "unsupported option '%s'. See --help.", argv[k]);
			return -1;
		}
	}
	return k;
}

int cli_run(int argc, char **argv, FILE *out, FILE *err)
{
	struct cli c = { .out = out, .err = err };
	const struct cli_verb *v;
	int k, ret;

	c.uri = getenv("FERRY_DEFAULT_URI") ? getenv("FERRY_DEFAULT_URI") : "";
	k = global_options(&c, argc, argv);
	if (k < 0)
		return k == -2 ? 0 : 1;
	if (k >= argc) {
		cli_help_all(out);
		return 0;
	}
	v = cli_find_verb(argv[k]);
	if (!v) {
		cli_error(&c, "unknown command: '%s'", argv[k]);
		return 1;
	}
	if (cli_parse_args(&c, v, argc - k - 1, argv + k + 1))
		return 1;
	ret = v->run(&c);
	if (c.connected)
		rpc_close(&c.conn);
	/* virsh ends every command it ran, failed or not, with an empty line
	 * on stdout unless -q (vshCommandRun); bridge's stdout is a byte stream. */
	if (!c.quiet && strcmp(v->name, "bridge"))
		fputc('\n', out);
	fflush(out);
	return ret;
}
