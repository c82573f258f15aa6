/* Disk discovery and start-up checks (ring 3); see disk.h. */
#include "disk.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "sha256.h"
#include "user.h"

#define HASH_CHUNK      (128 * 1024)
#define HASH_DEPTH      (DISK_IO_BYTES / HASH_CHUNK)
#define HASH_TIMEOUT_MS 10000   /* without any completion */

u8 disk_io_buf[DISK_IO_BYTES] __attribute__((aligned(4096)));

static struct vblk disks[DISK_MAX];
static u32 ndisks;

static const char *type_name(u16 type)
{
	switch (type) {
	case VIRTIO_ID_NET:
		return "net";
	case VIRTIO_ID_BLOCK:
		return "blk";
	default:
		return "other";
	}
}

/* "ferry-agent pci 00:04.0 virtio id=2 (blk) bar1=0x... bar4=0x..." */
static void print_pci(const struct pci_dev *p, u16 type)
{
	char line[256];
	int n = fmt_sn(line, sizeof(line), "ferry-agent pci %s virtio id=%u (%s)",
		       p->name, type, type_name(type));

	for (u32 i = 0; i < PCI_NUM_BARS; i++)
		if (p->bar[i])
			n += fmt_sn(line + n, sizeof(line) - (size_t)n,
				    " bar%u=0x%lx", i, p->bar[i]);
	line[n++] = '\n';
	console_write(line, (size_t)n);
}

static bool hash_fail(struct vblk *b, const char *what, int status)
{
	console_printf("ferry-agent warning: disk %s: %s (status=%d), no "
		       "digest\n", b->name, what, status);
	return false;
}

/*
 * Read the whole disk in HASH_CHUNK pieces, HASH_DEPTH in flight, hashing
 * them in disk order: chunk c lives in buffer slot c % HASH_DEPTH, and a
 * slot is reused only once its chunk has been hashed.
 */
static bool hash_disk(struct vblk *b, u64 bytes, u8 out[SHA256_BYTES])
{
	static struct vblk_req req[HASH_DEPTH];
	u64 nchunks = (bytes + HASH_CHUNK - 1) / HASH_CHUNK, sub = 0, hashed = 0;
	u32 depth = HASH_DEPTH < vblk_max_inflight(b) ? HASH_DEPTH
						       : vblk_max_inflight(b);
	bool done[HASH_DEPTH] = { false };
	u64 last = now_tsc();
	struct sha256 s;

	sha256_init(&s);
	while (hashed < nchunks) {
		struct vblk_req *r;
		bool added = false;
		u32 slot;

		for (; sub < nchunks && sub < hashed + depth; sub++, added = true) {
			u64 off = sub * HASH_CHUNK;
			u32 len = bytes - off < HASH_CHUNK ? (u32)(bytes - off)
							   : HASH_CHUNK;

			slot = (u32)(sub % depth);
			done[slot] = false;
			req[slot].tag = sub;
			vblk_submit(b, &req[slot], VIRTIO_BLK_T_IN, off / 512,
				    disk_io_buf + (u64)slot * HASH_CHUNK, len);
		}
		if (added)
			vblk_kick(b);
		while ((r = vblk_poll(b))) {
			if (r->status != VIRTIO_BLK_S_OK)
				return hash_fail(b, "read failed", r->status);
			done[r - req] = true;
			last = now_tsc();
		}
		for (slot = (u32)(hashed % depth); hashed < sub && done[slot];
		     slot = (u32)(hashed % depth)) {
			sha256_update(&s, disk_io_buf + (u64)slot * HASH_CHUNK,
				      req[slot].len);
			done[slot] = false;
			hashed++;
		}
		if (now_tsc() - last > HASH_TIMEOUT_MS * boot.tsc_khz) {
			b->broken = true;
			virtio_abandon(&b->vdev);
			return hash_fail(b, "read timed out", -1);
		}
	}
	sha256_final(&s, out);
	return true;
}

/* GET_ID: up to 20 bytes, NUL-padded; only printable ASCII is kept. */
static void print_serial(struct vblk *b)
{
	char id[VIRTIO_BLK_ID_BYTES + 1] = { 0 };
	u32 n = 0;

	if (vblk_sync(b, VIRTIO_BLK_T_GET_ID, 0, disk_io_buf, VIRTIO_BLK_ID_BYTES))
		return;
	for (u32 i = 0; i < VIRTIO_BLK_ID_BYTES && disk_io_buf[i]; i++)
		if (disk_io_buf[i] > ' ' && disk_io_buf[i] < 0x7f)
			id[n++] = (char)disk_io_buf[i];
	if (n)
		console_printf("ferry-agent disk=%s serial=%s\n", b->name, id);
}

/* A read-only disk must refuse a write; the one tried rewrites sector 0
 * (one logical block) with what it holds, so accepting it is harmless. */
static void check_readonly(struct vblk *b)
{
	u32 len = b->blk_size >= 512 && b->blk_size <= 4096 ? b->blk_size : 512;
	int st;

	console_printf("ferry-agent disk=%s readonly=1\n", b->name);
	st = vblk_sync(b, VIRTIO_BLK_T_IN, 0, disk_io_buf, len);
	if (st != VIRTIO_BLK_S_OK) {
		console_printf("ferry-agent warning: disk %s: read of sector 0 "
			       "failed status=%d\n", b->name, st);
		return;
	}
	st = vblk_sync(b, VIRTIO_BLK_T_OUT, 0, disk_io_buf, len);
	console_printf("ferry-agent disk=%s ro_write=%s\n", b->name,
		       st == VIRTIO_BLK_S_OK ? "accepted" : "refused");
}

static void check_disk(struct vblk *b)
{
	u64 bytes = b->sectors * 512;
	u8 d[SHA256_BYTES];
	char hex[2 * SHA256_BYTES + 1];

	console_printf("ferry-agent disk=%s pci=%s features=0x%lx queue=%u "
		       "blk_size=%u seg_max=%u flush=%u\n", b->name,
		       b->vdev.pci.name, b->vdev.features, b->vq.size,
		       b->blk_size, b->seg_max, b->flush);
	if (bytes <= DISK_HASH_MAX && hash_disk(b, bytes, d)) {
		sha256_hex(d, hex);
		console_printf("ferry-agent disk=%s bytes=%lu sha256=%s\n",
			       b->name, bytes, hex);
	} else {
		console_printf("ferry-agent disk=%s bytes=%lu\n", b->name, bytes);
	}
	if (!b->broken)
		print_serial(b);
	if (!b->broken && b->ro)
		check_readonly(b);
}

void disk_init(const struct pci_dev *found, u32 n, u32 irq_cpu)
{
	if (n && !sha256_selftest())
		console_printf("ferry-agent error: sha256 self-test failed\n");
	for (u32 i = 0; i < n; i++) {
		u16 type = virtio_pci_type(&found[i]);
		char name[8];

		if (!type)
			continue;
		print_pci(&found[i], type);
		if (type != VIRTIO_ID_BLOCK)
			continue;
		if (ndisks == DISK_MAX) {
			console_printf("ferry-agent warning: pci %s: more than %u "
				       "disks, ignored\n", found[i].name, DISK_MAX);
			continue;
		}
		fmt_sn(name, sizeof(name), "vd%c", 'a' + ndisks);
		if (vblk_init(&disks[ndisks], &found[i], name,
			      boot.apic_id[irq_cpu]))
			continue;
		check_disk(&disks[ndisks++]);
	}
}

struct vblk *disk_first(bool writable)
{
	for (u32 i = 0; i < ndisks; i++)
		if (!disks[i].broken && (!writable || !disks[i].ro))
			return &disks[i];
	return NULL;
}

void disk_report(void)
{
	for (u32 i = 0; i < ndisks; i++)
		console_printf("ferry-agent disk=%s irqs=%lu config_irqs=%lu\n",
			       disks[i].name, vblk_irqs(&disks[i]),
			       virtio_cfg_irqs(&disks[i].vdev));
}
