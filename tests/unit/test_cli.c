/* Unit tests for the ferry CLI (src/cli: option parsing, virsh's output
 * formats) and the JSON-lines RPC client (src/common/rpc.c: URIs, calls
 * against a fake server on a socketpair). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "common/rpc.h"

/* ---- option parsing ---- */

static int parse(struct cli *c, const char *verb, const char *line, char *err, size_t errlen)
{
	static char buf[512]; /* the values point into it */
	char *argv[32];
	int argc = 0;
	FILE *f = fmemopen(err, errlen, "w");
	int r;

	memset(c, 0, sizeof(*c));
	c->err = f;
	c->out = stdout;
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
		argv[argc++] = t;
	r = cli_parse_args(c, cli_find_verb(verb), argc, argv);
	fclose(f);
	return r;
}

static void test_parse_positional_and_named(void **state)
{
	struct cli c;
	char err[256] = "";
	uint64_t v;

	(void)state;
	assert_int_equal(parse(&c, "migrate", "--live --verbose w1 ferry+tcp://h/ tcp://10.0.0.2",
			       err, sizeof(err)), 0);
	assert_true(cli_flag(&c, "live"));
	assert_true(cli_flag(&c, "verbose"));
	assert_false(cli_flag(&c, "offline"));
	assert_string_equal(cli_str(&c, "domain"), "w1");
	assert_string_equal(cli_str(&c, "desturi"), "ferry+tcp://h/");
	assert_string_equal(cli_str(&c, "migrateuri"), "tcp://10.0.0.2");
	/* Named forms, in any order, and --opt=value. */
	assert_int_equal(parse(&c, "migrate", "--desturi ferry+tcp://h/ --bandwidth=20 --domain w1",
			       err, sizeof(err)), 0);
	assert_string_equal(cli_str(&c, "domain"), "w1");
	assert_int_equal(cli_num(&c, "bandwidth", 0, &v), 0);
	assert_int_equal(v, 20);
	assert_null(cli_str(&c, "migrateuri"));
	/* A named option leaves the positional slot to the next word. */
	assert_int_equal(parse(&c, "domdirtyrate-calc", "--seconds 3 w1", err, sizeof(err)), 0);
	assert_string_equal(cli_str(&c, "domain"), "w1");
	assert_string_equal(cli_str(&c, "seconds"), "3");
	assert_int_equal(parse(&c, "migrate-setmaxdowntime", "w1 50", err, sizeof(err)), 0);
	assert_string_equal(cli_str(&c, "downtime"), "50");
	/* "--" ends the options: a domain named "--x". */
	assert_int_equal(parse(&c, "dominfo", "-- --x", err, sizeof(err)), 0);
	assert_string_equal(cli_str(&c, "domain"), "--x");
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *verb, *line, *msg;
	} cases[] = {
		{ "list", "--frob", "error: command 'list' doesn't support option --frob\n" },
		{ "start", "", "error: command 'start' requires <domain> option\n" },
		{ "start", "a b", "error: unexpected data 'b'\n" },
		{ "migrate", "w1", "error: command 'migrate' requires <desturi> option\n" },
		{ "migrate", "--xml", "error: expected syntax: --xml <string>\n" },
		{ "list", "--all=yes", "error: option --all takes no value\n" },
		{ "start", "--domain a --domain b", "error: option --domain already seen\n" },
		{ "define", "--file=", "error: option --file: empty value\n" },
	};
	struct cli c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";

		assert_int_equal(parse(&c, cases[i].verb, cases[i].line, err, sizeof(err)), -1);
		assert_string_equal(err, cases[i].msg);
	}
}

static void test_numbers(void **state)
{
	struct cli c;
	char err[256] = "";
	uint64_t v;
	FILE *f;

	(void)state;
	assert_int_equal(parse(&c, "migrate-setspeed", "w1 12x", err, sizeof(err)), 0);
	f = fmemopen(err, sizeof(err), "w");
	c.err = f;
	assert_int_equal(cli_num(&c, "bandwidth", 0, &v), -1);
	fclose(f);
	assert_string_equal(err, "error: Numeric value '12x' for <bandwidth> option is malformed "
			    "or out of range\n");
	assert_int_equal(cli_num(&c, "nosuch", 7, &v), 0);
	assert_int_equal(v, 7);
}

static void test_every_verb_has_help(void **state)
{
	static const char *const verbs[] = {
		"list", "define", "undefine", "create", "start", "shutdown", "destroy", "suspend",
		"resume", "dominfo", "domstate", "dumpxml", "console", "domjobinfo", "domjobabort",
		"migrate-setmaxdowntime", "migrate-getmaxdowntime", "migrate-setspeed",
		"migrate-getspeed", "domdirtyrate-calc", "domstats", "migrate", "help", "bridge",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		const struct cli_verb *v = cli_find_verb(verbs[i]);

		assert_non_null(v);
		assert_true(strlen(v->summary) > 5 && strlen(v->description) > 10);
		for (int k = 0; k < CLI_MAX_OPTS && v->opts[k].name; k++)
			assert_non_null(v->opts[k].help);
	}
	assert_null(cli_find_verb("frobnicate"));
}

/* ---- output formats ---- */

static char *capture(void (*fn)(FILE *, json_object *), const char *json)
{
	json_object *o = json_tokener_parse(json);
	char *text = NULL;
	size_t len;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(o);
	fn(f, o);
	fclose(f);
	json_object_put(o);
	return text;
}

static void test_list_table(void **state)
{
	char *t;

	(void)state;
	t = capture(print_list, "[{\"id\": 1, \"name\": \"wanderer1\", \"state\": \"running\"},"
				" {\"id\": -1, \"name\": \"b\", \"state\": \"shut off\"}]");
	/* virsh's vshTable: " cell" padded to the column width + 2; dashes
	 * width + 3 per column. */
	assert_string_equal(t, " Id   Name        State\n"
			       "----------------------------\n"
			       " 1    wanderer1   running\n"
			       " -    b           shut off\n\n");
	free(t);
	t = capture(print_list, "[]");
	assert_string_equal(t, " Id   Name   State\n--------------------\n\n");
	free(t);
	t = capture(print_list, "[{\"id\": 12345, \"name\": \"x\", \"state\": \"paused\"}]");
	assert_string_equal(t, " Id      Name   State\n------------------------\n"
			       " 12345   x      paused\n\n");
	free(t);
}

static void test_dominfo(void **state)
{
	char *t;

	(void)state;
	t = capture(print_dominfo, "{\"id\": 3, \"name\": \"w\", \"uuid\": \"u\", \"os-type\": \"hvm\","
				   " \"state\": \"running\", \"vcpus\": 2, \"max-memory-kib\": 524288,"
				   " \"used-memory-kib\": 524288, \"persistent\": true,"
				   " \"cpu-time-ns\": 1500000000}");
	assert_string_equal(t, "Id:             3\nName:           w\nUUID:           u\n"
			       "OS Type:        hvm\nState:          running\nCPU(s):         2\n"
			       "CPU time:       1.5s\nMax memory:     524288 KiB\n"
			       "Used memory:    524288 KiB\nPersistent:     yes\n"
			       "Autostart:      disable\nManaged save:   no\n"
			       "Security model: none\nSecurity DOI:   0\n");
	free(t);
	t = capture(print_dominfo, "{\"id\": -1, \"name\": \"w\", \"persistent\": false}");
	assert_non_null(strstr(t, "Id:             -\n"));
	assert_null(strstr(t, "CPU time"));
	assert_non_null(strstr(t, "Persistent:     no\n"));
	free(t);
}

static void test_jobinfo(void **state)
{
	char *t;
	double v;

	(void)state;
	assert_string_equal(print_capacity(0, &v), "B");
	assert_string_equal(print_capacity(1023, &v), "B");
	assert_string_equal(print_capacity(1024, &v), "KiB");
	assert_true(v == 1.0);
	assert_string_equal(print_capacity(3ull << 29, &v), "GiB");
	assert_true(v == 1.5);
	t = capture(print_jobinfo, "{\"type\": \"none\"}");
	assert_string_equal(t, "Job type:         None        \n");
	free(t);
	t = capture(print_jobinfo, "{\"type\": \"unbounded\", \"operation\": \"outgoing-migration\","
				   " \"time-elapsed-ms\": 1234, \"data-processed\": 1572864,"
				   " \"data-remaining\": 512, \"data-total\": 1073741824,"
				   " \"memory-bandwidth\": 115343360, \"dirty-rate\": 12,"
				   " \"page-size\": 4096, \"iteration\": 2,"
				   " \"expected-downtime-ms\": 7, \"setup-time-ms\": 4}");
	assert_non_null(strstr(t, "Job type:         Unbounded   \n"
				  "Operation:        Outgoing migration\n"
				  "Time elapsed:     1234         ms\n"
				  "Data processed:   1.500 MiB\n"
				  "Data remaining:   512.000 B\n"
				  "Data total:       1.000 GiB\n"));
	assert_non_null(strstr(t, "Memory bandwidth: 110.000 MiB/s\n"
				  "Dirty rate:       12           pages/s\n"
				  "Page size:        4096         bytes\n"
				  "Iteration:        2           \n"));
	assert_non_null(strstr(t, "Expected downtime: 7            ms\n"
				  "Setup time:       4            ms\n"));
	free(t);
	t = capture(print_jobinfo, "{\"type\": \"completed\", \"downtime-ms\": 3}");
	assert_non_null(strstr(t, "Total downtime:   3            ms\n"));
	assert_null(strstr(t, "Expected downtime"));
	free(t);
}

static void test_domstats(void **state)
{
	char *t;

	(void)state;
	t = capture(print_domstats, "[{\"name\": \"w\", \"stats\": {\"dirtyrate.calc_status\": 2,"
				    " \"dirtyrate.megabytes_per_second\": 50}}]");
	assert_string_equal(t, "Domain: 'w'\n  dirtyrate.calc_status=2\n"
			       "  dirtyrate.megabytes_per_second=50\n\n");
	free(t);
}

/* ---- URIs ---- */

static void test_uris(void **state)
{
	struct rpc_uri u;
	char err[256];

	(void)state;
	assert_int_equal(rpc_uri_parse("", &u, err, sizeof(err)), 0);
	assert_int_equal(u.transport, RPC_UNIX);
	assert_string_equal(u.path, RPC_DEFAULT_SOCKET);
	assert_int_equal(rpc_uri_parse("ferry+unix:///tmp/a.sock", &u, err, sizeof(err)), 0);
	assert_string_equal(u.path, "/tmp/a.sock");
	assert_int_equal(rpc_uri_parse("ferry+unix:///?socket=/x/y", &u, err, sizeof(err)), 0);
	assert_string_equal(u.path, "/x/y");
	assert_int_equal(rpc_uri_parse("ferry+tcp://198.18.0.2/", &u, err, sizeof(err)), 0);
	assert_int_equal(u.transport, RPC_TCP);
	assert_string_equal(u.host, "198.18.0.2");
	assert_string_equal(u.port, "16514");
	assert_int_equal(rpc_uri_parse("ferry+tcp://[fd00::1]:99", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "fd00::1");
	assert_string_equal(u.port, "99");
	assert_int_equal(rpc_uri_parse("ferry+ssh://root@dest:2222/?socket=/s", &u, err,
				       sizeof(err)), 0);
	assert_int_equal(u.transport, RPC_SSH);
	assert_string_equal(u.user, "root");
	assert_string_equal(u.host, "dest");
	assert_string_equal(u.port, "2222");
	assert_string_equal(u.path, "/s");
	assert_int_equal(rpc_uri_parse("ferry+ssh://dest", &u, err, sizeof(err)), 0);
	assert_string_equal(u.path, RPC_DEFAULT_SOCKET);
	static const char *const bad[] = {
		"qemu:///system", "ferry+tcp://", "ferry+tcp://h:0/", "ferry+tcp://h:x/",
		"ferry+tcp://u@h/", "ferry+tcp://h/path", "ferry+unix://host/p", "ferry+ssh://h/?x=1",
		"ferry+tcp://[::1/", "ferry+tcp://h:70000/",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(rpc_uri_parse(bad[i], &u, err, sizeof(err)), -EINVAL);
		assert_true(err[0]);
	}
}

/* ---- rpc_call against a fake server ---- */

struct fake {
	int fd;
	const char *script; /* lines to send after each request; "|" separates requests */
};

static void *fake_server(void *arg)
{
	struct fake *f = arg;
	char buf[4096];
	const char *p = f->script;

	(void)!write(f->fd, "{\"greeting\": {}}\n", 17);
	while (*p) {
		const char *end = strchr(p, '|');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (read(f->fd, buf, sizeof(buf)) <= 0)
			break;
		if (n == 5 && !strncmp(p, "CLOSE", 5))
			break;
		(void)!write(f->fd, p, n);
		p += n + (end ? 1 : 0);
	}
	shutdown(f->fd, SHUT_RDWR);
	return NULL;
}

static int events_seen;

static void count_event(json_object *ev, void *opaque)
{
	(void)ev;
	(void)opaque;
	events_seen++;
}

static void test_rpc_call(void **state)
{
	struct fake f = { .script = "{\"event\": \"A\"}\n{\"event\": \"B\"}\n{\"return\": {\"x\": 1}}\n"
				    "|{\"error\": {\"class\": \"NoDomain\", \"desc\": \"none\"}}\n"
				    "|not json\n"
				    "|[1]\n"
				    "|{\"neither\": 1}\n"
				    "|CLOSE" };
	struct rpc_conn c;
	json_object *ret;
	char err[256], cls[32];
	pthread_t t;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f.fd = sv[1];
	pthread_create(&t, NULL, fake_server, &f);
	rpc_attach_fd(&c, sv[0], "fake");
	assert_int_equal(rpc_recv(&c, &ret), 0); /* the greeting */
	json_object_put(ret);
	assert_int_equal(rpc_call(&c, "x", NULL, &ret, count_event, NULL, err, sizeof(err), cls), 0);
	assert_int_equal(events_seen, 2);
	assert_int_equal(json_object_get_int(json_object_object_get(ret, "x")), 1);
	json_object_put(ret);
	assert_int_equal(rpc_call(&c, "y", json_object_new_object(), &ret, NULL, NULL, err,
				  sizeof(err), cls), 1);
	assert_string_equal(err, "none");
	assert_string_equal(cls, "NoDomain");
	assert_int_equal(rpc_call(&c, "z", NULL, &ret, NULL, NULL, err, sizeof(err), cls), -EPROTO);
	assert_int_equal(rpc_call(&c, "z", NULL, &ret, NULL, NULL, err, sizeof(err), cls), -EPROTO);
	assert_int_equal(rpc_call(&c, "z", NULL, &ret, NULL, NULL, err, sizeof(err), cls), -EPROTO);
	assert_non_null(strstr(err, "malformed reply"));
	assert_int_equal(rpc_call(&c, "z", NULL, &ret, NULL, NULL, err, sizeof(err), cls), -ENODATA);
	assert_non_null(strstr(err, "connection closed"));
	pthread_join(t, NULL);
	rpc_close(&c);
	rpc_close(&c); /* twice is fine */
	close(sv[1]);
}

static void test_rpc_timeout_and_long_line(void **state)
{
	struct rpc_conn c;
	json_object *o;
	char *big;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	rpc_attach_fd(&c, sv[0], "fake");
	c.timeout_ms = 50;
	assert_int_equal(rpc_recv(&c, &o), -ETIMEDOUT);
	/* A line over the limit ends the connection. */
	big = malloc(RPC_LINE_MAX + 16);
	memset(big, 'x', RPC_LINE_MAX + 16);
	c.timeout_ms = 2000;
	{
		size_t off = 0;
		int r = 0;

		while (r != -EPROTO) {
			ssize_t n = off < RPC_LINE_MAX + 16 ?
				    send(sv[1], big + off, RPC_LINE_MAX + 16 - off, MSG_DONTWAIT) : 0;

			if (n > 0)
				off += (size_t)n;
			r = rpc_recv(&c, &o);
			assert_true(r == -EPROTO || r == -ETIMEDOUT || r == 0);
			if (r == 0)
				json_object_put(o);
		}
	}
	assert_int_equal(c.rfd, -1);
	free(big);
	rpc_close(&c);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_positional_and_named),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_every_verb_has_help),
		cmocka_unit_test(test_list_table),
		cmocka_unit_test(test_dominfo),
		cmocka_unit_test(test_jobinfo),
		cmocka_unit_test(test_domstats),
		cmocka_unit_test(test_uris),
		cmocka_unit_test(test_rpc_call),
		cmocka_unit_test(test_rpc_timeout_and_long_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
