/* ferry's entry point (cli_run in cli/run.c does the work). */
#include <signal.h>
#include <stdio.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	/* A closed pipe (ssh's, or stdout) is an error return, not a death. */
	signal(SIGPIPE, SIG_IGN);
	return cli_run(argc, argv, stdout, stderr);
}
