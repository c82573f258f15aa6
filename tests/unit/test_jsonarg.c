/* Unit tests for src/common/jsonarg.h: the one set of rules by which
 * ferry-vmm's monitor and ferryd read a request's arguments. Tables of
 * argument objects and what each getter makes of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/jsonarg.h"
#include "common/util.h"

/* One case: the arguments (JSON text), what the getter returns, the value
 * (or the default, untouched), whether it counts as given, and a piece of
 * the error message. */
struct bool_case {
	const char *json;
	int ret;
	bool out;
	const char *err;
};

static json_object *parse(const char *text)
{
	json_object *o = text ? json_tokener_parse(text) : NULL;

	assert_true(!text || o);
	return o;
}

static void test_bool(void **state)
{
	static const struct bool_case cases[] = {
		{ NULL, 0, true, NULL },                     /* no arguments: the default */
		{ "{}", 0, true, NULL },
		{ "{\"live\": null}", 0, true, NULL },       /* null: not given */
		{ "{\"live\": false}", 0, false, NULL },
		{ "{\"live\": true}", 0, true, NULL },
		{ "{\"live\": \"false\"}", -1, true, "argument 'live' must be true or false" },
		{ "{\"live\": \"true\"}", -1, true, "must be true or false" },
		{ "{\"live\": 0}", -1, true, "must be true or false" },
		{ "{\"live\": 1}", -1, true, "must be true or false" },
		{ "{\"live\": []}", -1, true, "must be true or false" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_object *o = parse(cases[i].json);
		char err[128] = "";
		bool out = true; /* the caller's default */

		assert_int_equal(jarg_bool(o, "live", &out, err, sizeof(err)), cases[i].ret);
		assert_int_equal(out, cases[i].out);
		if (cases[i].err)
			assert_non_null(strstr(err, cases[i].err));
		else
			assert_string_equal(err, "");
		json_object_put(o);
	}
}

struct u64_case {
	const char *json;
	int ret;
	uint64_t out;
	bool given;
	const char *err;
};

static void test_u64(void **state)
{
	static const struct u64_case cases[] = {
		{ "{}", 0, 7, false, NULL },
		{ "{\"n\": null}", 0, 7, false, NULL },
		{ "{\"n\": 1}", 0, 1, true, NULL },
		{ "{\"n\": 60}", 0, 60, true, NULL },
		{ "{\"n\": 0}", -1, 7, false, "argument 'n' must be an integer from 1 to 60" },
		{ "{\"n\": 61}", -1, 7, false, "from 1 to 60" },
		{ "{\"n\": -1}", -1, 7, false, "from 1 to 60" },
		{ "{\"n\": 1.5}", -1, 7, false, "from 1 to 60" },
		{ "{\"n\": \"5\"}", -1, 7, false, "from 1 to 60" },
		{ "{\"n\": 18446744073709551615}", -1, 7, false, "from 1 to 60" },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		json_object *o = parse(cases[i].json);
		char err[128] = "";
		uint64_t out = 7;
		bool given = true;

		assert_int_equal(jarg_u64(o, "n", 1, 60, &out, &given, err, sizeof(err)),
				 cases[i].ret);
		assert_int_equal(out, cases[i].out);
		assert_int_equal(given, cases[i].given);
		if (cases[i].err)
			assert_non_null(strstr(err, cases[i].err));
		json_object_put(o);
	}
}

static void test_str_and_only(void **state)
{
	static const char *const names[] = { "uri", "live", NULL };
	json_object *o = parse("{\"uri\": \"tcp:h:1\", \"live\": true}");
	json_object *bad = parse("{\"uri\": 5, \"frob\": 1}");
	const char *s = "default";
	char err[128] = "";

	(void)state;
	assert_int_equal(jarg_only(o, names, err, sizeof(err)), 0);
	assert_int_equal(jarg_only(NULL, names, err, sizeof(err)), 0);
	assert_int_equal(jarg_str(o, "uri", true, &s, err, sizeof(err)), 0);
	assert_string_equal(s, "tcp:h:1");
	s = "default";
	assert_int_equal(jarg_str(o, "token", false, &s, err, sizeof(err)), 0);
	assert_string_equal(s, "default");
	assert_int_equal(jarg_str(o, "token", true, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "missing argument 'token'");
	assert_int_equal(jarg_str(NULL, "token", true, &s, err, sizeof(err)), -1);
	assert_int_equal(jarg_only(bad, names, err, sizeof(err)), -1);
	assert_string_equal(err, "unexpected argument 'frob'");
	assert_int_equal(jarg_str(bad, "uri", false, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "argument 'uri' must be a string");
	json_object_put(o);
	json_object_put(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bool),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_str_and_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
