#include "devices/i8042.h"

#include <errno.h>
#include <string.h>

#define I8042_DATA 0x00 /* port 0x60, offsets relative to 0x60 */
#define I8042_CMD 0x04  /* port 0x64 */

#define STS_OBF 0x01
#define STS_SYS 0x04
#define STS_CMD 0x08 /* last write was to the command port */
#define STS_UNLOCKED 0x10 /* the keylock switch is off (Linux warns "Keylock
			   * active" without it; QEMU sets it too) */

static void i8042_output(struct i8042 *k, uint8_t v)
{
	k->s.out = v;
	k->s.out_full = 1;
}

static void i8042_command(struct i8042 *k, uint8_t cmd)
{
	switch (cmd) {
	case 0x20: /* read command byte */
		i8042_output(k, k->s.cmd_byte);
		break;
	case 0x60: /* write command byte */
	case 0xd1: /* write output port */
	case 0xd2: /* write keyboard output buffer */
		k->s.pending = cmd;
		break;
	case 0xaa: /* controller self-test */
		i8042_output(k, 0x55);
		break;
	case 0xab: /* keyboard interface test */
		i8042_output(k, 0x00);
		break;
	case 0xd0: /* read output port */
		i8042_output(k, k->s.outport);
		break;
	case 0xfe: /* pulse reset line */
		machine_request(&k->machine, MACHINE_RESET);
		break;
	default:
		break; /* disable/enable ports and the rest: nothing attached */
	}
}

static void i8042_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->s.pending;

	k->s.pending = 0;
	switch (cmd) {
	case 0x60:
		k->s.cmd_byte = v;
		break;
	case 0xd1:
		k->s.outport = v;
		if (!(v & 0x01))
			machine_request(&k->machine, MACHINE_RESET);
		break;
	case 0xd2:
		i8042_output(k, v);
		break;
	default:
		break; /* a byte for the (absent) keyboard */
	}
}

static void i8042_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct i8042 *k = dev;

	memset(data, 0, size);
	if (off == I8042_DATA) {
		data[0] = k->s.out;
		k->s.out_full = 0;
	} else if (off == I8042_CMD) {
		data[0] = STS_SYS | STS_UNLOCKED | (k->s.out_full ? STS_OBF : 0) |
			  (k->s.pending ? STS_CMD : 0);
	} else {
		data[0] = 0xff;
	}
}

static void i8042_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct i8042 *k = dev;

	(void)size;
	if (off == I8042_DATA)
		i8042_data(k, data[0]);
	else if (off == I8042_CMD)
		i8042_command(k, data[0]);
}

const struct bus_ops i8042_bus_ops = {
	.read = i8042_read,
	.write = i8042_write,
};

static void i8042_reset(void *dev)
{
	struct i8042 *k = dev;

	memset(&k->s, 0, sizeof(k->s));
	k->s.cmd_byte = 0x30; /* both ports disabled, no interrupts */
	k->s.outport = 0x03;  /* A20 on, not in reset */
}

void i8042_init(struct i8042 *k, struct machine_link machine)
{
	memset(k, 0, sizeof(*k));
	k->machine = machine;
	i8042_reset(k);
}

static int i8042_save(void *dev, struct buf *out)
{
	const struct i8042_state *s = &((struct i8042 *)dev)->s;
	const uint8_t v[] = { s->cmd_byte, s->pending, s->out, s->out_full, s->outport };

	buf_put(out, v, sizeof(v));
	return buf_finish(out);
}

static int i8042_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct i8042_state s;
	struct reader r;

	if (version != 1)
		return -EPROTO;
	reader_init(&r, data, len);
	s.cmd_byte = reader_u8(&r);
	s.pending = reader_u8(&r);
	s.out = reader_u8(&r);
	s.out_full = reader_u8(&r);
	s.outport = reader_u8(&r);
	if (reader_finish(&r) || s.out_full > 1 ||
	    (s.pending && s.pending != 0x60 && s.pending != 0xd1 && s.pending != 0xd2))
		return -EINVAL;
	((struct i8042 *)dev)->s = s;
	return 0;
}

const struct device_ops i8042_device_ops = {
	.name = "i8042",
	.version = 1,
	.save = i8042_save,
	.load = i8042_load,
	.reset = i8042_reset,
};
