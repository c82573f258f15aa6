/* A request's arguments: the JSON object of a control-socket command
 * (ferry-vmm's monitor) or of a ferryd RPC, read with one set of rules.
 *
 * args may be NULL (no "arguments" given). An argument absent or JSON null
 * is not given: the getter leaves *out as it was (the caller's default)
 * and sets *given false. A given argument of the wrong type or out of
 * range is an error: the getter writes one line into err (errlen bytes),
 * naming the argument, and returns -1. Every getter returns 0 otherwise.
 * Booleans are JSON true or false only ("false" the string is refused,
 * not taken for true); numbers are JSON integers. */
#ifndef FERRY_COMMON_JSONARG_H
#define FERRY_COMMON_JSONARG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* -1 when args has a member not in names (NULL-terminated). */
int jarg_only(json_object *args, const char *const names[], char *err, size_t errlen);

/* The same, for any table of names: -1 when known(key, table) is false
 * for a member of args. */
int jarg_only_if(json_object *args, bool (*known)(const char *key, const void *table),
		 const void *table, char *err, size_t errlen);

/* A string; required: absent is an error too. */
int jarg_str(json_object *args, const char *key, bool required, const char **out, char *err,
	     size_t errlen);

int jarg_bool(json_object *args, const char *key, bool *out, char *err, size_t errlen);

/* An integer in [lo, hi]; given may be NULL. */
int jarg_u64(json_object *args, const char *key, uint64_t lo, uint64_t hi, uint64_t *out,
	     bool *given, char *err, size_t errlen);

#endif
