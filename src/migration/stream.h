/* The ferry stream: a header, then checksummed records (docs/stream-format.md
 * is the specification; this header mirrors it). One writer and one reader,
 * over any file descriptor: a save file now, a migration channel next. */
#ifndef FERRY_MIGRATION_STREAM_H
#define FERRY_MIGRATION_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define STREAM_MAGIC "FERRYVM\n"
#define STREAM_VERSION 1
#define STREAM_HEADER_SIZE 16
#define STREAM_MAX_RECORD (16u << 20)
#define STREAM_REC_OPTIONAL 0x80000000u

enum stream_rec_type {
	REC_VM_INFO = 1,
	REC_RAM = 2,
	REC_DEVICE = 3,
	REC_VCPU = 4,
	REC_END = 5,
	REC_RAM_EXTENTS = 6, /* written optional: where RAM has data (a hint) */
	/* Migration channels only (docs/migration-protocol.md): the hand-shake
	 * and the two-phase hand-over. A save file never has them. */
	REC_HELLO = 16,   /* source: protocol version, flags, token */
	REC_WELCOME = 17, /* destination: protocol version; the stream may come */
	REC_ERROR = 18,   /* either side: why it gives up (a message) */
	REC_READY = 19,   /* destination: all state loaded and checked */
	REC_GO = 20,      /* source: start the guest; the source will not */
	REC_STARTED = 21, /* destination: the guest runs here */
};

/* The migration protocol this ferry speaks, and the oldest it accepts. */
#define MIG_PROTOCOL_VERSION 1
#define MIG_PROTOCOL_OLDEST 1
#define MIG_HELLO_RAM_HASH 0x1u /* HELLO flag: hash RAM, send it in READY */
#define MIG_GO_RUN 0x1u         /* GO flag: the guest was running; run it */
#define MIG_MAX_TOKEN 256u      /* bytes of an --incoming-token */

/* RAM record: page descriptor encodings (low 12 bits of the address). */
#define RAM_PAGE_FULL 0
#define RAM_PAGE_ZERO 1
#define RAM_MAX_BATCH 512

struct stream_writer {
	int fd;
	uint64_t offset; /* bytes written so far */
};

/* Writes the stream header to fd. Returns 0 or -errno. */
int stream_writer_start(struct stream_writer *w, int fd);

/* Writes one record whose payload is the concatenation of iov[0..n).
 * Returns 0 or -errno (-E2BIG beyond STREAM_MAX_RECORD). */
int stream_write_recordv(struct stream_writer *w, uint32_t type, const struct iovec *iov,
			 unsigned n);

int stream_write_record(struct stream_writer *w, uint32_t type, const void *payload,
			size_t len);

struct stream_reader {
	int fd;
	uint64_t offset;  /* of the next record */
	uint8_t *buf;     /* the current record's payload */
	size_t cap;
	char error[256];  /* what was wrong, when a call failed */
};

/* Reads and checks the stream header. Returns 0, or -EINVAL with r->error
 * saying what is wrong (magic, version, flags, truncation). */
int stream_reader_start(struct stream_reader *r, int fd);

/* Reads the next record, checking its length, padding, CRC and reserved
 * word. *payload stays valid until the next call. Returns 0, or -EINVAL /
 * -EIO / -ENOMEM with r->error set. */
int stream_read_record(struct stream_reader *r, uint32_t *type, const uint8_t **payload,
		       size_t *len);

/* True when fd has no more bytes (a file's end right after END). */
bool stream_reader_at_eof(struct stream_reader *r);

void stream_reader_free(struct stream_reader *r);

/* ERROR records (migration channels): a u32 length and the text. The
 * reader returns the text's length (0 when the payload is malformed) and
 * points *text at it (not NUL-terminated). */
int stream_write_error(struct stream_writer *w, const char *text);
size_t stream_error_text(const uint8_t *payload, size_t len, const char **text);

/* Name of a record type for messages ("RAM", "DEVICE", ...). */
const char *stream_rec_name(uint32_t type);

#endif
