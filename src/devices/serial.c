#include "devices/serial.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

#define UART_RBR 0
#define UART_IER 1
#define UART_IIR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_MSI 0x08
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define MSR_CONNECTED 0xb0 /* DCD | DSR | CTS: a terminal is attached */

static unsigned serial_fifo_cap(const struct serial *s)
{
	return (s->s.fcr & FCR_ENABLE) ? SERIAL_FIFO : 1;
}

static uint8_t serial_iir(const struct serial *s)
{
	uint8_t fifo = (s->s.fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((s->s.ier & IER_RDI) && s->s.rx_count)
		return IIR_RDI | fifo;
	if ((s->s.ier & IER_THRI) && s->s.thr_ipending)
		return IIR_THRI | fifo;
	return IIR_NO_INT | fifo;
}

static void serial_update_irq(struct serial *s)
{
	int level = !(serial_iir(s) & IIR_NO_INT);

	if (level != s->irq_level) {
		s->irq_level = level;
		irq_line_set(&s->irq, level);
	}
}

static void serial_rx_push(struct serial *s, uint8_t byte)
{
	if (s->s.rx_count >= serial_fifo_cap(s)) {
		s->s.lsr_err |= LSR_OE;
		return;
	}
	s->s.rx[(s->s.rx_head + s->s.rx_count) % SERIAL_FIFO] = byte;
	s->s.rx_count++;
}

static uint8_t serial_rx_pop(struct serial *s)
{
	uint8_t byte;

	if (!s->s.rx_count)
		return 0;
	byte = s->s.rx[s->s.rx_head];
	s->s.rx_head = (s->s.rx_head + 1) % SERIAL_FIFO;
	s->s.rx_count--;
	return byte;
}

static uint8_t serial_msr(const struct serial *s)
{
	uint8_t m = s->s.mcr;

	if (!(m & MCR_LOOP))
		return s->s.msr;
	/* Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD. */
	return (uint8_t)(((m & 0x01) << 5) | ((m & 0x02) << 3) | ((m & 0x04) << 4) |
			 ((m & 0x08) << 4));
}

static uint8_t serial_read_reg(struct serial *s, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RBR:
		if (s->s.lcr & LCR_DLAB)
			return s->s.dll;
		return serial_rx_pop(s);
	case UART_IER:
		return (s->s.lcr & LCR_DLAB) ? s->s.dlm : s->s.ier;
	case UART_IIR:
		v = serial_iir(s);
		if ((v & 0x0f) == IIR_THRI)
			s->s.thr_ipending = 0; /* reading IIR acknowledges THRE */
		return v;
	case UART_LCR:
		return s->s.lcr;
	case UART_MCR:
		return s->s.mcr;
	case UART_LSR:
		/* No shift register of its own: a byte is on the line as
		 * soon as the sink took it, so TEMT follows THRE. */
		v = (s->s.tx_count ? 0 : LSR_THRE | LSR_TEMT) | (s->s.rx_count ? LSR_DR : 0) |
		    s->s.lsr_err;
		s->s.lsr_err = 0;
		return v;
	case UART_MSR:
		return serial_msr(s);
	default:
		return s->s.scr;
	}
}

/* Hands the TX FIFO to the sink, oldest byte first, in one call; drops
 * what it took. The FIFO becoming empty is the THRE interrupt. */
static void serial_tx_offer(struct serial *s)
{
	uint8_t buf[SERIAL_FIFO];
	size_t n = s->s.tx_count;

	if (!n)
		return;
	for (size_t i = 0; i < n; i++)
		buf[i] = s->s.tx[(s->s.tx_head + i) % SERIAL_FIFO];
	if (s->out) {
		size_t took = s->out(s->out_ctx, buf, n);

		n = MIN(took, n);
	}
	s->s.tx_head = (uint8_t)((s->s.tx_head + n) % SERIAL_FIFO);
	s->s.tx_count = (uint8_t)(s->s.tx_count - n);
	if (n && !s->s.tx_count)
		s->s.thr_ipending = 1;
}

static void serial_transmit(struct serial *s, uint8_t byte)
{
	if (s->s.mcr & MCR_LOOP) {
		/* The byte reaches RX at once; THR is empty again (unless
		 * bytes from before loopback still wait for the sink). */
		serial_rx_push(s, byte);
		if (!s->s.tx_count)
			s->s.thr_ipending = 1;
		return;
	}
	/* Writing THR acknowledges a pending THRE interrupt. A full FIFO
	 * loses the byte, as on hardware: a driver that waits for THRE never
	 * writes more than the FIFO holds. */
	s->s.thr_ipending = 0;
	if (s->s.tx_count < serial_fifo_cap(s)) {
		s->s.tx[(s->s.tx_head + s->s.tx_count) % SERIAL_FIFO] = byte;
		s->s.tx_count++;
	}
	/* Offered at once: with a reader that keeps up the byte is out before
	 * the guest's next access, THRE stays set, nothing is delayed. */
	serial_tx_offer(s);
}

static void serial_write_fcr(struct serial *s, uint8_t v)
{
	if (v & FCR_CLEAR_RX)
		s->s.rx_head = s->s.rx_count = 0;
	if ((v & FCR_CLEAR_TX) && s->s.tx_count) {
		/* What was not sent yet is gone; THR is empty again. */
		s->s.tx_head = s->s.tx_count = 0;
		s->s.thr_ipending = 1;
	}
	s->s.fcr = v & 0xc9; /* enable, DMA mode, trigger level */
}

static void serial_write_reg(struct serial *s, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_RBR:
		if (s->s.lcr & LCR_DLAB)
			s->s.dll = v;
		else
			serial_transmit(s, v);
		break;
	case UART_IER:
		if (s->s.lcr & LCR_DLAB) {
			s->s.dlm = v;
			break;
		}
		/* Enabling THRI with THR empty raises it (Linux starts TX so). */
		if ((v & IER_THRI) && !(s->s.ier & IER_THRI) && !s->s.tx_count)
			s->s.thr_ipending = 1;
		s->s.ier = v & 0x0f;
		break;
	case UART_IIR:
		serial_write_fcr(s, v);
		break;
	case UART_LCR:
		s->s.lcr = v;
		break;
	case UART_MCR:
		s->s.mcr = v & 0x1f;
		break;
	case UART_MSR:
	case UART_LSR:
		break; /* read-only */
	default:
		s->s.scr = v;
	}
}

static void serial_read(void *dev, uint64_t off, uint8_t *data, unsigned size)
{
	struct serial *s = dev;

	memset(data, 0, size);
	data[0] = serial_read_reg(s, (unsigned)off);
	serial_update_irq(s);
}

static void serial_write(void *dev, uint64_t off, const uint8_t *data, unsigned size)
{
	struct serial *s = dev;

	(void)size;
	serial_write_reg(s, (unsigned)off, data[0]);
	serial_update_irq(s);
}

const struct bus_ops serial_bus_ops = {
	.read = serial_read,
	.write = serial_write,
};

unsigned serial_rx_room(const struct serial *s)
{
	unsigned cap = serial_fifo_cap(s);

	return s->s.rx_count >= cap ? 0 : cap - s->s.rx_count;
}

unsigned serial_receive(struct serial *s, const uint8_t *data, unsigned len)
{
	unsigned n = 0;

	while (n < len && serial_rx_room(s)) {
		serial_rx_push(s, data[n]);
		n++;
	}
	serial_update_irq(s);
	return n;
}

unsigned serial_tx_pending(const struct serial *s)
{
	return s->s.tx_count;
}

unsigned serial_tx_drain(struct serial *s)
{
	serial_tx_offer(s);
	serial_update_irq(s);
	return s->s.tx_count;
}

static void serial_reset(void *dev)
{
	struct serial *s = dev;

	memset(&s->s, 0, sizeof(s->s));
	s->s.msr = MSR_CONNECTED;
	s->s.dll = 0x0c; /* 9600 baud */
	s->irq_level = -1;
	serial_update_irq(s);
}

void serial_init(struct serial *s, struct irq_line irq, serial_out_fn *out, void *out_ctx)
{
	memset(s, 0, sizeof(*s));
	s->irq = irq;
	s->out = out;
	s->out_ctx = out_ctx;
	serial_reset(s);
}

/* Version 2: version 1 (10 register bytes, rx_count, the RX FIFO) followed
 * by tx_count and the TX FIFO. */
static void serial_put_fifo(struct buf *out, const uint8_t *fifo, uint8_t head, uint8_t count)
{
	buf_put_u8(out, count);
	for (unsigned i = 0; i < count; i++)
		buf_put_u8(out, fifo[(head + i) % SERIAL_FIFO]);
}

static int serial_save(void *dev, struct buf *out)
{
	const struct serial_state *st = &((struct serial *)dev)->s;
	const uint8_t regs[] = { st->ier, st->lcr, st->mcr, st->msr, st->scr,
				 st->dll, st->dlm, st->fcr, st->lsr_err, st->thr_ipending };
	buf_put(out, regs, sizeof(regs));
	/* Both FIFOs in order, oldest first: bytes the guest has not read,
	 * and bytes it wrote that the console has not taken yet (the guest
	 * believes them sent; they come out on the destination), must
	 * survive a migration. */
	serial_put_fifo(out, st->rx, st->rx_head, st->rx_count);
	serial_put_fifo(out, st->tx, st->tx_head, st->tx_count);
	return buf_finish(out);
}

/* Reads a FIFO's count and bytes into fifo[0..count); -EINVAL for a count
 * no FIFO holds (before reading the bytes). */
static int serial_get_fifo(struct reader *r, uint8_t *fifo, uint8_t *count)
{
	*count = reader_u8(r);
	if (*count > SERIAL_FIFO)
		return -EINVAL;
	reader_get(r, fifo, *count);
	return 0;
}

static int serial_load(void *dev, uint32_t version, const uint8_t *data, size_t len)
{
	struct serial *s = dev;
	struct serial_state st = { 0 };
	struct reader r;

	if (version != 1 && version != 2)
		return -EPROTO;
	reader_init(&r, data, len);
	st.ier = reader_u8(&r);
	st.lcr = reader_u8(&r);
	st.mcr = reader_u8(&r);
	st.msr = reader_u8(&r);
	st.scr = reader_u8(&r);
	st.dll = reader_u8(&r);
	st.dlm = reader_u8(&r);
	st.fcr = reader_u8(&r);
	st.lsr_err = reader_u8(&r);
	st.thr_ipending = reader_u8(&r);
	if (st.ier > 0x0f || st.mcr > 0x1f || (st.lsr_err & ~LSR_OE) || st.thr_ipending > 1 ||
	    serial_get_fifo(&r, st.rx, &st.rx_count))
		return -EINVAL;
	/* Version 1 transmitted every byte at once: its TX FIFO is empty. */
	if (version >= 2 && serial_get_fifo(&r, st.tx, &st.tx_count))
		return -EINVAL;
	/* THRE cannot be pending while bytes wait to be sent. */
	if (st.tx_count && st.thr_ipending)
		return -EINVAL;
	if (reader_finish(&r))
		return -EINVAL;
	s->s = st;
	s->irq_level = -1;
	serial_update_irq(s);
	return 0;
}

const struct device_ops serial_device_ops = {
	.name = "serial",
	.version = 2,
	.save = serial_save,
	.load = serial_load,
	.reset = serial_reset,
};
