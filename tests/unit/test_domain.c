/* Unit tests for src/daemon/domain.h: domain XML parse, refusals, format
 * round trips and ferry-vmm arguments. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/domain.h"

static const char full_xml[] =
	"<domain type='kvm'>\n"
	"  <name>wanderer1</name>\n"
	"  <uuid>4DEA22B3-1D52-d8f3-2516-782e98ab3fa0</uuid>\n"
	"  <memory unit='MiB'>512</memory>\n"
	"  <currentMemory>262144</currentMemory>\n"
	"  <vcpu placement='static'>2</vcpu>\n"
	"  <os>\n"
	"    <type arch='x86_64'>hvm</type>\n"
	"    <kernel>/var/lib/ferry/vmlinux</kernel>\n"
	"    <initrd>/var/lib/ferry/initrd.img</initrd>\n"
	"    <cmdline>console=ttyS0 ferry.dirty=256@50 a&amp;b</cmdline>\n"
	"  </os>\n"
	"  <cpu mode='host-passthrough'/>\n"
	"  <on_poweroff>destroy</on_poweroff>\n"
	"  <on_reboot>restart</on_reboot>\n"
	"  <on_crash>preserve</on_crash>\n"
	"  <!-- a comment -->\n"
	"  <devices>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='qemu' type='raw' cache='none'/>\n"
	"      <source file='/shared/root.img'/>\n"
	"      <target dev='vda' bus='virtio'/>\n"
	"      <serial>root-disk</serial>\n"
	"    </disk>\n"
	"    <disk type='file' device='disk'>\n"
	"      <driver name='ferry' type='raw'/>\n"
	"      <source file='/shared/data.img'/>\n"
	"      <target dev='vdb'/>\n"
	"      <readonly/>\n"
	"    </disk>\n"
	"    <interface type='ethernet'>\n"
	"      <mac address='52:54:00:ab:cd:ef'/>\n"
	"      <target dev='tap0'/>\n"
	"      <model type='virtio'/>\n"
	"    </interface>\n"
	"    <serial type='file'>\n"
	"      <source path='/var/log/ferry/wanderer1.log'/>\n"
	"      <target port='0'/>\n"
	"    </serial>\n"
	"    <console type='file'>\n"
	"      <source path='/var/log/ferry/wanderer1.log'/>\n"
	"      <target type='serial' port='0'/>\n"
	"    </console>\n"
	"  </devices>\n"
	"</domain>\n";

/* A minimal domain with extra text spliced in before </os> / </devices>. */
static char *mini(const char *mem, const char *os_extra, const char *dev_extra)
{
	char *s;

	assert_true(asprintf(&s, "<domain type='ferry'><name>m</name>%s<os><type>hvm</type>"
			     "<kernel>/k</kernel>%s</os><devices>%s</devices></domain>",
			     mem, os_extra, dev_extra) > 0);
	return s;
}

static int parse_str(const char *xml, struct domain_def *d, char *err, size_t n)
{
	return domain_parse(xml, strlen(xml), d, err, n);
}

static void test_full_example(void **state)
{
	static const uint8_t uuid[16] = { 0x4d, 0xea, 0x22, 0xb3, 0x1d, 0x52, 0xd8, 0xf3,
					  0x25, 0x16, 0x78, 0x2e, 0x98, 0xab, 0x3f, 0xa0 };
	static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	struct domain_def d;
	char err[256];

	(void)state;
	assert_int_equal(parse_str(full_xml, &d, err, sizeof(err)), 0);
	assert_int_equal(d.type, DOMAIN_TYPE_KVM);
	assert_string_equal(d.name, "wanderer1");
	assert_memory_equal(d.uuid, uuid, 16);
	assert_int_equal(d.memory, 512ull << 20);
	assert_int_equal(d.current_memory, 256ull << 20);
	assert_int_equal(d.vcpus, 2);
	assert_true(d.arch_given);
	assert_string_equal(d.kernel, "/var/lib/ferry/vmlinux");
	assert_string_equal(d.initrd, "/var/lib/ferry/initrd.img");
	assert_string_equal(d.cmdline, "console=ttyS0 ferry.dirty=256@50 a&b");
	assert_string_equal(d.cpu_mode, "host-passthrough");
	assert_int_equal(d.on_poweroff, DOMAIN_LC_DESTROY);
	assert_int_equal(d.on_reboot, DOMAIN_LC_RESTART);
	assert_int_equal(d.on_crash, DOMAIN_LC_PRESERVE);
	assert_int_equal(d.ndisks, 2);
	assert_string_equal(d.disks[0].path, "/shared/root.img");
	assert_string_equal(d.disks[0].dev, "vda");
	assert_string_equal(d.disks[0].driver, "qemu");
	assert_true(d.disks[0].cache_none);
	assert_false(d.disks[0].readonly);
	assert_string_equal(d.disks[0].serial, "root-disk");
	assert_string_equal(d.disks[1].driver, "ferry");
	assert_false(d.disks[1].cache_none);
	assert_true(d.disks[1].readonly);
	assert_string_equal(d.disks[1].serial, "");
	assert_int_equal(d.nnets, 1);
	assert_string_equal(d.nets[0].tap, "tap0");
	assert_memory_equal(d.nets[0].mac, mac, 6);
	assert_int_equal(d.serial, DOMAIN_CHR_FILE);
	assert_string_equal(d.serial_path, "/var/log/ferry/wanderer1.log");
	domain_def_free(&d);
}

static void test_defaults(void **state)
{
	struct domain_def d, e;
	char *x = mini("<memory>65536</memory>", "", "<interface type='ethernet'>"
		       "<target dev='t1'/></interface><console type='pty'/>");
	char err[256];

	(void)state;
	assert_int_equal(parse_str(x, &d, err, sizeof(err)), 0);
	assert_int_equal(d.type, DOMAIN_TYPE_FERRY);
	assert_int_equal(d.memory, 64ull << 20);
	assert_int_equal(d.current_memory, d.memory);
	assert_int_equal(d.vcpus, 1);
	assert_null(d.initrd);
	assert_null(d.cmdline);
	assert_int_equal(d.on_reboot, DOMAIN_LC_RESTART);
	assert_int_equal(d.on_crash, DOMAIN_LC_DESTROY);
	assert_int_equal(d.serial, DOMAIN_CHR_PTY);
	/* generated: a v4 uuid and a 52:54:00 MAC, different each time */
	assert_int_equal(d.uuid[6] >> 4, 4);
	assert_int_equal(d.uuid[8] >> 6, 2);
	assert_int_equal(d.nets[0].mac[0], 0x52);
	assert_int_equal(d.nets[0].mac[2], 0x00);
	assert_int_equal(parse_str(x, &e, err, sizeof(err)), 0);
	assert_memory_not_equal(d.uuid, e.uuid, 16);
	domain_def_free(&d);
	domain_def_free(&e);
	free(x);
}

static void test_units(void **state)
{
	static const struct { const char *mem; uint64_t bytes; } ok[] = {
		{ "<memory>16384</memory>", 16ull << 20 },
		{ "<memory unit='KiB'>16384</memory>", 16ull << 20 },
		{ "<memory unit='k'>16384</memory>", 16ull << 20 },
		{ "<memory unit='MiB'> 24 </memory>", 24ull << 20 },
		{ "<memory unit='M'>24</memory>", 24ull << 20 },
		{ "<memory unit='GiB'>2</memory>", 2ull << 30 },
		{ "<memory unit='G'>1</memory>", 1ull << 30 },
		{ "<memory unit='TiB'>1</memory>", 1ull << 40 },
		{ "<memory unit='KB'>16384000</memory>", 15625ull << 20 },
		{ "<memory unit='MB'>2097152</memory>", 2000000ull << 20 },
		{ "<memory unit='bytes'>16777216</memory>", 16ull << 20 },
		{ "<memory unit='b'>16777216</memory>", 16ull << 20 },
	};
	static const struct { const char *mem; const char *msg; } bad[] = {
		{ "<memory unit='kib'>16384</memory>", "bad unit 'kib' on <domain>/<memory>" },
		{ "<memory unit='MiB'>-16</memory>", "bad value '-16' in <domain>/<memory>" },
		{ "<memory unit='MiB'>1.5</memory>", "bad value '1.5'" },
		{ "<memory unit='MiB'></memory>", "bad value ''" },
		{ "<memory unit='GB'>1</memory>", "not a whole number of MiB" },
		{ "<memory unit='KB'>16384</memory>", "not a whole number of MiB" },
		{ "<memory unit='bytes'>1023</memory>", "not a whole number of MiB" },
		{ "<memory unit='MiB'>4</memory>", "from 8 MiB up" },
		{ "<memory unit='TiB'>99999999999</memory>", "bad value" },
		/* The largest number parses (and is no whole MiB); one past it does not. */
		{ "<memory unit='b'>18446744073709551615</memory>", "not a whole number of MiB" },
		{ "<memory unit='b'>18446744073709551616</memory>", "bad value" },
		{ "<memory unit='MiB'>+16</memory>", "bad value '+16'" },
		{ "<memory unit='MiB'>16</memory><currentMemory unit='MiB'>32</currentMemory>",
		  "<currentMemory> is larger than <memory>" },
		{ "<memory unit='MiB'>16</memory><currentMemory unit='KiB'>9000</currentMemory>",
		  "<domain>/<currentMemory>: 9216000 bytes is not a whole number of MiB" },
		{ "<memory unit='MiB' slots='2'>16</memory>",
		  "unsupported attribute 'slots' on <domain>/<memory>" },
	};
	struct domain_def d;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *x = mini(ok[i].mem, "", "");

		assert_int_equal(parse_str(x, &d, err, sizeof(err)), 0);
		assert_int_equal(d.memory, ok[i].bytes);
		domain_def_free(&d);
		free(x);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *x = mini(bad[i].mem, "", "");

		assert_int_equal(parse_str(x, &d, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].msg))
			fail_msg("%s: got '%s', want '%s'", bad[i].mem, err, bad[i].msg);
		free(x);
	}
}

#define MEM "<memory unit='MiB'>64</memory>"
#define DISK(dev) "<disk type='file' device='disk'><source file='/d" dev "'/>" \
		  "<target dev='" dev "'/></disk>"

static const struct { const char *xml; const char *msg; } refusals[] = {
	/* unknown elements and attributes, with their path */
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><graphics type='vnc'/></devices></domain>",
	  "unsupported element <devices>/<graphics>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x'/><target dev='vda' bus='scsi'/></disk></devices>"
	  "</domain>", "bad value 'scsi' of 'bus' on <target>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x'/><target dev='vda' foo='1'/></disk></devices>"
	  "</domain>", "unsupported attribute 'foo' on <disk>/<target>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<features><acpi/></features>"
	  "<os><type>hvm</type><kernel>/k</kernel></os></domain>",
	  "unsupported element <domain>/<features>" },
	{ "<domain type='kvm' id='3'><name>a</name></domain>",
	  "unsupported attribute 'id' on <domain>/<domain>" },
	{ "<domain type='qemu'><name>a</name></domain>", "bad value 'qemu' of 'type' on <domain>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type machine='pc'>hvm</type>"
	  "<kernel>/k</kernel></os></domain>", "unsupported attribute 'machine' on <os>/<type>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel>"
	  "<boot dev='hd'/></os></domain>", "unsupported element <os>/<boot>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='custom'/></domain>", "bad value 'custom' of 'mode' on <domain>/<cpu>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-model'><model>x</model></cpu></domain>",
	  "unsupported element <cpu>/<model>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature policy='forbid' name='avx2'/></cpu></domain>",
	  "bad value 'forbid' of 'policy' on <cpu>/<feature> (disable, require)" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature name='avx2'/></cpu></domain>",
	  "bad value '' of 'policy' on <cpu>/<feature>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature policy='disable' name='a,b'/></cpu></domain>",
	  "bad value 'a,b' of 'name' on <cpu>/<feature>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature policy='disable'/></cpu></domain>",
	  "bad value '' of 'name' on <cpu>/<feature>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature policy='disable' name='avx2'/>"
	  "<feature policy='require' name='avx2'/></cpu></domain>",
	  "duplicate <cpu>/<feature name='avx2'>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature policy='disable' name='avx2' x='1'/></cpu>"
	  "</domain>", "unsupported attribute 'x' on <cpu>/<feature>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<cpu mode='host-passthrough'><feature policy='disable' name='avx2'><x/></feature>"
	  "</cpu></domain>", "unsupported element <feature>/<x>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<on_crash>coredump-destroy</on_crash></domain>",
	  "bad value 'coredump-destroy' in <domain>/<on_crash>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk type='block'><source dev='/dev/sda'/></disk></devices></domain>",
	  "bad value 'block' of 'type' on <disk>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><driver type='qcow2'/></disk></devices></domain>",
	  "bad value 'qcow2' of 'type' on <driver>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><interface type='bridge'/></devices></domain>",
	  "bad value 'bridge' of 'type' on <interface>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><serial type='tcp'/></devices></domain>",
	  "bad value 'tcp' of 'type' on <serial>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><serial type='pty'><target port='1'/></serial></devices></domain>",
	  "bad value '1' of 'port' on <target>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><serial type='pty'/><console type='file'><source path='/l'/></console>"
	  "</devices></domain>", "<devices>/<console> differs from the serial port" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><serial type='file'/></devices></domain>",
	  "missing <serial>/<source path=...>" },
	{ "<domain type='kvm'><name>a</name><name>b</name></domain>",
	  "duplicate element <domain>/<name>" },
	{ "<domain type='kvm'><name>a</name>junk</domain>", "unexpected text in <domain>" },
	{ "<domain type='kvm' xmlns:f='urn:x'><name>a</name><f:meta/></domain>",
	  "unsupported element <domain>/<f:meta>" },
	{ "<dom type='kvm'/>", "the root element must be <domain>" },
	/* missing required parts */
	{ "<domain type='kvm'>" MEM "<os><type>hvm</type><kernel>/k</kernel></os></domain>",
	  "missing <domain>/<name>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type></os></domain>",
	  "missing <os>/<kernel>" },
	{ "<domain type='kvm'><name>a</name>" MEM "</domain>", "missing <domain>/<os>" },
	{ "<domain type='kvm'><name>a</name><os><type>hvm</type><kernel>/k</kernel></os>"
	  "</domain>", "missing <domain>/<memory>" },
	{ "<domain><name>a</name></domain>", "bad value '' of 'type' on <domain>" },
	/* bad values */
	{ "<domain type='kvm'><name>a</name><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa</uuid>"
	  "</domain>", "bad value '4dea22b3-1d52-d8f3-2516-782e98ab3fa' in <domain>/<uuid>" },
	{ "<domain type='kvm'><name>a</name><uuid>4dea22b3x1d52-d8f3-2516-782e98ab3fa0</uuid>"
	  "</domain>", "in <domain>/<uuid>" },
	{ "<domain type='kvm'><name>a</name><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fag</uuid>"
	  "</domain>", "in <domain>/<uuid>" },
	{ "<domain type='kvm'><name>a/b</name></domain>", "bad value 'a/b' in <domain>/<name>" },
	{ "<domain type='kvm'><name>..</name></domain>", "bad value '..' in <domain>/<name>" },
	{ "<domain type='kvm'><name></name></domain>", "bad value '' in <domain>/<name>" },
	{ "<domain type='kvm'><name>a2345678901234567890123456789012345678901234567890123456789"
	  "012345</name></domain>", "in <domain>/<name>" },
	{ "<domain type='kvm'><name>a</name><vcpu>0</vcpu></domain>",
	  "bad value '0' in <domain>/<vcpu> (1 to 255)" },
	{ "<domain type='kvm'><name>a</name><vcpu>256</vcpu></domain>",
	  "bad value '256' in <domain>/<vcpu>" },
	{ "<domain type='kvm'><name>a</name><vcpu placement='auto'>2</vcpu></domain>",
	  "bad value 'auto' of 'placement' on <vcpu>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><interface type='ethernet'><mac address='53:54:00:00:00:01'/>"
	  "<target dev='t'/></interface></devices></domain>",
	  "bad value '53:54:00:00:00:01' of 'address' on <interface>/<mac>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><interface type='ethernet'><mac address='52:54:00:00:00:0g'/>"
	  "<target dev='t'/></interface></devices></domain>", "on <interface>/<mac>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><interface type='ethernet'><target dev='tap-name-too-long'/></interface>"
	  "</devices></domain>", "bad value 'tap-name-too-long' of 'dev' on <interface>/<target>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><interface type='ethernet'><target dev='t'/></interface>"
	  "<interface type='ethernet'><target dev='t'/></interface></devices></domain>",
	  "duplicate target dev 't' in <devices>/<interface>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices>" DISK("vda") DISK("vda") "</devices></domain>",
	  "duplicate target dev 'vda' in <devices>/<disk>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices>" DISK("vda") DISK("vdb") DISK("vdc") DISK("vdd") DISK("vde") DISK("vdf")
	  DISK("vdg") DISK("vdh") DISK("vdi") "</devices></domain>",
	  "too many <devices>/<disk> (at most 8)" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x'/><target dev='sda'/></disk></devices></domain>",
	  "bad value 'sda' of 'dev' on <disk>/<target>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x,y'/><target dev='vda'/></disk></devices></domain>",
	  "on <disk>/<source> ('/x,y'" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><target dev='vda'/></disk></devices></domain>",
	  "missing <disk>/<source file=...>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x'/><target dev='vda'/>"
	  "<serial>123456789012345678901</serial></disk></devices></domain>",
	  "bad value '123456789012345678901' in <disk>/<serial> (at most 20 bytes" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x'/><source file='/y'/><target dev='vda'/></disk>"
	  "</devices></domain>", "duplicate element <disk>/<source>" },
	{ "<domain type='kvm'><name>a</name>" MEM "<os><type>hvm</type><kernel>/k</kernel></os>"
	  "<devices><disk><source file='/x'/><target dev='vda'/><boot order='1'/></disk>"
	  "</devices></domain>", "unsupported element <disk>/<boot>" },
	/* malformed XML, one line quoting libxml2 */
	{ "<domain type='kvm'><name>a</name>", "malformed XML (line 1): " },
	{ "<domain type='kvm'><name>a</nam></domain>",
	  "malformed XML (line 1): Opening and ending tag mismatch" },
	{ "", "malformed XML" },
	/* entities and DTDs are neither expanded nor fetched */
	{ "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY x 'evil'>]>"
	  "<domain type='kvm'><name>&x;</name></domain>", "a DOCTYPE (DTD, entities) is not supported" },
	{ "<!DOCTYPE domain SYSTEM 'http://198.18.0.1/x.dtd'><domain type='kvm'/>",
	  "a DOCTYPE (DTD, entities) is not supported" },
	{ "<?xml version='1.0'?><!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
	  "<domain type='kvm'><name>&x;</name></domain>", "DOCTYPE" },
	{ "<domain type='kvm'><name>&x;</name></domain>", "malformed XML (line 1): Entity 'x' not defined" },
};

static void test_refusals(void **state)
{
	struct domain_def d;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		memset(err, 0, sizeof(err));
		assert_int_equal(parse_str(refusals[i].xml, &d, err, sizeof(err)), -EINVAL);
		if (!strstr(err, refusals[i].msg))
			fail_msg("#%zu: got '%s', want '%s'", i, err, refusals[i].msg);
		assert_null(strchr(err, '\n'));
	}
}

/* format → parse gives the same def; formatting again gives the same bytes. */
static void check_round_trip(const char *xml)
{
	struct domain_def a, b;
	struct buf x = { 0 }, y = { 0 };
	char err[256];

	assert_int_equal(parse_str(xml, &a, err, sizeof(err)), 0);
	assert_int_equal(domain_format(&a, false, &x), 0);
	assert_int_equal(strlen((char *)x.data), x.len);
	if (parse_str((char *)x.data, &b, err, sizeof(err)))
		fail_msg("reparse: %s\n%s", err, (char *)x.data);
	assert_true(domain_def_equal(&a, &b));
	assert_int_equal(domain_format(&b, true, &y), 0);
	assert_int_equal(x.len, y.len);
	assert_memory_equal(x.data, y.data, x.len);
	domain_def_free(&a);
	domain_def_free(&b);
	buf_free(&x);
	buf_free(&y);
}

static void test_round_trip(void **state)
{
	char *m1 = mini(MEM, "<cmdline>a\tb\nc 'q' \"d\" &lt;e&gt;</cmdline>",
			"<serial type='null'/>");
	char *m2 = mini(MEM, "<initrd>/i</initrd><cmdline></cmdline>",
			DISK("vda") "<console type='pty'><target type='serial'/></console>");
	char *m3 = mini("<memory unit='GiB'>4</memory><currentMemory unit='MiB'>1024"
			"</currentMemory>", "", "<interface type='ethernet'><target dev='t&amp;1'/>"
			"</interface><interface type='ethernet'><target dev='t2'/></interface>");
	char *m4 = mini(MEM "<cpu mode='host-model'><feature policy='disable' name='kvm_pv_unhalt'/>"
			"<feature policy='require' name='sse4.1'/></cpu>", "", "");

	(void)state;
	check_round_trip(full_xml);
	check_round_trip(m1);
	check_round_trip(m2);
	check_round_trip(m3);
	check_round_trip(m4);
	free(m4);
	free(m1);
	free(m2);
	free(m3);
}

static void test_format_text(void **state)
{
	struct domain_def d;
	struct buf b = { 0 };
	char err[256];

	(void)state;
	assert_int_equal(parse_str(full_xml, &d, err, sizeof(err)), 0);
	assert_int_equal(domain_format(&d, false, &b), 0);
	assert_non_null(strstr((char *)b.data, "<uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>"));
	assert_non_null(strstr((char *)b.data, "<memory unit='KiB'>524288</memory>\n"
			       "  <currentMemory unit='KiB'>262144</currentMemory>\n"));
	assert_non_null(strstr((char *)b.data, "a&amp;b</cmdline>"));
	assert_non_null(strstr((char *)b.data, "<driver name='ferry' type='raw' cache='writeback'/>"));
	/* a control character XML cannot carry is refused, not written */
	d.cmdline[0] = '\x01';
	buf_free(&b);
	b = (struct buf){ 0 };
	assert_int_equal(domain_format(&d, false, &b), -EINVAL);
	buf_free(&b);
	domain_def_free(&d);
}

static void test_vmm_args(void **state)
{
	static const char *const want[] = {
		"ferry-vmm", "--name", "wanderer1", "--memory", "512", "--cpus", "2",
		"--kernel", "/var/lib/ferry/vmlinux", "--initrd", "/var/lib/ferry/initrd.img",
		"--cmdline", "console=ttyS0 ferry.dirty=256@50 a&b",
		"--disk", "/shared/root.img,cache=none,serial=root-disk",
		"--disk", "/shared/data.img,readonly=on,cache=writeback",
		"--net", "tap=tap0,mac=52:54:00:ab:cd:ef",
		"--serial", "file:/var/log/ferry/wanderer1.log", NULL,
	};
	struct domain_def d;
	char err[256], **argv;
	size_t i;

	(void)state;
	assert_int_equal(parse_str(full_xml, &d, err, sizeof(err)), 0);
	assert_int_equal(domain_vmm_args(&d, &argv), 0);
	for (i = 0; want[i]; i++) {
		assert_non_null(argv[i]);
		assert_string_equal(argv[i], want[i]);
	}
	assert_null(argv[i]);
	domain_vmm_args_free(argv);

	/* pty: ferryd adds the console socket; none: null */
	d.serial = DOMAIN_CHR_PTY;
	assert_int_equal(domain_vmm_args(&d, &argv), 0);
	for (i = 0; argv[i]; i++)
		assert_string_not_equal(argv[i], "--serial");
	domain_vmm_args_free(argv);
	d.serial = DOMAIN_CHR_NONE;
	assert_int_equal(domain_vmm_args(&d, &argv), 0);
	for (i = 0; argv[i + 1]; i++)
		;
	assert_string_equal(argv[i - 1], "--serial");
	assert_string_equal(argv[i], "null");
	domain_vmm_args_free(argv);

	/* <cpu> features: --cpu host,-NAME,+NAME, after --cpus. */
	d.cpu_features[0] = (struct domain_cpu_feature){ .name = "kvm_pv_unhalt" };
	d.cpu_features[1] = (struct domain_cpu_feature){ .name = "avx2", .require = true };
	d.ncpu_features = 2;
	assert_int_equal(domain_vmm_args(&d, &argv), 0);
	assert_string_equal(argv[7], "--cpu");
	assert_string_equal(argv[8], "host,-kvm_pv_unhalt,+avx2");
	domain_vmm_args_free(argv);

	/* on_reboot: restart (the default) reboots in place; destroy and
	 * preserve end the VM, so ferry-vmm gets --no-reboot */
	for (int lc = DOMAIN_LC_DESTROY; lc <= DOMAIN_LC_PRESERVE; lc++) {
		bool given = false;

		d.on_reboot = (enum domain_lifecycle)lc;
		assert_int_equal(domain_vmm_args(&d, &argv), 0);
		for (i = 0; argv[i]; i++)
			given |= !strcmp(argv[i], "--no-reboot");
		assert_int_equal(given, lc != DOMAIN_LC_RESTART);
		domain_vmm_args_free(argv);
	}
	d.on_reboot = DOMAIN_LC_RESTART;

	/* a path ferry-vmm's --disk cannot carry */
	free(d.disks[1].path);
	d.disks[1].path = strdup("/a,b");
	assert_int_equal(domain_vmm_args(&d, &argv), -EINVAL);
	assert_null(argv);
	domain_def_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_format_text),
		cmocka_unit_test(test_vmm_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
