/*
 * Ring-3 main line: one thread per CPU. CPU 0 parses the options, lays out
 * memory, fills the PRNG region, waits for every CPU to reach ring 3,
 * prints "ready", and then runs the heartbeat, the PRNG re-check and the
 * power-off timer besides its share of the working set. Every CPU wakes
 * on absolute 10 ms TSC deadlines (ud2 SYS_SLEEP_UNTIL). The last CPU (CPU
 * 0 when alone) also runs the disk record writer and the network, and
 * takes the devices' interrupts, so that CPU 0's heartbeat is never held
 * up by a device.
 */
#include "bootinfo.h"
#include "console.h"
#include "disk.h"
#include "lib.h"
#include "net.h"
#include "syscall.h"
#include "user.h"
#include "wset.h"

#define TICK_MS         10
#define PRNG_BYTES      (4 * MiB)
#define PRNG_CHECK_MS   1000
#define READY_WAIT_MS   2000

/* Written by CPU 0 before `go` is set, read-only afterwards. */
static struct {
	struct options opt;
	struct wset ws;
	u64 *prng;
	u64 prng_sum;
	u64 t0;                 /* TSC at "ready": schedules start here */
	volatile u32 online;    /* CPUs that reached ring 3 */
	volatile u32 go;
} W;

static u64 ms_to_tsc(u64 ms)
{
	return ms * boot.tsc_khz;
}

static u64 uptime_ms(u64 now)
{
	return (now - boot.start_tsc) / boot.tsc_khz;
}

static NORETURN void fatal(const char *msg)
{
	console_printf("ferry-agent error: %s\n", msg);
	sys_poweroff();
}

/* Lowest free stretch of len bytes in RAM above the image, clear of PVH
 * modules and inside the identity map; 0 if none. */
static u64 alloc_ram(u64 len)
{
	u64 floor = ALIGN_UP((u64)(uintptr_t)__image_end, 2 * MiB);

	for (u32 i = 0; i < boot.nmem; i++) {
		const struct mem_range *m = &boot.mem[i];
		u64 start = ALIGN_UP(m->addr > floor ? m->addr : floor, PAGE_SIZE);
		u64 end = m->addr + m->size;

		if (m->type != E820_RAM)
			continue;
		if (end > boot.mapped_top)
			end = boot.mapped_top;
		for (u32 j = 0; j < boot.nmods; j++) {
			const struct mem_range *mod = &boot.mods[j];

			if (start < mod->addr + mod->size && mod->addr < start + len)
				start = ALIGN_UP(mod->addr + mod->size, PAGE_SIZE);
		}
		if (start < end && end - start >= len)
			return start;
	}
	return 0;
}

static void layout(void)
{
	u64 pages = W.opt.dirty ? W.opt.ws_mib * (MiB / PAGE_SIZE) : 0;
	u64 gen_bytes = ALIGN_UP(pages * sizeof(u32), PAGE_SIZE);
	u64 base = alloc_ram(PRNG_BYTES + gen_bytes + pages * PAGE_SIZE);

	if (!base)
		fatal("working set does not fit");
	W.prng = (u64 *)(uintptr_t)base;
	W.ws.gen = (u32 *)(uintptr_t)(base + PRNG_BYTES);
	W.ws.base = (u8 *)(uintptr_t)(base + PRNG_BYTES + gen_bytes);
	W.ws.pages = pages;
}

static u32 io_cpu(void)
{
	return boot.ncpus - 1;
}

/* PCI scan, disk checks and NICs (ferry.ip, ferry.ping); then
 * ferry.disk-bench (which powers off) or the disk writer's start line. */
static void setup_devices(void)
{
	struct pci_dev found[PCI_MAX_DEVS];
	u32 n = pci_scan(VIRTIO_PCI_VENDOR, found, PCI_MAX_DEVS);
	struct vblk *b;

	disk_init(found, n, io_cpu());
	net_init(found, n, io_cpu(), &W.opt);
	if (W.opt.disk_bench_s) {
		b = disk_first(false);
		if (!b)
			fatal("ferry.disk-bench: no disk");
		disk_bench(b, W.opt.disk_bench_s);
	}
	if (W.opt.disk_writer_kib) {
		b = disk_first(true);
		if (!b)
			console_printf("ferry-agent warning: ferry.disk-writer: "
				       "no writable disk\n");
		else
			dwriter_init(b, W.opt.disk_writer_kib);
	}
}

static void setup(void)
{
	char bad[128];

	if (options_parse(boot.cmdline, &W.opt, bad, sizeof(bad))) {
		console_printf("ferry-agent error: bad option %s\n", bad);
		sys_poweroff();
	}
	console_printf("ferry-agent info tsc_khz=%lu tsc_source=%s apic_khz=%lu "
		       "pm1a_cnt=0x%x slp_typa=%u\n", boot.tsc_khz, boot.tsc_source,
		       boot.apic_khz, boot.pm1a_cnt, boot.slp_typa);
	setup_devices();
	layout();
	W.prng_sum = prng_fill(W.prng, PRNG_BYTES / 8);
}

static void wait_online(void)
{
	u64 t0 = now_tsc();

	while (W.online < boot.ncpus && now_tsc() - t0 < ms_to_tsc(READY_WAIT_MS))
		cpu_relax();
	if (W.online < boot.ncpus)
		console_printf("ferry-agent warning: only %u of %u cpus reached "
			       "ring 3\n", W.online, boot.ncpus);
}

static void heartbeat(u64 beat, u64 now)
{
	char line[512];
	u64 v = 0, c = 0, w = 0;
	int n;

	for (u32 i = 0; i < boot.ncpus; i++) {
		v += wset_stats[i].verified;
		c += wset_stats[i].corrupt;
		w += wset_stats[i].written;
	}
	n = fmt_sn(line, sizeof(line), "ferry-agent beat=%lu uptime_ms=%lu "
		   "verified=%lu corrupt=%lu written=%lu ticks=", beat,
		   uptime_ms(now), v, c, w);
	for (u32 i = 0; i < boot.ncpus && n < (int)sizeof(line) - 24; i++)
		n += fmt_sn(line + n, sizeof(line) - (size_t)n, "%s%lu",
			    i ? "/" : "", percpu[i].timer_ticks);
	if (dwriter_active())
		n += fmt_sn(line + n, sizeof(line) - (size_t)n,
			    " disk_written=%lu disk_corrupt=%lu",
			    dwriter_stats.written, dwriter_stats.corrupt);
	if (net_pinging())      /* net_lost last, always */
		n += fmt_sn(line + n, sizeof(line) - (size_t)n,
			    " net_sent=%lu net_recv=%lu net_lost=%lu",
			    net_stats.sent, net_stats.recv, net_stats.lost);
	line[n++] = '\n';
	console_write(line, (size_t)n);
}

/* A failure is counted once: the new checksum becomes the reference, so
 * only a further change counts again. */
static void check_prng(void)
{
	u64 sum = prng_checksum(W.prng, PRNG_BYTES / 8);

	if (sum == W.prng_sum)
		return;
	W.prng_sum = sum;
	wset_stats[0].corrupt++;
	console_printf("ferry-agent CORRUPT region=prng\n");
}

/* ferry.inject: corrupt one PRNG word and one working-set page. */
static void inject(struct wset_worker *wk)
{
	bool page = wset_inject(wk);

	W.prng[4096] ^= 1;
	console_printf("ferry-agent inject prng=1 page=%u\n", page);
}

/* Next deadline strictly after now on the grid t, t + period, ... */
static u64 advance(u64 t, u64 period, u64 now)
{
	t += period;
	if (t <= now)
		t += ((now - t) / period + 1) * period;
	return t;
}

static u64 min3(u64 a, u64 b, u64 c)
{
	u64 m = a < b ? a : b;

	return m < c ? m : c;
}

/* The I/O CPU's share of the disk writer and the network, after its tick
 * work or on an earlier wake one of them asked for; returns when it wants
 * to run again. */
static u64 io_work(void)
{
	u64 d, w;

	dwriter_tick(now_tsc());
	net_tick(now_tsc());
	d = dwriter_wake(now_tsc());
	w = net_wake(now_tsc());
	return d < w ? d : w;
}

static NORETURN void run_cpu0(struct wset_worker *wk)
{
	u64 tick = W.t0, beat_t = W.t0, prng_t = W.t0 + ms_to_tsc(PRNG_CHECK_MS);
	u64 off_t = W.opt.poweroff ? boot.start_tsc + ms_to_tsc(W.opt.poweroff_s * 1000)
				   : ~0ULL;
	u64 inj_t = W.opt.inject ? boot.start_tsc + ms_to_tsc(W.opt.inject_s * 1000)
				 : ~0ULL;
	u64 beat = 0, io_wake = ~0ULL;

	for (;;) {
		u64 now = now_tsc();

		if (now >= off_t) {
			disk_report();
			net_report();
			sys_poweroff();
		}
		if (now >= tick) {
			wset_worker_tick(wk, now);
			tick = advance(tick, ms_to_tsc(TICK_MS), now);
		}
		if (now >= inj_t) {
			inject(wk);
			inj_t = ~0ULL;
		}
		if (now >= prng_t) {
			check_prng();
			prng_t = advance(prng_t, ms_to_tsc(PRNG_CHECK_MS), now);
		}
		if (now >= beat_t && sys_power_button()) {
			console_printf("ferry-agent power-button: shutting down\n");
			disk_report();
			net_report();
			sys_poweroff();
		}
		if (now >= beat_t) {
			heartbeat(++beat, now);
			beat_t = advance(beat_t, ms_to_tsc(W.opt.beat_ms), now);
		}
		if (io_cpu() == 0)      /* alone: after the heartbeat's work */
			io_wake = io_work();
		sys_sleep_until(min3(min3(tick, beat_t, prng_t),
				     min3(off_t, inj_t, io_wake), ~0ULL));
	}
}

static NORETURN void run_ap(struct wset_worker *wk)
{
	u64 tick = W.t0, io_wake = ~0ULL;

	for (;;) {
		u64 now = now_tsc();

		if (now >= tick) {
			wset_worker_tick(wk, now);
			tick = advance(tick, ms_to_tsc(TICK_MS), now);
		}
		if (wk->cpu == io_cpu())
			io_wake = io_work();
		sys_sleep_until(tick < io_wake ? tick : io_wake);
	}
}

NORETURN void user_main(u32 cpu)
{
	struct wset_worker wk;

	atomic_inc32(&W.online);
	if (cpu == 0) {
		setup();
		wait_online();
		W.t0 = now_tsc();
		/* Rounded up: firmware keeps slices of the first and last
		 * MiB (QEMU: 511.5 MiB of RAM entries for -m 512). */
		console_printf("ferry-agent ready cpus=%u mem_mib=%lu\n",
			       boot.ncpus, ALIGN_UP(boot.ram_bytes, MiB) / MiB);
		barrier();
		W.go = 1;
	} else {
		while (!W.go)
			sys_sleep_until(now_tsc() + ms_to_tsc(1));
	}
	wset_worker_init(&wk, &W.ws, cpu, boot.ncpus, W.opt.rate_mib, W.t0);
	if (cpu == 0)
		run_cpu0(&wk);
	run_ap(&wk);
}
