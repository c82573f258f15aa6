/* Unit tests for the control protocol (src/vmm/control.h): lines go
 * through control_handle_line() of a control opened without a socket, with
 * a fake command table; the replies are checked as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "vmm/control.h"

struct fake_ctx {
	unsigned calls;
	char last_args[256]; /* the arguments the last handler saw, as JSON */
};

static void remember(struct fake_ctx *f, struct json_object *args)
{
	f->calls++;
	snprintf(f->last_args, sizeof(f->last_args), "%s",
		 args ? json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN) : "(null)");
}

/* Returns nothing: the reply is {"return": {}}. */
static int cmd_stop(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	(void)ret, (void)err, (void)errlen;
	remember(ctx, args);
	return 0;
}

/* Returns {"status": "running", "n": <arguments.n or 0>}. */
static int cmd_status(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		      size_t errlen)
{
	struct json_object *o = json_object_new_object(), *n = NULL;

	(void)err, (void)errlen;
	remember(ctx, args);
	json_object_object_add(o, "status", json_object_new_string("running"));
	if (args)
		json_object_object_get_ex(args, "n", &n);
	json_object_object_add(o, "n", json_object_new_int64(n ? json_object_get_int64(n) : 0));
	*ret = o;
	return 0;
}

/* Fails with a message. */
static int cmd_fail(void *ctx, struct json_object *args, struct json_object **ret, char *err,
		    size_t errlen)
{
	(void)ret;
	remember(ctx, args);
	snprintf(err, errlen, "cannot do that: %s", "busy");
	return -1;
}

/* Fails without saying why. */
static int cmd_fail_silent(void *ctx, struct json_object *args, struct json_object **ret,
			   char *err, size_t errlen)
{
	(void)ret, (void)err, (void)errlen;
	remember(ctx, args);
	return -1;
}

static const struct control_command cmds[] = {
	{ "stop", cmd_stop },
	{ "query-status", cmd_status },
	{ "fail", cmd_fail },
	{ "fail-silent", cmd_fail_silent },
};

struct fix {
	struct control c;
	struct fake_ctx ctx;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	if (!f || control_open(&f->c, NULL, cmds, ARRAY_SIZE(cmds), &f->ctx) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	control_close(&f->c);
	free(f);
	return 0;
}

/* Sends one line; returns the reply (to be put by the caller). */
static struct json_object *send_line(struct fix *f, const char *line)
{
	struct json_object *r = control_handle_line(&f->c, line, strlen(line));

	if (!r || !json_object_is_type(r, json_type_object))
		fail_msg("no JSON object in reply to %s", line);
	return r;
}

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("reply %s has no \"%s\"",
			 json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), key);
	return v;
}

/* Why the reply to line is not an error of class cls whose desc contains
 * piece (when not NULL), or NULL when it is. */
static const char *error_mismatch(struct fix *f, const char *line, const char *cls,
				  const char *piece, char *why, size_t n)
{
	struct json_object *r = control_handle_line(&f->c, line, strlen(line));
	struct json_object *e = NULL, *c = NULL, *d = NULL;
	const char *text = r ? json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN) : "NULL";

	if (!json_object_object_get_ex(r, "error", &e) || json_object_object_get_ex(r, "return", NULL))
		snprintf(why, n, "line \"%s\" got %s, not an error", line, text);
	else if (!json_object_object_get_ex(e, "class", &c) ||
		 strcmp(json_object_get_string(c), cls))
		snprintf(why, n, "line \"%s\" got %s, want class %s", line, text, cls);
	else if (!json_object_object_get_ex(e, "desc", &d) ||
		 !json_object_is_type(d, json_type_string) || !json_object_get_string_len(d))
		snprintf(why, n, "line \"%s\" got %s, without a desc", line, text);
	else if (piece && !strstr(json_object_get_string(d), piece))
		snprintf(why, n, "line \"%s\" got %s: desc does not mention \"%s\"", line, text,
			 piece);
	else
		why = NULL;
	json_object_put(r);
	return why;
}

/* Fails the test (after freeing the reply) unless the reply to line is an
 * error of class cls whose desc contains piece. */
static void expect_error(struct fix *f, const char *line, const char *cls, const char *piece)
{
	char why[512];

	if (error_mismatch(f, line, cls, piece, why, sizeof(why)))
		fail_msg("%s", why);
}

static void test_command_returns_empty_object(void **state)
{
	struct fix *f = *state;
	struct json_object *r = send_line(f, "{\"execute\": \"stop\"}"), *ret;

	ret = member(r, "return");
	assert_true(json_object_is_type(ret, json_type_object));
	assert_int_equal(json_object_object_length(ret), 0);
	assert_false(json_object_object_get_ex(r, "error", NULL));
	assert_false(json_object_object_get_ex(r, "id", NULL));
	assert_int_equal(json_object_object_length(r), 1);
	assert_int_equal(f->ctx.calls, 1);
	assert_string_equal(f->ctx.last_args, "(null)");
	json_object_put(r);
}

static void test_command_return_value_and_args(void **state)
{
	struct fix *f = *state;
	struct json_object *r, *ret;

	r = send_line(f, "{\"execute\":\"query-status\",\"arguments\":{\"n\":42}}");
	ret = member(r, "return");
	assert_string_equal(json_object_get_string(member(ret, "status")), "running");
	assert_int_equal(json_object_get_int64(member(ret, "n")), 42);
	assert_string_equal(f->ctx.last_args, "{\"n\":42}");
	json_object_put(r);
	/* Empty arguments are an object too. */
	r = send_line(f, "{\"arguments\": {}, \"execute\": \"query-status\"}");
	assert_int_equal(json_object_get_int64(member(member(r, "return"), "n")), 0);
	assert_string_equal(f->ctx.last_args, "{}");
	json_object_put(r);
}

static void test_id_echoed(void **state)
{
	static const char *ids[] = { "7", "\"abc\"", "{\"x\":[1,2]}", "null", "-1.5" };
	struct fix *f = *state;
	char line[256];

	for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
		struct json_object *r, *id, *want = json_tokener_parse(ids[i]);

		/* On success... */
		snprintf(line, sizeof(line), "{\"execute\":\"stop\",\"id\":%s}", ids[i]);
		r = send_line(f, line);
		member(r, "return");
		id = member(r, "id");
		if (!json_object_equal(id, want))
			fail_msg("id %s came back as %s", ids[i], json_object_to_json_string(id));
		json_object_put(r);
		/* ...and on every error after the line was parsed. */
		snprintf(line, sizeof(line), "{\"execute\":\"nope\",\"id\":%s}", ids[i]);
		r = send_line(f, line);
		member(r, "error");
		assert_true(json_object_equal(member(r, "id"), want));
		json_object_put(r);
		snprintf(line, sizeof(line), "{\"execute\":\"fail\",\"id\":%s}", ids[i]);
		r = send_line(f, line);
		member(r, "error");
		assert_true(json_object_equal(member(r, "id"), want));
		json_object_put(r);
		snprintf(line, sizeof(line), "{\"id\":%s,\"bogus\":1}", ids[i]);
		r = send_line(f, line);
		member(r, "error");
		assert_true(json_object_equal(member(r, "id"), want));
		json_object_put(r);
		json_object_put(want);
	}
}

static void test_unknown_command(void **state)
{
	struct fix *f = *state;

	expect_error(f, "{\"execute\": \"reboot-the-moon\"}", "CommandNotFound",
		     "reboot-the-moon");
	expect_error(f, "{\"execute\": \"\"}", "CommandNotFound", NULL);
	/* Names match exactly. */
	expect_error(f, "{\"execute\": \"STOP\"}", "CommandNotFound", NULL);
	expect_error(f, "{\"execute\": \"stop \"}", "CommandNotFound", NULL);
	assert_int_equal(f->ctx.calls, 0);
}

static void test_generic_errors(void **state)
{
	static const struct {
		const char *line, *piece;
	} cases[] = {
		/* Missing or non-string "execute". */
		{ "{}", "execute" },
		{ "{\"arguments\":{}}", "execute" },
		{ "{\"execute\":1}", "execute" },
		{ "{\"execute\":null}", "execute" },
		{ "{\"execute\":[\"stop\"]}", "execute" },
		/* Not an object. */
		{ "[]", "object" },
		{ "[{\"execute\":\"stop\"}]", "object" },
		{ "\"stop\"", "object" },
		{ "[] ", "object" },
		{ "{\"a\":{\"execute\":\"stop\"}}", "execute" },
		/* "arguments" must be an object. */
		{ "{\"execute\":\"stop\",\"arguments\":[]}", "arguments" },
		{ "{\"execute\":\"stop\",\"arguments\":1}", "arguments" },
		{ "{\"execute\":\"stop\",\"arguments\":null}", "arguments" },
		{ "{\"execute\":\"stop\",\"arguments\":\"x\"}", "arguments" },
		/* Unexpected members. */
		{ "{\"execute\":\"stop\",\"argument\":{}}", "argument" },
		{ "{\"execute\":\"stop\",\"ID\":1}", "ID" },
		{ "{\"execute\":\"stop\",\"x\":1,\"id\":2}", "\"x\"" },
		/* Malformed JSON. */
		{ "{", "JSON" },
		{ "{\"execute\":\"stop\"", "JSON" },
		{ "{\"execute\" \"stop\"}", "JSON" },
		{ "", "JSON" },
		{ "   ", "JSON" },
		{ "\x01\x02", "JSON" },
		{ "{\"execute\":\"st\xffop\"", "JSON" },
		/* Trailing garbage. */
		{ "{\"execute\":\"stop\"}x", "trailing" },
		{ "{\"execute\":\"stop\"}{\"execute\":\"stop\"}", "trailing" },
		{ "{\"execute\":\"stop\"} 1", "trailing" },
		{ "{\"execute\":\"stop\"}]", "trailing" },
	};
	struct fix *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		expect_error(f, cases[i].line, "GenericError", cases[i].piece);
	/* None of these reached a handler. */
	assert_int_equal(f->ctx.calls, 0);
}

/* Complete JSON values that are not objects get the "must be an object"
 * answer like "[]" and "\"stop\"" do. json-c cannot tell that a bare
 * literal or number at the end of the buffer is complete (it reports
 * json_tokener_continue) and returns NULL for a parsed "null", so
 * control_handle_line() answers "JSON parse error: continue" or even
 * "JSON parse error: success". */
static void test_scalar_lines(void **state)
{
	static const char *lines[] = { "null", "true", "false", "1", "-2.5", "null ", "true " };
	struct fix *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
		expect_error(f, lines[i], "GenericError", "object");
	assert_int_equal(f->ctx.calls, 0);
}

/* Lines that are not JSON (RFC 8259) but that json-c's default, lenient
 * tokener accepts, so they run the command: control_handle_line() never
 * sets JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8, which reject all
 * of these. The invalid UTF-8 id is even echoed back raw, making the reply
 * itself invalid JSON for the client. */
static void test_strict_json(void **state)
{
	static const char *lines[] = {
		"{\"execute\":\"stop\",}",
		"{'execute':'stop'}",
		"{\"execute\":\"stop\",\"id\":[1,]}",
		"{\"execute\":\"stop\",\"id\":01}",
		"{\"execute\":\"stop\",\"id\":\"\xff\xfe\"}",
	};
	struct fix *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
		expect_error(f, lines[i], "GenericError", "JSON");
	assert_int_equal(f->ctx.calls, 0);
}

/* Whitespace around the object is JSON too. */
static void test_whitespace(void **state)
{
	static const char *lines[] = {
		"  {\"execute\":\"stop\"}",
		"{\"execute\":\"stop\"}   ",
		"{\"execute\":\"stop\"}\r",
		"\t{ \"execute\" : \"stop\" }\t",
	};
	struct fix *f = *state;

	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		struct json_object *r = send_line(f, lines[i]);

		if (!json_object_object_get_ex(r, "return", NULL))
			fail_msg("line \"%s\" got %s", lines[i], json_object_to_json_string(r));
		json_object_put(r);
	}
	assert_int_equal(f->ctx.calls, ARRAY_SIZE(lines));
}

/* The line is exactly len bytes: nothing after it is read. */
static void test_length_bounds(void **state)
{
	struct fix *f = *state;
	const char *line = "{\"execute\":\"stop\"}GARBAGE";
	char *exact = malloc(18);
	struct json_object *r;

	memcpy(exact, line, 18); /* no NUL: ASan sees any read past len */
	r = control_handle_line(&f->c, exact, 18);
	member(r, "return");
	json_object_put(r);
	r = control_handle_line(&f->c, line, 17);
	member(r, "error");
	json_object_put(r);
	free(exact);
}

static void test_handler_error(void **state)
{
	struct fix *f = *state;

	expect_error(f, "{\"execute\":\"fail\"}", "GenericError", "cannot do that: busy");
	expect_error(f, "{\"execute\":\"fail\",\"arguments\":{\"a\":1}}", "GenericError", "busy");
	assert_string_equal(f->ctx.last_args, "{\"a\":1}");
	/* No message: still a desc. */
	expect_error(f, "{\"execute\":\"fail-silent\"}", "GenericError", NULL);
	assert_int_equal(f->ctx.calls, 3);
}

/* A bad line does not stop the next good one. */
static void test_goes_on_after_errors(void **state)
{
	struct fix *f = *state;
	struct json_object *r;

	expect_error(f, "{", "GenericError", NULL);
	expect_error(f, "{\"execute\":\"nope\"}", "CommandNotFound", NULL);
	expect_error(f, "{\"execute\":\"fail\"}", "GenericError", NULL);
	r = send_line(f, "{\"execute\":\"stop\",\"id\":99}");
	member(r, "return");
	assert_int_equal(json_object_get_int(member(r, "id")), 99);
	json_object_put(r);
}

static void test_deep_nesting(void **state)
{
	struct fix *f = *state;
	char line[4096];
	size_t n = 0;

	n += (size_t)snprintf(line, sizeof(line), "{\"execute\":\"stop\",\"id\":");
	for (unsigned i = 0; i < 1000; i++)
		line[n++] = '[';
	line[n] = '\0';
	expect_error(f, line, "GenericError", "JSON");
}

/* A command table without a socket: nothing to poll. */
static void test_no_socket(void **state)
{
	struct fix *f = *state;
	struct pollfd fds[CONTROL_MAX_CLIENTS + 1];

	assert_int_equal(f->c.listen_fd, -1);
	assert_int_equal(control_poll_fds(&f->c, fds), 0);
	control_event(&f->c, "STOP", json_object_new_object()); /* no client: freed */
}

/* json-c stops at a NUL: "{...quit...}\0junk" must not run the command. */
static void test_nul_in_line(void **state)
{
	static const char line[] = "{\"execute\":\"stop\"}\0junk";
	struct fix *f = *state;
	struct json_object *r = control_handle_line(&f->c, line, sizeof(line) - 1), *e;

	assert_true(json_object_object_get_ex(r, "error", &e));
	assert_int_equal(f->ctx.calls, 0);
	json_object_put(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_command_returns_empty_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_return_value_and_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generic_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scalar_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strict_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whitespace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_length_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handler_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_goes_on_after_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_nesting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_in_line, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
