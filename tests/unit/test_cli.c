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
#include <sys/un.h>
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

static void list_header(FILE *f, json_object *o)
{
	print_list(f, o, true);
}

static void list_quiet(FILE *f, json_object *o)
{
	print_list(f, o, false);
}

static void test_list_table(void **state)
{
	char *t;

	(void)state;
	t = capture(list_header, "[{\"id\": 1, \"name\": \"wanderer1\", \"state\": \"running\"},"
				 " {\"id\": -1, \"name\": \"b\", \"state\": \"shut off\"}]");
	/* virsh's vshTable: " cell" padded to the column width + 2; dashes
	 * width + 3 per column. */
	assert_string_equal(t, " Id   Name        State\n"
			       "----------------------------\n"
			       " 1    wanderer1   running\n"
			       " -    b           shut off\n");
	free(t);
	t = capture(list_header, "[]");
	assert_string_equal(t, " Id   Name   State\n--------------------\n");
	free(t);
	t = capture(list_header, "[{\"id\": 12345, \"name\": \"x\", \"state\": \"paused\"}]");
	assert_string_equal(t, " Id      Name   State\n------------------------\n"
			       " 12345   x      paused\n");
	free(t);
	/* -q: no header, and the header's widths do not count */
	t = capture(list_quiet, "[{\"id\": 1, \"name\": \"ab\", \"state\": \"running\"},"
				" {\"id\": 10, \"name\": \"c\", \"state\": \"paused\"}]");
	assert_string_equal(t, " 1    ab   running\n 10   c    paused\n");
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
				   " \"memory-processed\": 1572864, \"memory-remaining\": 512,"
				   " \"memory-total\": 1073741824,"
				   " \"memory-bandwidth\": 115343360, \"dirty-rate\": 12,"
				   " \"page-size\": 4096, \"iteration\": 2, \"postcopy-requests\": 0,"
				   " \"constant-pages\": 5, \"normal-pages\": 384,"
				   " \"normal-data\": 1572864,"
				   " \"expected-downtime-ms\": 7, \"setup-time-ms\": 4}");
	/* virsh's cmdDomjobinfo, line for line */
	assert_string_equal(t, "Job type:         Unbounded   \n"
			       "Operation:        Outgoing migration\n"
			       "Time elapsed:     1234         ms\n"
			       "Data processed:   1.500 MiB\n"
			       "Data remaining:   512.000 B\n"
			       "Data total:       1.000 GiB\n"
			       "Memory processed: 1.500 MiB\n"
			       "Memory remaining: 512.000 B\n"
			       "Memory total:     1.000 GiB\n"
			       "Memory bandwidth: 110.000 MiB/s\n"
			       "Dirty rate:       12           pages/s\n"
			       "Page size:        4096         bytes\n"
			       "Iteration:        2           \n"
			       "Postcopy requests: 0           \n"
			       "Constant pages:   5           \n"
			       "Normal pages:     384         \n"
			       "Normal data:      1.500 MiB\n"
			       "Expected downtime: 7            ms\n"
			       "Setup time:       4            ms\n");
	free(t);
	/* All-zero groups and a zero bandwidth are left out, as virsh does
	 * (a migration still in setup, an incoming one). */
	t = capture(print_jobinfo, "{\"type\": \"unbounded\", \"operation\": \"incoming-migration\","
				   " \"time-elapsed-ms\": 5, \"data-total\": 0, \"memory-total\": 0,"
				   " \"memory-bandwidth\": 0, \"dirty-rate\": 0}");
	assert_string_equal(t, "Job type:         Unbounded   \n"
			       "Operation:        Incoming migration\n"
			       "Time elapsed:     5            ms\n");
	free(t);
	t = capture(print_jobinfo, "{\"type\": \"completed\", \"downtime-ms\": 3,"
				   " \"expected-downtime-ms\": 9, \"memory-total\": 2048,"
				   " \"memory-bandwidth\": 0}");
	assert_non_null(strstr(t, "Memory total:     2.000 KiB\n"));
	assert_null(strstr(t, "Memory bandwidth"));
	assert_non_null(strstr(t, "Total downtime:   3            ms\n"));
	assert_null(strstr(t, "Expected downtime"));
	free(t);
	/* A failed job: its type and operation only (virsh without --anystats). */
	t = capture(print_jobinfo, "{\"type\": \"failed\", \"operation\": \"outgoing-migration\","
				   " \"time-elapsed-ms\": 5, \"error\": \"x\"}");
	assert_string_equal(t, "Job type:         Failed      \n"
			       "Operation:        Outgoing migration\n");
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
	c.timeout_ms = 20; /* this thread is the sender: a timeout means "send more" */
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


/* ---- whole command lines against a fake ferryd ---- */

/* A ferryd stand-in on a UNIX socket: greets each connection, then answers
 * each request with the reply lines given for its "execute" (events may come
 * first), and keeps the last request's text. */
struct fake_ferryd {
	int lfd;
	char path[108];
	const char *const (*replies)[2]; /* {execute, lines}, ends at NULL */
	char last[1024];
	pthread_t t;
};

static const char *fake_reply(struct fake_ferryd *f, json_object *req)
{
	json_object *cmd;

	json_object_object_get_ex(req, "execute", &cmd);
	for (size_t i = 0; f->replies[i][0]; i++)
		if (!strcmp(f->replies[i][0], json_object_get_string(cmd)))
			return f->replies[i][1];
	return "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"unknown command\"}}\n";
}

static void *fake_ferryd_main(void *arg)
{
	struct fake_ferryd *f = arg;
	int fd;

	while ((fd = accept(f->lfd, NULL, NULL)) >= 0) {
		static const char greeting[] = "{\"ferryd\": {\"hostname\": \"fake\"}}\n";
		struct rpc_conn c;
		json_object *req;

		rpc_attach_fd(&c, fd, "client");
		(void)!write(fd, greeting, strlen(greeting));
		while (!rpc_recv(&c, &req)) {
			const char *lines = fake_reply(f, req);

			snprintf(f->last, sizeof(f->last), "%s",
				 json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(req);
			(void)!write(fd, lines, strlen(lines));
		}
		rpc_close(&c);
	}
	return NULL;
}

static void fake_ferryd_start(struct fake_ferryd *f, const char *const (*replies)[2])
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->replies = replies;
	snprintf(f->path, sizeof(f->path), "/tmp/ferry-test-cli-%d.sock", (int)getpid());
	unlink(f->path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->t, NULL, fake_ferryd_main, f), 0);
}

static void fake_ferryd_stop(struct fake_ferryd *f)
{
	shutdown(f->lfd, SHUT_RDWR); /* accept() returns */
	pthread_join(f->t, NULL);
	close(f->lfd);
	unlink(f->path);
}

struct run_result {
	int rc;
	char out[2048], err[1024];
};

/* Runs `ferry -c ferry+unix://SOCKET WORDS...` (WORDS split at spaces; a
 * leading "!" means no -c). */
static void run(struct fake_ferryd *f, const char *line, struct run_result *r)
{
	char buf[512], uri[160], *argv[40];
	int argc = 0;
	FILE *out, *err;

	memset(r->out, 0, sizeof(r->out));
	memset(r->err, 0, sizeof(r->err));
	out = fmemopen(r->out, sizeof(r->out), "w");
	err = fmemopen(r->err, sizeof(r->err), "w");
	argv[argc++] = "ferry";
	if (line[0] == '!') {
		line++;
	} else {
		snprintf(uri, sizeof(uri), "ferry+unix://%s", f->path);
		argv[argc++] = "-c";
		argv[argc++] = uri;
	}
	snprintf(buf, sizeof(buf), "%s", line);
	for (char *t = strtok(buf, " "); t && argc < 39; t = strtok(NULL, " "))
		argv[argc++] = t;
	argv[argc] = NULL;
	r->rc = cli_run(argc, argv, out, err);
	fclose(out);
	fclose(err);
}

static const char *const domain_replies[][2] = {
	{ "list", "{\"return\": [{\"id\": 1, \"name\": \"w1\", \"state\": \"running\"},"
		  " {\"id\": -1, \"name\": \"other\", \"state\": \"shut off\"}]}\n" },
	{ "start", "{\"return\": {\"id\": 4}}\n" },
	{ "destroy", "{\"return\": {\"name\": \"w1\"}}\n" },
	{ "shutdown", "{\"error\": {\"class\": \"NoDomain\", \"desc\": \"no domain 'x'\"}}\n" },
	{ "suspend", "{\"error\": {\"class\": \"OperationInvalid\","
		     " \"desc\": \"domain is not running\"}}\n" },
	{ "resume", "{\"error\": {\"class\": \"GenericError\", \"desc\": \"it broke\"}}\n" },
	{ "domstate", "{\"return\": {\"state\": \"shut off\", \"reason\": \"shutdown\"}}\n" },
	{ "dumpxml", "{\"return\": {\"xml\": \"<domain/>\\n\"}}\n" },
	{ "migrate-getspeed", "{\"return\": {\"bandwidth-mib\": 0}}\n" },
	{ "migrate-getmaxdowntime", "{\"return\": {\"downtime-ms\": 10}}\n" },
	{ "migrate-setspeed", "{\"return\": {}}\n" },
	{ "domdirtyrate-calc", "{\"return\": {}}\n" },
	{ "domstats", "{\"return\": [{\"name\": \"w1\", \"stats\": {\"state.state\": 1}}]}\n" },
	{ "undefine", "not json\n" },
	{ NULL, NULL },
};

static void test_cli_domain_verbs(void **state)
{
	struct fake_ferryd f;
	struct run_result r;

	(void)state;
	fake_ferryd_start(&f, domain_replies);
	/* virsh's closing empty line after every command, not with -q */
	run(&f, "list --all", &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, " Id   Name    State\n------------------------\n"
				   " 1    w1      running\n -    other   shut off\n\n");
	assert_string_equal(f.last, "{\"execute\":\"list\",\"arguments\":{\"all\":true}}");
	run(&f, "-q list", &r);
	assert_string_equal(r.out, " 1   w1      running\n -   other   shut off\n");
	run(&f, "list --name", &r);
	assert_string_equal(r.out, "w1\nother\n\n");
	run(&f, "start --paused w1", &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "Domain 'w1' started\n\n");
	assert_string_equal(f.last, "{\"execute\":\"start\",\"arguments\":{\"domain\":\"w1\","
				    "\"paused\":true}}");
	run(&f, "-q start w1", &r);
	assert_string_equal(r.out, "");
	/* the name ferryd replies with, when it does (given by id here) */
	run(&f, "destroy 1", &r);
	assert_string_equal(r.out, "Domain 'w1' destroyed\n\n");
	run(&f, "domstate w1 --reason", &r);
	assert_string_equal(r.out, "shut off (shutdown)\n\n");
	run(&f, "dumpxml w1", &r);
	assert_string_equal(r.out, "<domain/>\n\n");
	run(&f, "domstats --state w1", &r);
	assert_string_equal(r.out, "Domain: 'w1'\n  state.state=1\n\n\n");
	assert_string_equal(f.last, "{\"execute\":\"domstats\",\"arguments\":{\"groups\":[\"state\"],"
				    "\"domains\":[\"w1\"]}}");
	run(&f, "domdirtyrate-calc w1 --seconds 3", &r);
	assert_string_equal(r.out, "Start to calculate domain's memory dirty rate "
				   "successfully.\n\n");
	fake_ferryd_stop(&f);
}

static void test_cli_errors_and_exit_codes(void **state)
{
	static const struct {
		const char *line, *err;
	} cases[] = {
		{ "frob", "error: unknown command: 'frob'\n" },
		{ "list --frob", "error: command 'list' doesn't support option --frob\n" },
		{ "start", "error: command 'start' requires <domain> option\n" },
		{ "start a b", "error: unexpected data 'b'\n" },
		{ "migrate-setspeed w1 fast", "error: Numeric value 'fast' for <bandwidth> option is "
					      "malformed or out of range\n" },
		{ "define /nonexistent/x.xml", "error: Failed to open file '/nonexistent/x.xml': No "
					       "such file or directory\n" },
		{ "shutdown x", "error: failed to get domain 'x'\n" },
		{ "suspend w1", "error: Failed to suspend domain 'w1': Requested operation is not "
				"valid: domain is not running\n" },
		{ "resume w1", "error: Failed to resume domain 'w1': it broke\n" },
		{ "domjobabort w1", "error: unknown command\n" },
		{ "migrate --live --offline w1 ferry+tcp://h/", "error: Options --live and --offline "
							       "are mutually exclusive\n" },
		{ "migrate --timeout-suspend w1 ferry+tcp://h/", "error: Option --timeout is "
				"required by option --timeout-suspend\n" },
		{ "!-c qemu:///system list", "error: failed to connect to the hypervisor: unsupported "
				"URI scheme 'qemu' (ferry+unix, ferry+tcp, ferry+ssh)\n" },
		{ "!-c ferry+unix:///nonexistent/s list", "error: failed to connect to the hypervisor:"
				" cannot connect to /nonexistent/s: No such file or directory\n" },
		{ "!--bogus list", "error: unsupported option '--bogus'. See --help.\n" },
		{ "help frob", "error: command or command group 'frob' doesn't exist\n" },
	};
	struct fake_ferryd f;
	struct run_result r;

	(void)state;
	fake_ferryd_start(&f, domain_replies);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run(&f, cases[i].line, &r);
		assert_int_equal(r.rc, 1);
		assert_string_equal(r.err, cases[i].err);
	}
	/* a malformed reply is a transport error: one line naming the peer */
	run(&f, "undefine w1", &r);
	assert_int_equal(r.rc, 1);
	assert_non_null(strstr(r.err, ": malformed reply\n"));
	run(&f, "migrate-getspeed w1", &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.out, "8796093022207\n\n");
	run(&f, "migrate-getmaxdowntime --domain w1", &r);
	assert_string_equal(r.out, "10\n\n");
	run(&f, "help list", &r);
	assert_int_equal(r.rc, 0);
	assert_non_null(strstr(r.out, "list [--all] [--name]"));
	fake_ferryd_stop(&f);
}

static const char *const migrate_ok[][2] = {
	{ "migrate", "{\"event\": \"MIGRATION_PROGRESS\", \"data\": {\"percent\": 10}}\n"
		     "{\"event\": \"MIGRATION_PROGRESS\", \"data\": {\"percent\": 10}}\n"
		     "{\"event\": \"MIGRATION_PROGRESS\", \"data\": {\"percent\": 100}}\n"
		     "{\"return\": {\"downtime-ms\": 3}}\n" },
	{ NULL, NULL },
};

static const char *const migrate_fail[][2] = {
	{ "migrate", "{\"event\": \"MIGRATION_PROGRESS\", \"data\": {\"percent\": 45}}\n"
		     "{\"error\": {\"class\": \"MigrationFailed\", \"desc\": \"the link broke\"}}\n" },
	{ NULL, NULL },
};

static void test_cli_migrate(void **state)
{
	struct fake_ferryd f;
	struct run_result r;

	(void)state;
	fake_ferryd_start(&f, migrate_ok);
	run(&f, "migrate --live --verbose --bandwidth 20 w1 ferry+tcp://h/ tcp://10.0.0.2", &r);
	assert_int_equal(r.rc, 0);
	/* virsh: a repeated figure is not printed again, 100 only at the end,
	 * whose line virsh's closing empty line (stdout) ends */
	assert_string_equal(r.err, "\rMigration: [ 10 %]\rMigration: [ 99 %]\rMigration: [100 %]");
	assert_string_equal(r.out, "\n");
	assert_non_null(strstr(f.last, "\"domain\":\"w1\""));
	assert_non_null(strstr(f.last, "\"desturi\":\"ferry+tcp://h/\""));
	assert_non_null(strstr(f.last, "\"migrateuri\":\"tcp://10.0.0.2\""));
	assert_non_null(strstr(f.last, "\"live\":true,\"offline\":false"));
	assert_non_null(strstr(f.last, "\"bandwidth-mib\":20"));
	assert_non_null(strstr(f.last, "\"progress\":true"));
	run(&f, "migrate --domain w1 --desturi ferry+tcp://h/", &r);
	assert_int_equal(r.rc, 0);
	assert_string_equal(r.err, "");
	assert_non_null(strstr(f.last, "\"progress\":false"));
	fake_ferryd_stop(&f);
	fake_ferryd_start(&f, migrate_fail);
	run(&f, "migrate --verbose w1 ferry+tcp://h/", &r);
	assert_int_equal(r.rc, 1);
	/* the error starts a line of its own */
	assert_string_equal(r.err, "\rMigration: [ 45 %]\nerror: the link broke\n");
	fake_ferryd_stop(&f);
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
		cmocka_unit_test(test_cli_domain_verbs),
		cmocka_unit_test(test_cli_errors_and_exit_codes),
		cmocka_unit_test(test_cli_migrate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
