/* The agent's disks and disk writer; see disk.h. */
#include "disk.h"
#include "console.h"
#include "record.h"
#include "sha256.h"
#include "system.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define SECTOR          512ULL
#define HASH_MAX        (64ULL << 20)   /* larger disks: bytes only */
#define HASH_CHUNK      (128U << 10)
#define DISKS_MAX       26
#define FLUSH_EVERY     16              /* records */
#define NS_PER_SEC      1000000000ULL
#define TICK_NS         (10 * 1000000ULL)
#define LOG_PER_SEC     5

/* "vda" .. "vdz" (and "vdaa" ... after them): shorter names first. */
static int name_order(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);

	return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

static unsigned list_disks(char names[DISKS_MAX][DISK_NAME_MAX])
{
	DIR *d = opendir("/sys/block");
	char *sorted[DISKS_MAX], tmp[DISKS_MAX][DISK_NAME_MAX];
	struct dirent *e;
	unsigned n = 0;

	if (!d) {
		say("error: /sys/block: %s", strerror(errno));
		return 0;
	}
	while ((e = readdir(d)) && n < DISKS_MAX) {
		size_t len = strlen(e->d_name);

		if (strncmp(e->d_name, "vd", 2) || len >= DISK_NAME_MAX)
			continue;
		memcpy(tmp[n], e->d_name, len + 1);
		sorted[n] = tmp[n];
		n++;
	}
	closedir(d);
	qsort(sorted, n, sizeof(sorted[0]), name_order);
	for (unsigned i = 0; i < n; i++)
		memcpy(names[i], sorted[i], DISK_NAME_MAX);
	return n;
}

static int disk_attr(const char *name, const char *attr, uint64_t *out)
{
	char path[DISK_NAME_MAX + 64];

	snprintf(path, sizeof(path), "/sys/block/%.*s/%s", DISK_NAME_MAX, name, attr);
	return sys_read_u64(path, out);
}

/* SHA-256 of the first bytes of /dev/name, in hex; 0 or -errno. */
static int hash_disk(const char *name, uint64_t bytes, char hex[2 * SHA256_BYTES + 1])
{
	char path[DISK_NAME_MAX + 8];
	uint8_t *buf = malloc(HASH_CHUNK), d[SHA256_BYTES];
	struct sha256 s;
	int fd, r = 0;

	snprintf(path, sizeof(path), "/dev/%.*s", DISK_NAME_MAX, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || !buf) {
		r = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	sha256_init(&s);
	for (uint64_t off = 0; off < bytes;) {
		size_t want = bytes - off < HASH_CHUNK ? (size_t)(bytes - off) : HASH_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;      /* 0: shorter than its size */
			goto out;
		}
		sha256_update(&s, buf, (size_t)n);
		off += (uint64_t)n;
	}
	sha256_final(&s, d);
	sha256_hex(d, hex);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return r;
}

/* A read-only disk: write its first sector back as it is; Linux must
 * refuse (the device offers VIRTIO_BLK_F_RO). "refused" or "accepted". */
static const char *ro_write(const char *name)
{
	char path[64], sector[SECTOR];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/dev/%.*s", DISK_NAME_MAX, name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return "refused";
	n = pread(fd, sector, sizeof(sector), 0);
	if (n == (ssize_t)sizeof(sector))
		n = pwrite(fd, sector, sizeof(sector), 0);
	if (n == (ssize_t)sizeof(sector) && fsync(fd))
		n = -1;
	close(fd);
	return n == (ssize_t)sizeof(sector) ? "accepted" : "refused";
}

static void report_serial(const char *name)
{
	char path[DISK_NAME_MAX + 64], id[64], clean[64];
	unsigned n = 0;

	snprintf(path, sizeof(path), "/sys/block/%.*s/serial", DISK_NAME_MAX, name);
	if (sys_read_file(path, id, sizeof(id)))
		return;
	for (unsigned i = 0; id[i] && n < sizeof(clean) - 1; i++)
		if (id[i] > ' ' && id[i] < 0x7f)
			clean[n++] = id[i];
	clean[n] = '\0';
	if (n)
		say("disk=%s serial=%s", name, clean);
}

/* The lines of one disk; true when it is writable. */
static bool report_disk(const char *name)
{
	char hex[2 * SHA256_BYTES + 1];
	uint64_t sectors, ro = 0;
	int r = disk_attr(name, "size", &sectors);

	if (r) {
		say("error: disk=%s: size: %s", name, strerror(-r));
		return false;
	}
	if (sectors * SECTOR > HASH_MAX)
		say("disk=%s bytes=%llu", name, (unsigned long long)(sectors * SECTOR));
	else if ((r = hash_disk(name, sectors * SECTOR, hex)))
		say("error: disk=%s: read: %s", name, strerror(-r));
	else
		say("disk=%s bytes=%llu sha256=%s", name, (unsigned long long)(sectors * SECTOR),
		    hex);
	report_serial(name);
	if (disk_attr(name, "ro", &ro) || !ro)
		return true;
	say("disk=%s readonly=1", name);
	say("disk=%s ro_write=%s", name, ro_write(name));
	return false;
}

unsigned disks_report(char writable[DISK_NAME_MAX])
{
	char names[DISKS_MAX][DISK_NAME_MAX];
	unsigned n = list_disks(names);

	writable[0] = '\0';
	for (unsigned i = 0; i < n; i++)
		if (report_disk(names[i]) && !writable[0])
			memcpy(writable, names[i], DISK_NAME_MAX);
	return n;
}

static void failed(struct disk_writer *d, const char *what, ssize_t n)
{
	atomic_fetch_add_explicit(&d->corrupt, 1, memory_order_relaxed);
	say("warning: disk %s %s failed: %s", d->name, what,
	    n < 0 ? strerror(errno) : "short transfer");
}

static void corrupt(struct disk_writer *d, uint64_t seq)
{
	uint64_t now = boottime_ns();

	atomic_fetch_add_explicit(&d->corrupt, 1, memory_order_relaxed);
	if (now - d->log_window > NS_PER_SEC) {
		d->log_window = now;
		d->log_lines = 0;
	}
	if (d->log_lines++ < LOG_PER_SEC)
		say("DISK-CORRUPT slot=%llu want_seq=%llu",
		    (unsigned long long)record_slot(seq, d->slots), (unsigned long long)seq);
}

static off_t slot_offset(const struct disk_writer *d, uint64_t seq)
{
	return (off_t)(record_slot(seq, d->slots) * RECORD_BYTES);
}

/* Reads back one of the records still on disk, last_seq's slot included,
 * chosen at random (xorshift64). */
static void verify_one(struct disk_writer *d, uint64_t last_seq)
{
	uint64_t lo = last_seq > d->slots ? last_seq - d->slots + 1 : 1, seq;
	ssize_t n;

	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 7;
	d->rng ^= d->rng << 17;
	seq = lo + d->rng % (last_seq - lo + 1);
	n = pread(d->fd, d->rbuf, RECORD_BYTES, slot_offset(d, seq));
	if (n != RECORD_BYTES) {
		failed(d, "read", n);
		return;
	}
	record_build(d->want, d->nonce, seq, d->slots);
	if (memcmp(d->rbuf, d->want, RECORD_BYTES))
		corrupt(d, seq);
}

static void *writer_main(void *arg)
{
	struct disk_writer *d = arg;
	uint64_t t0 = boottime_ns(), tick = t0, done = 0, seq = 0, unflushed = 0;
	uint64_t flush_t = t0;

	while (!atomic_load(&d->stop)) {
		uint64_t now = boottime_ns();

		for (uint64_t due = rate_due(&done, d->rate_kib, RECORD_BYTES / 1024, now - t0); due && !atomic_load(&d->stop);
		     due--, done++) {
			ssize_t n;

			record_build(d->wbuf, d->nonce, ++seq, d->slots);
			n = pwrite(d->fd, d->wbuf, RECORD_BYTES, slot_offset(d, seq));
			if (n != RECORD_BYTES) {
				failed(d, "write", n);  /* the run may be broken now */
			} else {
				atomic_fetch_add_explicit(&d->written, 1, memory_order_relaxed);
				unflushed++;
			}
			verify_one(d, seq);
			if (unflushed >= FLUSH_EVERY)
				break;
		}
		now = boottime_ns();
		if (unflushed && (unflushed >= FLUSH_EVERY || now - flush_t >= NS_PER_SEC)) {
			if (fdatasync(d->fd))
				failed(d, "flush", -1);
			unflushed = 0;
			flush_t = now;
		}
		tick += TICK_NS;
		if (tick < now)
			tick = now - now % TICK_NS + TICK_NS;   /* ticks missed: skip them */
		sleep_until_ns(tick);
	}
	if (unflushed)
		fdatasync(d->fd);
	return NULL;
}

static uint64_t new_nonce(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = 0;
	return mix64(r ^ boottime_ns()) | 1;
}

static int open_disk(struct disk_writer *d, const char *name, uint64_t rate_kib)
{
	char path[DISK_NAME_MAX + 8];
	uint64_t sectors;
	int r;

	*d = (struct disk_writer){ .fd = -1, .rate_kib = rate_kib };
	snprintf(d->name, sizeof(d->name), "%.*s", DISK_NAME_MAX - 1, name);
	r = disk_attr(name, "size", &sectors);
	if (r)
		return r;
	d->slots = sectors * SECTOR / RECORD_BYTES;
	if (!d->slots)
		return -ENOSPC;
	if (posix_memalign((void **)&d->wbuf, RECORD_BYTES, 3 * RECORD_BYTES))
		return -ENOMEM;
	d->rbuf = d->wbuf + RECORD_WORDS;
	d->want = d->rbuf + RECORD_WORDS;
	snprintf(path, sizeof(path), "/dev/%.*s", DISK_NAME_MAX, name);
	d->fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	d->nonce = d->rng = new_nonce();
	return 0;
}

int dwriter_start(struct disk_writer *d, const char *name, uint64_t rate_kib)
{
	int r = open_disk(d, name, rate_kib);

	if (!r)
		r = -pthread_create(&d->thread, NULL, writer_main, d);
	if (r) {
		say("error: disk writer on %s: %s", name,
		    r == -ENOSPC ? "the disk is smaller than one record" : strerror(-r));
		if (d->fd >= 0)
			close(d->fd);
		free(d->wbuf);
		*d = (struct disk_writer){ .fd = -1 };
		return r;
	}
	d->running = true;
	say("disk-writer disk=%s nonce=%llx slots=%llu rate_kib=%llu", d->name,
	    (unsigned long long)d->nonce, (unsigned long long)d->slots,
	    (unsigned long long)d->rate_kib);
	return 0;
}

void dwriter_stop(struct disk_writer *d)
{
	if (!d->running)
		return;
	atomic_store(&d->stop, true);
	pthread_join(d->thread, NULL);
	close(d->fd);
	free(d->wbuf);
	*d = (struct disk_writer){ .fd = -1 };
}
