/* Serial console; see console.h. */
#include "console.h"
#include "lib.h"
#include "x86.h"

#define COM1            0x3f8
#define UART_THR        0
#define UART_IER        1
#define UART_FCR        2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5
#define LSR_THRE        0x20
#define UART_FIFO_LEN   16

static volatile u32 console_lock;

void console_init(void)
{
	outb(COM1 + UART_IER, 0x00);    /* no interrupts: we poll */
	outb(COM1 + UART_LCR, 0x80);    /* DLAB: divisor 1 = 115200 */
	outb(COM1 + 0, 0x01);
	outb(COM1 + 1, 0x00);
	outb(COM1 + UART_LCR, 0x03);    /* 8N1 */
	outb(COM1 + UART_FCR, 0xc7);    /* FIFO on, cleared */
	outb(COM1 + UART_MCR, 0x03);
}

/* Each port access is a VM exit (~30 us from ring 3), so wait for THRE once
 * and then fill the whole 16-byte FIFO. */
static void uart_write(const char *s, size_t n)
{
	while (n) {
		size_t chunk = n < UART_FIFO_LEN ? n : UART_FIFO_LEN;

		while (!(inb(COM1 + UART_LSR) & LSR_THRE))
			cpu_relax();
		for (size_t i = 0; i < chunk; i++)
			outb(COM1 + UART_THR, (u8)s[i]);
		s += chunk;
		n -= chunk;
	}
}

static void lock(void)
{
	while (xchg32(&console_lock, 1))
		while (console_lock)
			cpu_relax();
}

static void unlock(void)
{
	barrier();
	console_lock = 0;
}

void console_write(const char *s, size_t n)
{
	lock();
	uart_write(s, n);
	unlock();
}

void console_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = fmt_vsn(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	console_write(buf, (size_t)n);
}

void console_printf_force(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n, spins = 100000;
	bool locked = false;

	va_start(ap, fmt);
	n = fmt_vsn(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	while (spins-- && !(locked = !xchg32(&console_lock, 1)))
		cpu_relax();
	uart_write(buf, (size_t)n);
	if (locked)
		unlock();
}
