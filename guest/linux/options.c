/* The agent's options; see options.h. */
#include "options.h"

#include <errno.h>
#include <string.h>

static const char *const unsupported_names[UNSUP_COUNT] = {
	[UNSUP_DISK_BENCH] = "ferry.disk-bench",
};

const char *options_unsupported_name(enum agent_unsupported u)
{
	return u < UNSUP_COUNT ? unsupported_names[u] : "?";
}

static bool key_is(const char *tok, size_t klen, const char *key)
{
	return klen == strlen(key) && memcmp(tok, key, klen) == 0;
}

/* Decimal digits only, at least one, no overflow. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* Seconds, at most 2^32 (their nanoseconds fit in 64 bits). */
static bool parse_seconds(const char *v, size_t n, uint64_t *out)
{
	return parse_u64(v, n, out) && *out <= (1ULL << 32);
}

/* "WS@RATE": 0 < WS <= AGENT_MAX_WS_MIB, 0 <= RATE <= AGENT_MAX_RATE_MIB. */
static bool parse_dirty(const char *v, size_t n, struct agent_options *o)
{
	const char *at = memchr(v, '@', n);
	size_t wl;

	if (!at)
		return false;
	wl = (size_t)(at - v);
	if (!parse_u64(v, wl, &o->ws_mib) ||
	    !parse_u64(at + 1, n - wl - 1, &o->rate_mib) ||
	    !o->ws_mib || o->ws_mib > AGENT_MAX_WS_MIB ||
	    o->rate_mib > AGENT_MAX_RATE_MIB)
		return false;
	o->dirty = true;
	return true;
}

/* A dotted quad, each part 0 .. 255 without leading zeros; host order. */
static bool parse_ipv4(const char *v, size_t n, uint32_t *out)
{
	uint32_t a = 0;
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		uint64_t x;

		while (i < n && v[i] != '.')
			i++;
		if (i - start > 3 || (i - start > 1 && v[start] == '0') ||
		    !parse_u64(v + start, i - start, &x) || x > 255)
			return false;
		a = a << 8 | (uint32_t)x;
		if (part < 3 && (i >= n || v[i++] != '.'))
			return false;
	}
	*out = a;
	return i == n;
}

/* "ADDR/PREFIX", PREFIX 1 .. 32, ADDR not 0.0.0.0. */
static bool parse_ip(const char *v, size_t n, struct agent_options *o)
{
	const char *slash = memchr(v, '/', n);
	uint64_t prefix;
	size_t al;

	if (!slash)
		return false;
	al = (size_t)(slash - v);
	if (!parse_ipv4(v, al, &o->ip) || !o->ip ||
	    !parse_u64(slash + 1, n - al - 1, &prefix) || !prefix || prefix > 32)
		return false;
	o->prefix = (unsigned)prefix;
	return true;
}

static bool ping_ok(const struct agent_options *o)
{
	uint32_t mask = o->prefix == 32 ? ~0u : ~(~0u >> o->prefix);

	return o->ip && o->ping != o->ip && (o->ping & mask) == (o->ip & mask);
}

/* The test guest's options the agent does not have: noted, not parsed. */
static bool note_unsupported(const char *t, size_t klen, struct agent_options *o)
{
	for (int u = 0; u < UNSUP_COUNT; u++) {
		if (key_is(t, klen, unsupported_names[u])) {
			o->unsupported[u] = true;
			return true;
		}
	}
	return false;
}

/* One of ours without "=VALUE" is malformed; anything else is not ours. */
static bool bare_key_ok(const char *t, size_t n)
{
	static const char *const ours[] = {
		"ferry.dirty", "ferry.poweroff", "ferry.beat_ms", "ferry.inject", "ferry.reboot",
		"ferry.disk-writer", "ferry.ip", "ferry.ping",
	};

	for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
		if (key_is(t, n, ours[i]))
			return false;
	return true;
}

/* One "key=value" token; false if it is ours and malformed. */
static bool parse_token(const char *t, size_t n, struct agent_options *o)
{
	const char *eq = memchr(t, '=', n);
	size_t k, vn;
	const char *v;

	if (!eq)
		return note_unsupported(t, n, o) || bare_key_ok(t, n);
	k = (size_t)(eq - t);
	v = eq + 1;
	vn = n - k - 1;
	if (note_unsupported(t, k, o))
		return true;
	if (key_is(t, k, "ferry.dirty"))
		return parse_dirty(v, vn, o);
	if (key_is(t, k, "ferry.poweroff"))
		return (o->poweroff = parse_seconds(v, vn, &o->poweroff_s));
	if (key_is(t, k, "ferry.inject"))
		return (o->inject = parse_seconds(v, vn, &o->inject_s));
	if (key_is(t, k, "ferry.reboot"))
		return (o->reboot = parse_seconds(v, vn, &o->reboot_s));
	if (key_is(t, k, "ferry.beat_ms"))
		return parse_u64(v, vn, &o->beat_ms) && o->beat_ms &&
		       o->beat_ms <= 3600 * 1000;
	if (key_is(t, k, "ferry.disk-writer"))
		return parse_u64(v, vn, &o->disk_kib) && o->disk_kib &&
		       o->disk_kib <= AGENT_MAX_DISK_KIB;
	if (key_is(t, k, "ferry.ip"))
		return parse_ip(v, vn, o);
	if (key_is(t, k, "ferry.ping"))
		return parse_ipv4(v, vn, &o->ping) && o->ping;
	return true;
}

static void copy_bad(const char *t, size_t n, char *bad, size_t badlen)
{
	size_t c = n < badlen - 1 ? n : badlen - 1;

	memcpy(bad, t, c);
	bad[c] = '\0';
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

int options_parse(const char *s, struct agent_options *o, char *bad, size_t badlen)
{
	*o = (struct agent_options){ .beat_ms = 100 };
	while (*s) {
		size_t n = 0;

		while (is_space(*s))
			s++;
		while (s[n] && !is_space(s[n]))
			n++;
		if (n && !parse_token(s, n, o)) {
			if (badlen)
				copy_bad(s, n, bad, badlen);
			return -EINVAL;
		}
		s += n;
	}
	if (o->ping && !ping_ok(o)) {
		if (badlen)
			copy_bad("ferry.ping", strlen("ferry.ping"), bad, badlen);
		return -EINVAL;
	}
	return 0;
}
