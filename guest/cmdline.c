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

/* Dotted quad "A.B.C.D", each part 0-255 in at most 3 digits. */
static bool parse_ipv4(const char *v, size_t n, u32 *out)
{
	u32 ip = 0;

	for (u32 part = 0; part < 4; part++) {
		size_t len = 0;
		u64 x;

		while (len < n && v[len] != '.')
			len++;
		if (len > 3 || !parse_u64(v, len, &x) || x > 255 ||
		    (part < 3) != (len < n))
			return false;
		ip = ip << 8 | (u32)x;
		v += len + (len < n);
		n -= len + (len < n);
	}
	*out = ip;
	return true;
}

/* "A.B.C.D/PREFIX", PREFIX 1..32. */
static bool parse_ip_prefix(const char *v, size_t n, struct options *o)
{
	size_t sl = 0;
	u64 p;

	while (sl < n && v[sl] != '/')
		sl++;
	if (sl == n || !parse_ipv4(v, sl, &o->ip) ||
	    !parse_u64(v + sl + 1, n - sl - 1, &p) || !p || p > 32)
		return false;
	o->ip_prefix = (u32)p;
	return true;
}

/* ferry.ping needs ferry.ip and an address of its subnet other than its
 * own. */
static bool ping_ok(const struct options *o)
{
	u32 mask = o->ip_prefix >= 32 ? ~0u : ~(~0u >> o->ip_prefix);

	return !o->ping_set || (o->ip_set && o->ping_ip != o->ip &&
				(o->ping_ip & mask) == (o->ip & mask));
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
		       !key_is(t, n, "ferry.disk-bench") &&
		       !key_is(t, n, "ferry.ip") &&
		       !key_is(t, n, "ferry.ping");
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
	if (key_is(t, k, "ferry.ip"))
		return (o->ip_set = parse_ip_prefix(v, n - k - 1, o));
	if (key_is(t, k, "ferry.ping"))
		return (o->ping_set = parse_ipv4(v, n - k - 1, &o->ping_ip));
	return true;
}

static void copy_bad(const char *t, size_t n, char *bad, size_t badlen)
{
	size_t c = n < badlen - 1 ? n : badlen - 1;

	memcpy(bad, t, c);
	bad[c] = '\0';
}

int options_parse(const char *s, struct options *o, char *bad, size_t badlen)
{
	const char *ping = NULL;        /* the last ferry.ping token */
	size_t ping_len = 0;

	*o = (struct options){ .beat_ms = 100 };
	while (*s) {
		size_t n = 0;

		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '\n')
			n++;
		if (n && !parse_token(s, n, o)) {
			copy_bad(s, n, bad, badlen);
			return -EINVAL;
		}
		if (n > 11 && !memcmp(s, "ferry.ping=", 11)) {
			ping = s;
			ping_len = n;
		}
		s += n;
	}
	if (!ping_ok(o)) {
		copy_bad(ping, ping_len, bad, badlen);
		return -EINVAL;
	}
	return 0;
}
