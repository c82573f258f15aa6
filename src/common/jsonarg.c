#include "common/jsonarg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The argument's value, or NULL when it is not given. */
static json_object *arg_get(json_object *args, const char *key)
{
	json_object *v;

	if (!args || !json_object_object_get_ex(args, key, &v) ||
	    json_object_is_type(v, json_type_null))
		return NULL;
	return v;
}

int jarg_only_if(json_object *args, bool (*known)(const char *key, const void *table),
		 const void *table, char *err, size_t errlen)
{
	if (!args || !json_object_is_type(args, json_type_object))
		return 0;
	json_object_object_foreach(args, key, val) {
		(void)val;
		if (!known(key, table)) {
			snprintf(err, errlen, "unexpected argument '%s'", key);
			return -1;
		}
	}
	return 0;
}

static bool in_names(const char *key, const void *table)
{
	for (const char *const *n = table; *n; n++)
		if (!strcmp(key, *n))
			return true;
	return false;
}

int jarg_only(json_object *args, const char *const names[], char *err, size_t errlen)
{
	return jarg_only_if(args, in_names, names, err, errlen);
}

int jarg_str(json_object *args, const char *key, bool required, const char **out, char *err,
	     size_t errlen)
{
	json_object *v = arg_get(args, key);

	if (!v) {
		if (required)
			snprintf(err, errlen, "missing argument '%s'", key);
		return required ? -1 : 0;
	}
	if (!json_object_is_type(v, json_type_string)) {
		snprintf(err, errlen, "argument '%s' must be a string", key);
		return -1;
	}
	*out = json_object_get_string(v);
	return 0;
}

int jarg_bool(json_object *args, const char *key, bool *out, char *err, size_t errlen)
{
	json_object *v = arg_get(args, key);

	if (!v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(err, errlen, "argument '%s' must be true or false", key);
		return -1;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

int jarg_u64(json_object *args, const char *key, uint64_t lo, uint64_t hi, uint64_t *out,
	     bool *given, char *err, size_t errlen)
{
	json_object *v = arg_get(args, key);
	int64_t n;

	if (given)
		*given = false;
	if (!v)
		return 0;
	/* json-c clamps larger numbers to INT64_MAX: beyond any hi here. */
	if (!json_object_is_type(v, json_type_int) || (n = json_object_get_int64(v)) < 0 ||
	    (uint64_t)n < lo || (uint64_t)n > hi) {
		snprintf(err, errlen, "argument '%s' must be an integer from %" PRIu64 " to %" PRIu64,
			 key, lo, hi);
		return -1;
	}
	*out = (uint64_t)n;
	if (given)
		*given = true;
	return 0;
}
