#include "migration/incoming.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "migration/channel_sock.h"
#include "vm/vm.h"

#define HELLO_TIMEOUT_MS 10000

int incoming_listen(struct incoming *in, const char *uri)
{
	struct mig_uri u;
	char err[512];

	memset(in, 0, sizeof(*in));
	in->fd = -1;
	in->r.fd = -1;
	snprintf(in->uri, sizeof(in->uri), "%s", uri);
	if (mig_uri_parse(uri, &u, err, sizeof(err)) ||
	    (in->listen_fd = mig_listen(&u, err, sizeof(err))) < 0) {
		log_error("--incoming: %s", err);
		in->listen_fd = -1;
		return -1;
	}
	log_info("waiting for a migration on %s", uri);
	return 0;
}

/* Compares without leaking, through timing, how much of a guess was right. */
static bool token_equal(const char *want, const uint8_t *got, size_t len)
{
	size_t wlen = strlen(want);
	unsigned diff = wlen != len;

	for (size_t i = 0; i < len && i < wlen; i++)
		diff |= (unsigned)(want[i] ^ got[i]);
	return diff == 0;
}

static void drop(struct incoming *in)
{
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	stream_reader_free(&in->r);
	in->r.fd = -1;
}

/* Reads header + HELLO. Returns 0; 1 when the token is wrong or missing
 * (drop, wait on); or -EINVAL with msg for a stream that is not ours. */
static int read_hello(struct incoming *in, const char *token, char *msg, size_t msglen)
{
	const uint8_t *p;
	uint32_t type, version, flags, tlen;
	size_t len;
	struct reader rd;

	if (stream_reader_start(&in->r, in->fd) ||
	    stream_read_record(&in->r, &type, &p, &len)) {
		snprintf(msg, msglen, "%s", in->r.error);
		return token ? 1 : -EINVAL;
	}
	if (type != REC_HELLO) {
		snprintf(msg, msglen, "the stream starts with %s, not HELLO (a saved file? use "
			 "--restore)", stream_rec_name(type));
		return token ? 1 : -EINVAL;
	}
	reader_init(&rd, p, len);
	version = reader_u32(&rd);
	flags = reader_u32(&rd);
	tlen = reader_u32(&rd);
	if (rd.short_read || tlen > MIG_MAX_TOKEN || !range_within(rd.off, tlen, len)) {
		snprintf(msg, msglen, "malformed HELLO");
		return token ? 1 : -EINVAL;
	}
	if (token && !token_equal(token, p + rd.off, tlen)) {
		snprintf(msg, msglen, "it did not present the incoming token");
		return 1;
	}
	if (version < MIG_PROTOCOL_OLDEST || version > MIG_PROTOCOL_VERSION) {
		snprintf(msg, msglen, "the source speaks migration protocol version %u; this "
			 "ferry-vmm speaks %u to %u", version, MIG_PROTOCOL_OLDEST,
			 MIG_PROTOCOL_VERSION);
		return -EPROTO;
	}
	in->ram_hash = flags & MIG_HELLO_RAM_HASH;
	return 0;
}

void incoming_refuse(struct incoming *in, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	uint8_t sink[65536];

	if (in->fd < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (in->w.fd == in->fd && stream_write_error(&in->w, text) == 0) {
		/* Let the message arrive: stop writing, read what the source
		 * still sends until it closes (bounded), then close — closing
		 * with unread data would reset the connection, message and all. */
		shutdown(in->fd, SHUT_WR);
		mig_set_timeouts(in->fd, 0, 2000);
		for (int i = 0; i < 100000 && read(in->fd, sink, sizeof(sink)) > 0; i++)
			;
	}
	drop(in);
}

/* Milliseconds left until deadline (ns; 0: none) for poll(), -1 for none. */
static int ms_left(uint64_t deadline)
{
	uint64_t now = time_now_ns();

	if (!deadline)
		return -1;
	return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

int incoming_accept(struct incoming *in, const char *token, int sig_fd, unsigned timeout_s)
{
	uint64_t deadline = timeout_s ? time_now_ns() + timeout_s * 1000000000ull : 0;
	char msg[300];
	int hello_ms, ret;

	for (;;) {
		struct pollfd fds[2] = { { .fd = in->listen_fd, .events = POLLIN },
					 { .fd = sig_fd, .events = POLLIN } };
		char err[300];
		int n = poll(fds, 2, ms_left(deadline));

		if (n == 0) {
			log_error("no migration arrived within %u s", timeout_s);
			return -ETIMEDOUT;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			return -errno;
		}
		if (fds[1].revents)
			return -EINTR;
		in->fd = mig_accept(in->listen_fd, in->peer, sizeof(in->peer), err, sizeof(err));
		if (in->fd < 0) {
			log_warn("%s", err);
			continue;
		}
		/* The HELLO too must arrive before the deadline: a client that
		 * connects and stays silent does not hold the timeout off. */
		hello_ms = HELLO_TIMEOUT_MS;
		if (deadline && ms_left(deadline) < hello_ms)
			hello_ms = ms_left(deadline) ?: 1;
		mig_set_timeouts(in->fd, hello_ms, hello_ms);
		ret = read_hello(in, token, msg, sizeof(msg));
		if (ret && deadline && !ms_left(deadline)) {
			log_warn("dropped a connection from %s: %s", in->peer, msg);
			drop(in);
			log_error("no migration arrived within %u s", timeout_s);
			return -ETIMEDOUT;
		}
		if (ret == 1) {
			log_warn("dropped a connection from %s: %s; still waiting", in->peer, msg);
			drop(in);
			continue;
		}
		if (ret == -EPROTO) {
			stream_writer_start(&in->w, in->fd);
			incoming_refuse(in, "%s", msg);
			log_error("incoming migration from %s: %s", in->peer, msg);
			return ret;
		}
		if (ret) {
			log_error("incoming migration from %s: %s", in->peer, msg);
			drop(in);
			return ret;
		}
		break;
	}
	log_info("incoming migration from %s", in->peer);
	mig_set_timeouts(in->fd, MIG_IO_TIMEOUT_MS, MIG_IO_TIMEOUT_MS);
	{
		uint8_t welcome[8];

		put_le32(welcome, MIG_PROTOCOL_VERSION);
		put_le32(welcome + 4, 0);
		ret = stream_writer_start(&in->w, in->fd) ?:
		      stream_write_record(&in->w, REC_WELCOME, welcome, sizeof(welcome));
	}
	if (ret) {
		log_error("incoming migration from %s: answering: %s", in->peer, strerror(-ret));
		drop(in);
		return ret;
	}
	ret = state_read_info_record(&in->r, &in->info);
	if (ret) {
		log_error("incoming migration from %s: %s", in->peer, in->r.error);
		incoming_refuse(in, "%s", in->r.error);
		return ret;
	}
	return 0;
}

int incoming_load(struct incoming *in, struct vm *vm)
{
	int ret = state_load(vm, &in->r, false);

	if (ret) {
		if (!strncmp(in->r.error, "truncated", 9) || strstr(in->r.error, "reset by peer"))
			log_error("incoming migration from %s: the source closed the connection before "
				  "the stream ended (it failed or was cancelled there; %s); the guest "
				  "was not started here", in->peer, in->r.error);
		else
			log_error("incoming migration from %s: %s; the guest was not started here",
				  in->peer, in->r.error);
		incoming_refuse(in, "%s", in->r.error);
		return ret;
	}
	in->t_end = time_now_ns();
	if (in->ram_hash) {
		in->hash = state_ram_hash(vm);
		log_info("ram-hash=%08x (destination, before starting)", in->hash);
	}
	return 0;
}

int incoming_handover(struct incoming *in, struct vm *vm, bool *run)
{
	const uint8_t *p;
	uint8_t ready[16];
	uint32_t type;
	size_t len;
	int ret;

	(void)vm;
	put_le32(ready, in->ram_hash ? MIG_HELLO_RAM_HASH : 0);
	put_le32(ready + 4, in->hash);
	put_le64(ready + 8, time_now_ns() - in->t_end);
	ret = stream_write_record(&in->w, REC_READY, ready, sizeof(ready));
	if (ret) {
		log_error("incoming migration: sending READY: %s; the guest was not started here",
			  strerror(-ret));
		return ret;
	}
	ret = stream_read_record(&in->r, &type, &p, &len);
	if (ret) {
		log_error("incoming migration: the source went away before GO (%s); the guest "
			  "was not started here", in->r.error);
		return ret;
	}
	if (type != REC_GO || len < 8) {
		const char *text;
		size_t n = type == REC_ERROR ? stream_error_text(p, len, &text) : 0;

		if (n)
			log_error("incoming migration: the source gave up: %.*s; the guest was not "
				  "started here", (int)MIN(n, 400u), text);
		else
			log_error("incoming migration: %s where GO was due; the guest was not "
				  "started here", stream_rec_name(type));
		return -EPROTO;
	}
	*run = get_le64(p) & MIG_GO_RUN;
	if (getenv("FERRY_TEST_DIE_AFTER_GO")) { /* test hook: a crash at the worst time */
		log_info("test hook FERRY_TEST_DIE_AFTER_GO: exiting before the guest starts");
		_exit(3);
	}
	return 0;
}

void incoming_started(struct incoming *in)
{
	uint8_t started[8] = { 0 };

	if (stream_write_record(&in->w, REC_STARTED, started, sizeof(started)))
		log_warn("incoming migration: could not send STARTED (%s); the guest runs here "
			 "all the same", strerror(errno));
	drop(in);
}

void incoming_close(struct incoming *in)
{
	drop(in);
	if (in->listen_fd >= 0)
		close(in->listen_fd);
	in->listen_fd = -1;
	state_info_free(&in->info);
}
