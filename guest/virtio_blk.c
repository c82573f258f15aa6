/* virtio-blk driver (ring 3); see virtio_blk.h. */
#include "virtio_blk.h"
#include "bootinfo.h"
#include "console.h"
#include "lib.h"
#include "user.h"

/* What we read of struct virtio_blk_config: up to blk_size. */
#define CFG_MIN_LEN     (VIRTIO_BLK_CFG_BLK_SIZE + 4)

int vblk_init(struct vblk *b, const struct pci_dev *p, const char *name,
	      u32 irq_apic)
{
	struct virtio_dev *d = &b->vdev;

	*b = (struct vblk){ .blk_size = 512 };
	fmt_sn(b->name, sizeof(b->name), "%s", name);
	if (virtio_probe(d, p, irq_apic) ||
	    virtio_negotiate(d, VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) |
			     VIRTIO_BIT(VIRTIO_BLK_F_RO) |
			     VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
			     VIRTIO_BIT(VIRTIO_BLK_F_FLUSH), 0))
		return -1;
	if (!d->devcfg || d->devcfg_len < CFG_MIN_LEN) {
		console_printf("ferry-agent warning: virtio %s: no usable blk "
			       "config\n", p->name);
		virtio_fail(d);
		return -1;
	}
	b->sectors = virtio_cfg_read64(d, VIRTIO_BLK_CFG_CAPACITY);
	if (d->features & VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX))
		b->seg_max = virtio_cfg_read32(d, VIRTIO_BLK_CFG_SEG_MAX);
	if (d->features & VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE))
		b->blk_size = virtio_cfg_read32(d, VIRTIO_BLK_CFG_BLK_SIZE);
	b->ro = d->features & VIRTIO_BIT(VIRTIO_BLK_F_RO);
	b->flush = d->features & VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);
	if (virtq_setup(d, &b->vq, 0, VBLK_QUEUE_SIZE) || virtio_ready(d)) {
		virtio_fail(d);
		return -1;
	}
	if (b->vq.size < 3) {
		console_printf("ferry-agent warning: virtio %s: queue of %u "
			       "entries is too small\n", p->name, b->vq.size);
		virtio_fail(d);
		return -1;
	}
	return 0;
}

int vblk_submit(struct vblk *b, struct vblk_req *r, u32 type, u64 sector,
		void *buf, u32 len)
{
	bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	struct virtq_buf v[3] = {
		{ &r->hdr, sizeof(r->hdr), false },
		{ buf, len, in },
		{ (void *)&r->status, 1, true },
	};

	r->hdr.type = type;
	r->hdr.reserved = 0;
	r->hdr.sector = sector;
	r->status = 0xff;       /* a device that writes nothing is seen */
	r->len = len;
	if (!len) {             /* FLUSH: no data descriptor */
		v[1] = v[2];
		return virtq_add(&b->vq, v, 2, r);
	}
	return virtq_add(&b->vq, v, 3, r);
}

void vblk_kick(struct vblk *b)
{
	virtq_kick(&b->vq);
}

struct vblk_req *vblk_poll(struct vblk *b)
{
	return virtq_get(&b->vq, NULL);
}

int vblk_sync(struct vblk *b, u32 type, u64 sector, void *buf, u32 len)
{
	struct vblk_req r;
	u64 t0 = now_tsc();

	if (b->broken || vblk_submit(b, &r, type, sector, buf, len))
		return -1;
	vblk_kick(b);
	while (vblk_poll(b) != &r) {
		if (now_tsc() - t0 > VBLK_REQ_TIMEOUT_MS * boot.tsc_khz) {
			console_printf("ferry-agent warning: disk %s: request "
				       "type=%u timed out\n", b->name, type);
			b->broken = true;
			virtio_abandon(&b->vdev);
			return -1;
		}
		cpu_relax();
	}
	return r.status;
}

u32 vblk_max_inflight(const struct vblk *b)
{
	return b->vq.size / 3;
}

u64 vblk_irqs(const struct vblk *b)
{
	return virtq_irqs(&b->vq);
}
