/* Command-line options (ring 3); see user.h. */
#include "lib.h"
#include "user.h"

#define EINVAL 22

static bool key_is(const char *tok, size_t klen, const char *key)
{
	return klen == strlen(key) && memcmp(tok, key, klen) == 0;
}

/* "WS@RATE": WS > 0, RATE >= 0. */
static bool parse_dirty(const char *v, size_t n, struct options *o)
{
	size_t at = 0;

	while (at < n && v[at] != '@')
		at++;
	if (at == n || !parse_u64(v, at, &o->ws_mib) ||
	    !parse_u64(v + at + 1, n - at - 1, &o->rate_mib) || !o->ws_mib)
		return false;
	o->dirty = true;
	return true;
}

/* One "key=value" token; false if it is ours and malformed. */
static bool parse_token(const char *t, size_t n, struct options *o)
{
	size_t k = 0;
	const char *v;

	while (k < n && t[k] != '=')
		k++;
	if (k == n)
		return !key_is(t, n, "ferry.dirty") &&
		       !key_is(t, n, "ferry.poweroff") &&
		       !key_is(t, n, "ferry.beat_ms") &&
		       !key_is(t, n, "ferry.inject") &&
		       !key_is(t, n, "ferry.disk-writer") &&
		       !key_is(t, n, "ferry.disk-bench");
	v = t + k + 1;
	if (key_is(t, k, "ferry.dirty"))
		return parse_dirty(v, n - k - 1, o);
	if (key_is(t, k, "ferry.poweroff"))
		return (o->poweroff = parse_u64(v, n - k - 1, &o->poweroff_s));
	if (key_is(t, k, "ferry.inject"))
		return (o->inject = parse_u64(v, n - k - 1, &o->inject_s));
	if (key_is(t, k, "ferry.beat_ms"))
		return parse_u64(v, n - k - 1, &o->beat_ms) && o->beat_ms;
	if (key_is(t, k, "ferry.disk-writer"))
		return parse_u64(v, n - k - 1, &o->disk_writer_kib) &&
		       o->disk_writer_kib;
	if (key_is(t, k, "ferry.disk-bench"))
		return parse_u64(v, n - k - 1, &o->disk_bench_s) && o->disk_bench_s;
	return true;
}

int options_parse(const char *s, struct options *o, char *bad, size_t badlen)
{
	*o = (struct options){ .beat_ms = 100 };
	while (*s) {
		size_t n = 0;

		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '\n')
			n++;
		if (n && !parse_token(s, n, o)) {
			size_t c = n < badlen - 1 ? n : badlen - 1;

			memcpy(bad, s, c);
			bad[c] = '\0';
			return -EINVAL;
		}
		s += n;
	}
	return 0;
}
