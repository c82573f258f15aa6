"""The guest's integrity workload: ferry.dirty=256@50 on 2 vCPUs for 60 s
(20 s in the test host).
Every page is rewritten and re-verified; nothing may be corrupt, the beat
numbers go up by one, and the achieved dirty rate (from the guest's own
written= count against its TSC uptime) is within 10 % of the request."""

import os

from ferrytest import *

SECONDS = int(os.environ.get("FERRY_DIRTY_SECONDS", scaled("60", "20")))
# Heartbeats a second at least (one each 100 ms of guest time): under
# emulation a beat may come late when the dirtier holds both vCPUs.
MIN_BEATS_PER_S = scaled(9, 7)
# APIC timer ticks a second each vCPU must show (it ticks 100 a second when
# nothing holds interrupts off; CPU 0 prints the heartbeat with interrupts
# off, and under emulation a console line takes several times longer: in
# the test host, one CPU for both vCPUs and ferry, CPU 0 was seen at 12 a
# second while its beats and its share of the dirtying went on; a vCPU
# that stopped would show none).
MIN_TICKS_PER_S = scaled(50, 5)


def test_dirty_256_at_50():
    vm = Vmm(cmdline=f"ferry.dirty=256@50 ferry.poweroff={SECONDS + 1}", cpus=2, memory=512,
             control=False)
    try:
        vm.console.wait_for(r"ferry-agent ready cpus=2", 20)
        check(vm.wait_exit(SECONDS + 30) == 0, "ferry-vmm did not exit 0")
        bad = [l for _, l in vm.console.lines if BAD_RE.search(l)]
        check(not bad, f"corruption or an error reported: {bad[:3]}")
        beats = vm.console.beats()
        check(len(beats) >= SECONDS * MIN_BEATS_PER_S, f"only {len(beats)} beats in {SECONDS} s")
        check([b["beat"] for b in beats] == list(range(1, len(beats) + 1)),
              "beat numbers do not increase by one")
        check(beats[-1]["corrupt"] == 0, f"corrupt={beats[-1]['corrupt']}")
        # The rate over the steady part (after the first second).
        a = next(b for b in beats if b["uptime_ms"] >= 1000)
        z = beats[-1]
        mib = (z["written"] - a["written"]) * 4096 / 2**20
        secs = (z["uptime_ms"] - a["uptime_ms"]) / 1000
        rate = mib / secs
        pages = 256 * 256
        print(f"  {secs:.1f} s: dirtied {mib:.0f} MiB = {rate:.2f} MiB/s (asked 50), "
              f"verified {z['verified']} pages ({z['verified'] / pages:.1f}x the working set), "
              f"corrupt={z['corrupt']}, ticks={z['ticks']}")
        check(abs(rate - 50) <= 5, f"dirty rate {rate:.2f} MiB/s is not within 10% of 50")
        check(z["verified"] >= pages * (secs / 3), "verification does not cover the working set")
        check(all(t > SECONDS * MIN_TICKS_PER_S for t in z["ticks"]),
              f"a vCPU idled: ticks={z['ticks']}")
    finally:
        vm.kill()


def test_corruption_is_detected():
    """The check can fail: ferry.inject corrupts a page and the PRNG region."""
    vm = Vmm(cmdline="ferry.dirty=16@20 ferry.inject=2 ferry.poweroff=4", cpus=2, memory=256,
             control=False)
    try:
        check(vm.wait_exit(20) == 0, "ferry-vmm did not exit 0")
        lines = [l for _, l in vm.console.lines]
        check(any("CORRUPT page=" in l for l in lines), "injected page corruption not reported")
        check(any("CORRUPT region=prng" in l for l in lines), "injected PRNG corruption not reported")
        check(vm.console.beats()[-1]["corrupt"] >= 2, "corrupt= does not count the injections")
    finally:
        vm.kill()


if __name__ == "__main__":
    require_kvm()
    run_tests([test_corruption_is_detected, test_dirty_256_at_50])
