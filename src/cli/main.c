/* ferry's entry point: global options (-c URI, -q), then one verb. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	struct cli c = { .out = stdout, .err = stderr };
	const struct cli_verb *v;
	int k = 1, ret;

	signal(SIGPIPE, SIG_IGN);
	c.uri = getenv("FERRY_DEFAULT_URI") ? getenv("FERRY_DEFAULT_URI") : "";
	for (; k < argc && argv[k][0] == '-'; k++) {
		if ((!strcmp(argv[k], "-c") || !strcmp(argv[k], "--connect")) && k + 1 < argc) {
			c.uri = argv[++k];
		} else if (!strcmp(argv[k], "-q") || !strcmp(argv[k], "--quiet")) {
			c.quiet = true;
		} else if (!strcmp(argv[k], "-h") || !strcmp(argv[k], "--help")) {
			cli_help_all(stdout);
			return 0;
		} else {
			cli_error(&c, "unsupported option '%s'. See --help.", argv[k]);
			return 1;
		}
	}
	if (k >= argc) {
		cli_help_all(stdout);
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
	fflush(stdout);
	return ret;
}
