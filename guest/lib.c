/* Freestanding C library bits; see lib.h. gcc may emit calls to memcpy and
 * memset on its own, so these must exist even if no code calls them. */
#include "lib.h"

void *memcpy(void *dst, const void *src, size_t n)
{
	/* rep movsb: one instruction for KVM's emulator in ring 0. */
	void *d = dst;
	asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	while (n--)
		d[n] = s[n];
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

bool parse_u64(const char *s, size_t n, u64 *out)
{
	u64 v = 0;

	if (n == 0 || n > 19)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (u64)(s[i] - '0');
	}
	*out = v;
	return true;
}

struct out {
	char *buf;
	size_t size, len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len++] = c;
}

static void put_num(struct out *o, u64 v, unsigned base, bool neg,
		    int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		put(o, pad);
	while (n)
		put(o, tmp[--n]);
}

static u64 get_arg(va_list *ap, int lng, bool sgn, bool *neg)
{
	s64 s;

	*neg = false;
	if (!sgn)
		return lng ? va_arg(*ap, u64) : va_arg(*ap, unsigned);
	s = lng ? va_arg(*ap, s64) : va_arg(*ap, int);
	if (s < 0) {
		*neg = true;
		return (u64)0 - (u64)s;
	}
	return (u64)s;
}

int fmt_vsn(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	va_list aq;

	va_copy(aq, ap);
	for (; *fmt; fmt++) {
		int width = 0, lng = 0;
		char pad = ' ';
		bool neg;

		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng = 1, fmt++;
		switch (*fmt) {
		case 'd':
		case 'u':
		case 'x': {
			u64 v = get_arg(&aq, lng, *fmt == 'd', &neg);
			put_num(&o, v, *fmt == 'x' ? 16 : 10, neg, width, pad);
			break;
		}
		case 'p':
			put_num(&o, (u64)(uintptr_t)va_arg(aq, void *), 16,
				false, width, pad);
			break;
		case 'c':
			put(&o, (char)va_arg(aq, int));
			break;
		case 's': {
			const char *s = va_arg(aq, const char *);
			while (s && *s)
				put(&o, *s++);
			break;
		}
		case '\0':
			fmt--;
			break;
		default:
			put(&o, *fmt);
		}
	}
	va_end(aq);
	if (size)
		buf[o.len] = '\0';
	return (int)o.len;
}

int fmt_sn(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsn(buf, size, fmt, ap);
	va_end(ap);
	return n;
}
