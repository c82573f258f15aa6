"""Live migration between two ferry-vmm processes on this host: the guest
goes on at the destination where it stopped at the source (next beat
number, no corrupt page, every vCPU working, RAM identical by hash), the
source ends in postmigrate; parameters and the convergence ladder; and
every fault — the destination killed at each stage, the hand-over cut
after GO, cancel, the connection cut at many byte offsets, garbage
streams, a wrong token — leaves exactly one copy of the guest running, or
(after GO) a paused source that only `cont {"force": true}` resumes.

FERRY_PINGPONG=N sets the number of migrations of the ping-pong test
(default 10; 4 in the test host, where each takes tens of seconds)."""

import random
import re
import select
import shutil
import socket
import struct
import threading

from ferrytest import *

# emulated, one migration takes tens of seconds: 4 rounds still cross unix:
# and tcp: both ways and check a RAM hash
PINGPONG = int(os.environ.get("FERRY_PINGPONG", str(scaled(10, 4))))
MB = 1000 * 1000
MIB = 1024 * 1024

FINAL = ("completed", "failed", "cancelled")

# Dirty rates the guest keeps up with and the stream can carry. Inside the
# test host (emulated) the migration stream carries only tens of MiB/s and
# the guest's single vCPU cannot even write 50 MiB/s: a dirtier that never
# catches up never sleeps, so its vCPU shows no APIC ticks and CPU 0's
# heartbeat comes seconds apart. There the "50" guest dirties 64 MiB at
# 8 MiB/s (converges on the slow stream) and the "500" one 64 at 16 (still
# faster than anything but a fast stream, so more passes).
DIRTY_50 = scaled("ferry.dirty=256@50", "ferry.dirty=64@8")
DIRTY_500 = scaled("ferry.dirty=256@500", "ferry.dirty=64@16")
# The busy guest of the failure and ping-pong tests (emulated, 50 MiB/s
# keeps its vCPU busy: heartbeats seconds apart there).
DIRTY_64 = scaled("ferry.dirty=64@50", "ferry.dirty=64@8")


# ---- processes ----------------------------------------------------------

def track(vm):
    """Reads the process's stderr as it comes too (log lines, hooks)."""
    vm.err = Console(vm.p.stderr)
    return vm


def source(cmdline="", cpus=1, memory=256, env=None):
    # --verbose: the log says what the policy decided after every pass
    vm = track(Vmm(cmdline=cmdline, cpus=cpus, memory=memory, env=env, extra=["--verbose"]))
    vm.connect(10)
    vm.console.wait_for(r"ferry-agent beat=1 ", 30)
    return vm


def destination(tmp, kind="unix", extra=(), env=None, name=None):
    """An incoming ferry-vmm listening on a fresh unix: or tcp: URI;
    returns (vm, uri) once it said it is waiting."""
    for attempt in range(5):
        if kind == "unix":
            name = name or f"in-{random.randrange(1 << 30)}.sock"
            uri = "unix:" + os.path.join(tmp, name)
        else:
            uri = f"tcp:127.0.0.1:{free_port()}"
        vm = track(Vmm(restore=True, extra=["--incoming", uri] + list(extra), env=env))
        try:
            vm.err.wait_for(r"waiting for a migration on " + re.escape(uri), 15)
            return vm, uri
        except Failure:
            text = vm.err.transcript()
            vm.kill()
            if kind == "tcp" and "listening on tcp" in text and attempt < 4:
                continue  # the free port was taken meanwhile
            raise Failure(f"the destination did not listen on {uri}: {text.strip()!r}")
    raise Failure("no free port")


def pump(vms, seconds):
    """Lets `seconds` pass while vms run (their consoles and logs are read
    by the harness's threads meanwhile)."""
    time.sleep(max(0, seconds))


def finish(vm, timeout=30):
    """Exit status once the process ended and both pipes are read out."""
    timeout *= TIMEOUT_SCALE  # a limit for a hang, like ferrytest's waits
    deadline = time.monotonic() + timeout
    while vm.p.poll() is None or not vm.console.eof or not vm.err.eof:
        if time.monotonic() > deadline:
            raise Failure(f"ferry-vmm (pid {vm.p.pid}) still running after {timeout}s")
        pump([vm], 0.05)
    return vm.p.returncode


def pass_log(vm):
    """The policy's decisions (ferry-vmm --verbose), for failure messages."""
    return "; ".join(l.split("migration ", 1)[1] for _, l in vm.err.lines
                     if "migration pass" in l)


def error_lines(vm):
    return [l for _, l in vm.err.lines if ": error: " in l]


def query(vm):
    r = vm.ctl.execute("query-migrate")
    check("return" in r, f"query-migrate: {r}")
    return r["return"]


def status(vm):
    return vm.ctl.execute("query-status")["return"]["status"]


def wait_migration(src, others, timeout, until=FINAL, every=0.05):
    """Polls query-migrate (reading all consoles) until its status is in
    until; returns the last answer."""
    # a limit for a hang, like ferrytest's waits: emulated, a migration of
    # the same guest takes several times longer
    timeout *= TIMEOUT_SCALE
    deadline = time.monotonic() + timeout
    while True:
        q = query(src)
        if q.get("status") in until:
            return q
        if time.monotonic() > deadline:
            raise Failure(f"migration still {q.get('status')} after {timeout}s: {q}")
        pump([src] + list(others), every)


def wait_bulk(src, dst, seconds, timeout=30):
    """Waits until the first pass (the bulk copy) has run for that long:
    ferry.pass is the pass under way."""
    timeout *= TIMEOUT_SCALE  # a limit for a hang
    deadline = time.monotonic() + timeout
    q = query(src)
    while q.get("status") == "setup":
        check(time.monotonic() < deadline, f"still in setup: {q}")
        pump([src, dst], 0.02)
        q = query(src)
    pump([src, dst], seconds)
    q = query(src)
    check(q["status"] == "active" and q["ferry"]["pass"] == 1 and q["ram"]["transferred"] > 0,
          f"not in the bulk copy: {q}")
    return q


def start_migration(src, uri, **args):
    r = src.ctl.execute("migrate", {"uri": uri, **args})
    check(r == {"return": {}}, f"migrate: {r}")
    return time.monotonic()


def set_params(vm, **p):
    r = vm.ctl.execute("migrate-set-parameters", {k.replace("_", "-"): v for k, v in p.items()})
    check(r == {"return": {}}, f"migrate-set-parameters {p}: {r}")


def events(vm):
    """Every event received so far (a command flushes those in flight)."""
    vm.ctl.execute("query-status")
    return [e for _, e in vm.ctl.events]


def kill_all(vms):
    for vm in vms:
        if vm and os.path.isdir(vm.tmp):
            vm.kill()


def beat_times(vm, since=0.0):
    return [(t, parse_beat(l)) for t, l in vm.console.lines if t >= since and parse_beat(l)]


def max_gap(vm, since, until=None):
    """Longest wait between heartbeat arrivals on the host from since to
    until (now)."""
    until = until or time.monotonic()
    ts = [since] + [t for t, _ in beat_times(vm, since) if t <= until] + [until]
    return max(b - a for a, b in zip(ts, ts[1:]))


# Emulated, the source stays paused for the final pass and device state of
# a migration that fails late (after READY) longer, and a console line costs
# more: the same pause, measured on the wall clock (seen there: 1.8 s).
SOURCE_GAP_S = scaled(4.0, 8.0)


def source_runs_on(src, since, what, max_gap_s=SOURCE_GAP_S):
    """The source is running and its heartbeat went on: new beats now, and
    no gap longer than max_gap_s since `since`."""
    st = status(src)
    check(st == "running", f"{what}: source status {st!r}, not running")
    n = len(src.console.beats())
    pump([src], 1.0)
    check(len(src.console.beats()) > n, f"{what}: the source's heartbeat stopped")
    g = max_gap(src, since)
    check(g <= max_gap_s, f"{what}: the source's heartbeat paused {g:.1f} s")
    b = src.console.beats()[-1]
    check(b["corrupt"] == 0, f"{what}: corrupt={b['corrupt']} on the source")
    return g


def no_guest_ran(dst, what):
    out = dst.console.transcript()
    check("ferry-agent" not in out, f"{what}: the destination's guest printed {out[:200]!r}")


def complete_lines(vm):
    """The console without a last partial line (a guest ended by quit may
    be half-way through one)."""
    return "".join(l + "\n" for _, l in vm.console.lines)


def joined_beats(*vms):
    """The heartbeat across processes, from their consoles end to end (a
    line the source was writing when it paused is finished by the
    destination). Returns (beats, index of the first beat that ended in
    each vm)."""
    text, marks = "", []
    for vm in vms:
        marks.append(len(text))
        text += vm.console.transcript() if vm is not vms[-1] else complete_lines(vm)
    beats, firsts, pos = [], [None] * len(vms), 0
    for line in text.split("\n"):
        end = pos + len(line)
        b = parse_beat(line) if "beat=" in line else None
        if "beat=" in line:
            check(b is not None and BEAT_RE.fullmatch(line),
                  f"a heartbeat line was cut or garbled: {line!r}")
            k = max(i for i, m in enumerate(marks) if m <= end)
            if firsts[k] is None:
                firsts[k] = len(beats)
            beats.append(b)
        pos = end + 1
    return beats, firsts


# ---- one complete live migration, checked --------------------------------

def check_completed(q, live=True):
    check(q["status"] == "completed", f"status {q['status']}: {q.get('error-desc')}")
    check(q.get("total-time", 0) > 0 and "downtime" in q, f"no total-time/downtime: {q}")
    check(q["ram"]["transferred"] > 0, f"ram.transferred {q['ram']['transferred']}")
    parts = q["ferry"].get("downtime-parts")
    check(parts and all(k in parts for k in ("pause-us", "final-ram-us", "device-state-us",
                                             "destination-load-us", "start-us", "total-us")),
          f"ferry.downtime-parts: {parts}")
    if not live:
        check(q["ferry"]["rung"] == "non-live", f"rung {q['ferry']['rung']}")


def after_handover(src, dst, q, t_migrate, watch=5.0, what="", min_ticks=None):
    """Checks both sides once a migration completed: the source is
    postmigrate (cont, stop, system_powerdown refused, query-migrate keeps
    its figures) and exits 0 on quit; the destination's heartbeat goes on
    from the source's next number for `watch` seconds, corrupt=0, ticks
    growing on every vCPU, its clock never running back; it exits 0 on
    quit."""
    check(status(src) == "postmigrate", f"{what}source status {status(src)!r} after completion")
    r = src.ctl.execute("cont")
    check("error" in r, f"{what}cont on a migrated-away source: {r}")
    r = src.ctl.execute("stop")
    check("error" in r, f"{what}stop on a migrated-away source: {r}")
    r = src.ctl.execute("system_powerdown")
    check("error" in r, f"{what}system_powerdown on a migrated-away source: {r}")
    i = dst.console.wait_for(r"ferry-agent beat=", 20)
    t_first = dst.console.lines[i][0]
    dctl = dst.connect(20)
    check(status(dst) == "running", f"{what}destination status {status(dst)!r}")
    pump([src, dst], watch)
    q2 = query(src)  # still there, later
    check(q2["status"] == "completed" and q2.get("downtime") == q.get("downtime") and
          q2["ram"]["transferred"] == q["ram"]["transferred"] and
          "downtime-parts" in q2["ferry"], f"{what}query-migrate later: {q2}")
    check(src.ctl.execute("quit") == {"return": {}}, "quit on the source")
    rc = finish(src)
    check(rc == 0, f"{what}source exit status {rc} after quit")
    beats, firsts = joined_beats(src, dst)
    s_last = beats[firsts[1] - 1] if firsts[1] else None
    d_first, d_beats = beats[firsts[1]], beats[firsts[1]:]
    check(s_last is not None, f"{what}no heartbeat on the source")
    check(d_first["beat"] == s_last["beat"] + 1,
          f"{what}the destination's first beat is {d_first['beat']}, the source's last "
          f"{s_last['beat']}")
    nums = [b["beat"] for b in beats]
    check(nums == list(range(nums[0], nums[0] + len(nums))),
          f"{what}beat numbers not consecutive across the hand-over")
    bad = [l for vm in (src, dst) for _, l in vm.console.lines if BAD_RE.search(l)]
    check(all(b["corrupt"] == 0 for b in beats) and not bad,
          f"{what}corruption: {[b['corrupt'] for b in d_beats][-1]}; {bad[:3]}")
    ups = [b["uptime_ms"] for b in beats]
    check(all(b >= a for a, b in zip(ups, ups[1:])), f"{what}the guest's uptime went back")
    # The guest's clock may skip the downtime, not more than the host saw,
    # from the last beat that came before the migration began to the
    # destination's first. (Not from the source's last: a throttled vCPU
    # can take seconds to print a line, whose uptime is older than its
    # arrival by that much.)
    before = [(t, b) for t, b in beat_times(src) if t <= t_migrate]
    t0, b0 = before[-1] if before else (t_migrate, s_last)
    jump = d_first["uptime_ms"] - b0["uptime_ms"]
    host_gap = (t_first - t0) * 1000
    check(jump <= max(host_gap, 0) + 1000, f"{what}the guest's clock leapt {jump} ms from beat "
          f"{b0['beat']} to beat {d_first['beat']} (host saw {host_gap:.0f} ms between them)")
    z = d_beats[-1]
    # 100 APIC ticks a second when the guest keeps pace; emulated, a vCPU
    # whose dirtier falls behind sleeps (and ticks) far less: any growth at
    # all still tells a running vCPU from a stopped one.
    # The guest arms its tick when a vCPU sleeps: inside the test host (one
    # CPU for everything) CPU 0, which also prints the beats, was seen
    # never to sleep in 2 s of the ladder test. There it need not reach
    # min_ticks in `watch`, but a timer interrupt lost in the hand-over
    # stops its ticks for good: it gets up to 10 s to show one (as in
    # test_snapshot.py's mid-line test).
    min_ticks = min_ticks if min_ticks is not None else int(watch * scaled(40, 10))
    stopped = [i for i, (a, b) in enumerate(zip(d_first["ticks"], z["ticks"]))
               if b - a < min_ticks and not (EMULATED and i == 0)]
    check(len(z["ticks"]) == len(d_first["ticks"]) and not stopped,
          f"{what}a vCPU stopped on the destination: ticks {d_first['ticks']} -> {z['ticks']}")
    if EMULATED:
        deadline = time.monotonic() + 10 * TIMEOUT_SCALE
        while (y := dst.console.beats()[-1])["ticks"][0] - d_first["ticks"][0] < 1:
            check(time.monotonic() < deadline,
                  f"{what}CPU 0 never ticked on the destination: ticks {d_first['ticks']} "
                  f"at beat {d_first['beat']} -> {y['ticks']} at beat {y['beat']}: its "
                  "timer interrupt was lost")
            dst.console.poll(0.2)
    check(z["uptime_ms"] - d_first["uptime_ms"] >= (watch - 1.5) * 1000,
          f"{what}the destination's guest ran {z['uptime_ms'] - d_first['uptime_ms']} ms")
    check(dctl.execute("quit") == {"return": {}}, "quit on the destination")
    rc = finish(dst)
    check(rc == 0, f"{what}destination exit status {rc} after quit")
    return s_last, d_first, z


def live_migration(cmdline, cpus=1, kind="unix", live=True, memory=1024):
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(cmdline, cpus=cpus, memory=memory)
        dst, uri = destination(tmp, kind)
        pump([src, dst], 2.0)
        t0 = start_migration(src, uri, **{"debug-ram-hash": True}, **({} if live else
                                                                       {"live": False}))
        q = wait_migration(src, [dst], 120)
        check_completed(q, live)
        f = q["ferry"]
        check("ram-hash" in f and f["ram-hash"] == f.get("destination-ram-hash"),
              f"RAM hashes differ: {f.get('ram-hash')} here, {f.get('destination-ram-hash')} "
              f"there")
        dh = [l for _, l in dst.err.lines if "ram-hash=" in l]
        check(dh and f"ram-hash={f['ram-hash']}" in dh[0], f"destination logged {dh}")
        ev = events(src)
        mig = [e["data"]["status"] for e in ev if e["event"] == "MIGRATION"]
        passes = [e["data"]["pass"] for e in ev if e["event"] == "MIGRATION_PASS"]
        want = ["setup", "active", "device", "completed"]
        check(mig == want, f"MIGRATION events {mig}, expected {want}")
        if live:
            check(passes and passes == list(range(1, len(passes) + 1)),
                  f"MIGRATION_PASS events {passes}")
        s_last, d_first, z = after_handover(src, dst, q, t0)
        parts = f["downtime-parts"]
        print(f"  {cmdline or 'idle'}, {cpus} vCPU, {kind}: {q['ram']['transferred'] / MB:.0f} MB "
              f"in {q['total-time']} ms, {f['pass']} passes ({f['rung']}), downtime "
              f"{q['downtime']} ms (RAM hash included; load {parts['destination-load-us']} us, "
              f"start {parts['start-us']} us); beat {s_last['beat']} -> {d_first['beat']}, "
              f"uptime +{d_first['uptime_ms'] - s_last['uptime_ms']} ms; then "
              f"{z['beat'] - d_first['beat']} beats, corrupt=0, ticks {z['ticks']}")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_live_idle():
    live_migration("")


def test_live_256_at_50():
    live_migration(DIRTY_50)


def test_live_256_at_500():
    live_migration(DIRTY_500)


def test_live_two_vcpus_tcp():
    live_migration(DIRTY_50, cpus=2, kind="tcp")


def test_non_live():
    live_migration(DIRTY_50, live=False)


# ---- parameters and the ladder -------------------------------------------

DEFAULTS = {"downtime-limit": 10, "max-bandwidth": 0, "auto-converge": True,
            "convergence-timeout": 0, "convergence-timeout-action": "suspend",
            "cpu-throttle-initial": 20, "cpu-throttle-increment": 10, "max-cpu-throttle": 99}


def test_parameters():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(DIRTY_500, memory=1024)
        p = src.ctl.execute("query-migrate-parameters")["return"]
        check(p == DEFAULTS, f"defaults: {p}")
        check(src.ctl.execute("query-migrate") == {"return": {}}, "query-migrate before any")
        for bad in ({"downtime-limit": -1}, {"downtime-limit": "5"}, {"downtime-limit": 1.5},
                    {"downtime-limit": 2000001}, {"max-bandwidth": -1},
                    {"auto-converge": "yes"}, {"auto-converge": 1},
                    {"convergence-timeout": -3}, {"convergence-timeout": 86400 * 365 + 1},
                    {"convergence-timeout-action": "explode"},
                    {"convergence-timeout-action": 1}, {"bogus": 1},
                    {"downtime-limit": 50, "auto-converge": "no"}):
            r = src.ctl.execute("migrate-set-parameters", bad)
            check("error" in r and r["error"]["desc"], f"migrate-set-parameters {bad}: {r}")
        p = src.ctl.execute("query-migrate-parameters")["return"]
        check(p == DEFAULTS, f"a refused migrate-set-parameters changed something: {p}")
        set_params(src, downtime_limit=2000000, max_bandwidth=1, auto_converge=False,
                   convergence_timeout=7, convergence_timeout_action="abort")
        p = src.ctl.execute("query-migrate-parameters")["return"]
        check(p == dict(DEFAULTS, **{"downtime-limit": 2000000, "max-bandwidth": 1,
                                     "auto-converge": False, "convergence-timeout": 7,
                                     "convergence-timeout-action": "abort"}), f"set: {p}")
        for bad in ({}, {"uri": "ftp://x"}, {"uri": "tcp:127.0.0.1:0"}, {"uri": "unix:"},
                    {"uri": 5}, {"uri": "unix:/x", "live": "yes"}, {"uri": "unix:/x", "x": 1}):
            r = src.ctl.execute("migrate", bad)
            check("error" in r, f"migrate {bad}: {r}")
        check(status(src) == "running", "a refused migrate disturbed the VM")

        # The limit changed mid-migration: 256 MiB rewritten at 500 MiB/s
        # over a 100 MB/s link can never fit 1 ms. A running migration takes
        # parameters "from its next round" (sampled as a round starts, used
        # for the decision at its end): raised during the bulk copy, the
        # decision after pass 1 still sees 1 ms (continue), the one after
        # pass 2 sees 10 s and switches over.
        # emulated, the stream carries only tens of MB/s: a lower limit
        # (still below the guest's 16 MiB/s) so that it is what binds
        bw = scaled(100, 10) * MB
        set_params(src, downtime_limit=1, max_bandwidth=bw, auto_converge=False,
                   convergence_timeout=0, convergence_timeout_action="suspend")
        dst, uri = destination(tmp)
        pump([src, dst], 1.0)
        t0 = start_migration(src, uri)
        wait_bulk(src, dst, 1.0)
        set_params(src, downtime_limit=10000)
        t_set = time.monotonic()
        q = query(src)
        while q["status"] in ("setup", "active") and q["ferry"]["pass"] < 2:
            check(time.monotonic() < t0 + 60 * TIMEOUT_SCALE, f"pass 1 never ended: {q}")
            pump([src, dst], 0.05)
            q = query(src)
        t_round = time.monotonic() - t0
        check(q["status"] == "active" and q["ferry"]["expected-downtime-us"] > 1000,
              f"switched over after pass 1 with a 1 ms limit? {q}; passes: {pass_log(src)}")
        q = wait_migration(src, [dst], 120)
        t_done = time.monotonic() - t_set
        check_completed(q)
        check(q["ferry"]["rung"] == "converged" and q["ferry"]["pass"] == 2,
              f"rung {q['ferry']['rung']} after pass {q['ferry']['pass']}, expected converged "
              f"after pass 2 (the first decision with the new limit); passes: {pass_log(src)}")
        check(t_done <= 3 * t_round + 10, f"completed {t_done:.1f} s after the limit was "
              f"raised (a round takes {t_round:.1f} s)")
        rate = q["ram"]["transferred"] / (q["total-time"] / 1000)
        check(rate <= 1.5 * bw, f"max-bandwidth {bw / MB:.0f} MB/s, sent at {rate / MB:.0f} MB/s")
        after_handover(src, dst, q, t0, watch=2.0)
        print(f"  downtime-limit 1 -> 10000 ms 1 s into pass 1 (of {t_round:.1f} s): completed "
              f"{t_done:.1f} s later, {q['ferry']['pass']} passes, rung converged, downtime "
              f"{q['downtime']} ms at {rate / MB:.0f} MB/s (max-bandwidth {bw / MB:.0f})")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


# 256 MiB rewritten every 0.5 s can never fit; emulated, 64 MiB rewritten
# every 4 s (DIRTY_500) cannot fit 8 MB/s either, and a pass takes seconds,
# not minutes, at that rate
LADDER_BW = scaled(50, 8) * MB


def test_ladder():
    """convergence-timeout with "abort": fails, the source runs on; then,
    from the same source, auto-converge off: the rounds stall and the
    default final action (suspend) finishes the migration."""
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(DIRTY_500, memory=1024)
        set_params(src, max_bandwidth=LADDER_BW, convergence_timeout=2,
                   convergence_timeout_action="abort")
        dst, uri = destination(tmp)
        pump([src, dst], 1.0)
        t0 = start_migration(src, uri)
        q = wait_migration(src, [dst], 120)
        check(q["status"] == "failed", f"abort: status {q['status']}")
        err = q.get("error-desc", "")
        check("did not converge" in err and "abort" in err, f"abort: error-desc {err!r}")
        check(q["ferry"]["rung"] == "convergence-timeout", f"abort: rung {q['ferry']['rung']}")
        g = source_runs_on(src, t0, "abort")
        rc = finish(dst)
        check(rc not in (0, None), f"abort: destination exit status {rc}")
        no_guest_ran(dst, "abort")
        print(f"  convergence-timeout 2 s, abort: failed after {q['total-time']} ms "
              f"({err[:70]}...); source ran on (longest beat gap {g:.2f} s)")
        dst.kill()

        set_params(src, auto_converge=False, convergence_timeout=0,
                   convergence_timeout_action="suspend")
        dst, uri = destination(tmp)
        t0 = start_migration(src, uri)
        q = wait_migration(src, [dst], 200, every=0.1)
        check_completed(q)
        check(q["ferry"]["rung"] == "stalled", f"stalled: rung {q['ferry']['rung']}; passes: "
              f"{pass_log(src)}")
        after_handover(src, dst, q, t0, watch=2.0)
        print(f"  auto-converge off: rung stalled after {q['ferry']['pass']} passes, "
              f"{q['total-time']} ms, downtime {q['downtime']} ms (the rest sent non-live)")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


# ---- faults --------------------------------------------------------------

def failed_before_go(src, dst, q, t0, what, dst_rc=None):
    check(q["status"] == "failed", f"{what}: status {q['status']}")
    check(q.get("error-desc"), f"{what}: no error-desc: {q}")
    check("may be running" not in q["error-desc"],
          f"{what}: the source thinks the hand-over began: {q['error-desc']}")
    g = source_runs_on(src, t0, what)
    rc = finish(dst)
    check(rc != 0 if dst_rc is None else rc == dst_rc, f"{what}: destination exit status {rc}")
    no_guest_ran(dst, what)
    print(f"  {what}: failed ({q['error-desc'][:90]}); source ran on, longest beat gap "
          f"{g:.2f} s")


def test_destination_killed_during_bulk_copy():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(DIRTY_64)
        pump([src], 1.5)
        set_params(src, max_bandwidth=20 * MB)
        dst, uri = destination(tmp)
        t0 = start_migration(src, uri)
        q = wait_bulk(src, dst, 1.0)
        check(q["status"] == "active", f"not in the bulk copy: {q}")
        dst.p.kill()
        q = wait_migration(src, [dst], 30)
        failed_before_go(src, dst, q, t0, "killed during the bulk copy")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_destination_killed_in_device_phase():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        # DIRTY_64: at 64@50 inside the test host the source's heartbeat
        # paused 8.4 s here, whatever the migration did
        src = source(DIRTY_64, env={"FERRY_TEST_DEVICE_DELAY_MS": "1500"})
        pump([src], 1.5)
        dst, uri = destination(tmp)
        t0 = start_migration(src, uri)
        q = wait_migration(src, [dst], 60, until=FINAL + ("device",), every=0.02)
        check(q["status"] == "device", f"status {q['status']}")
        pump([src, dst], 0.5)
        check(query(src)["status"] == "device", "no longer in device after 0.5 s")
        dst.p.kill()
        q = wait_migration(src, [dst], 30)
        failed_before_go(src, dst, q, t0, "killed in the device phase")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_destination_killed_after_ready():
    """The destination dies after READY, before the source sends GO (the
    source waits FERRY_TEST_GO_DELAY_MS there): GO never reached it, so the
    source must resume. Over unix: and tcp: (a dead peer shows differently:
    EPIPE on the write, or a write that succeeds and a reset after)."""
    problems = []
    for kind in ("unix", "tcp"):
        tmp = tempfile.mkdtemp(prefix="ferry-mig-")
        src = dst = None
        try:
            src = source(DIRTY_64, env={"FERRY_TEST_GO_DELAY_MS": "1500"})
            pump([src], 1.5)
            dst, uri = destination(tmp, kind)
            t0 = start_migration(src, uri)
            # the source logs the hook once READY arrived
            deadline = time.monotonic() + 60
            while not any("FERRY_TEST_GO_DELAY_MS" in l for _, l in src.err.lines):
                check(time.monotonic() < deadline, "the source never reached the GO delay")
                q = query(src)
                check(q["status"] not in FINAL, f"ended before READY: {q}")
                pump([src, dst], 0.02)
            t_kill = time.monotonic()
            dst.p.kill()
            q = wait_migration(src, [dst], 30)
            check(time.monotonic() - t_kill < 5, "the source took long to notice")
            err = q.get("error-desc", "")
            if "may be running" in err or status(src) != "running":
                # Known bug (see the report): the source commits to GO
                # (go_sent = true) without looking whether the destination
                # is still there, so a death before GO counts as after.
                problems.append(f"{kind}: destination killed before GO, yet the source "
                                f"is {status(src)!r} and says {err!r}")
                print(f"  {kind}: BUG: source left {status(src)} after a pre-GO death: {err}")
                continue
            failed_before_go(src, dst, q, t0, f"{kind}: killed after READY, before GO")
        finally:
            kill_all([src, dst])
            shutil.rmtree(tmp, ignore_errors=True)
    check(not problems, "; ".join(problems) + " -- migrate.c finish(): after the READY "
          "(and the GO delay) it sets go_sent before sending GO and never checks that "
          "the connection is still open; a GO that could not be delivered (EPIPE) or a "
          "destination that had already closed (EOF/RST pending) is taken for an "
          "unsettled hand-over and the source stays paused")


def test_destination_dies_after_go():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(DIRTY_64)
        pump([src], 1.5)
        dst, uri = destination(tmp, env={"FERRY_TEST_DIE_AFTER_GO": "1"})
        start_migration(src, uri)
        q = wait_migration(src, [dst], 60)
        rc = finish(dst)
        check(rc == 3, f"destination exit status {rc} (the hook exits 3)")
        no_guest_ran(dst, "died after GO")
        check(q["status"] == "failed", f"status {q['status']}")
        err = q.get("error-desc", "")
        check("may be running" in err, f"error-desc does not warn: {err!r}")
        st = status(src)
        check(st == "paused", f"source status {st!r}: it must stay paused")
        pump([src], 0.3)
        n = len(src.console.beats())
        pump([src], 1.5)
        check(len(src.console.beats()) == n, "the source's guest ran on after GO")
        for cmd, args in (("cont", None), ("cont", {"force": False}),
                          ("migrate", {"uri": uri})):
            r = src.ctl.execute(cmd, args)
            check("error" in r, f"{cmd} {args} accepted after an unsettled hand-over: {r}")
        check(src.ctl.execute("cont", {"force": "yes"}).get("error"), "cont force: 'yes'")
        check(status(src) == "paused", "still paused")
        start = len(src.console.lines)  # before cont: the console is read as it comes
        r = src.ctl.execute("cont", {"force": True})
        check(r == {"return": {}}, f"cont force: {r}")
        i = src.console.wait_for(r"ferry-agent beat=", 5, start)
        b = parse_beat(src.console.lines[i][1])
        check(status(src) == "running", "not running after cont force")
        pump([src], 1.0)
        beats = src.console.beats()
        nums = [x["beat"] for x in beats]
        check(nums == list(range(1, len(nums) + 1)), "the source's beats do not go on by one")
        check(beats[-1]["corrupt"] == 0, "corrupt after cont force")
        print(f"  destination exited 3 after GO; source failed ({err[:60]}...), stayed paused "
              f"until cont force, then beat {b['beat']} on")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_cancel_during_bulk_copy():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(DIRTY_64)
        pump([src], 1.5)
        set_params(src, max_bandwidth=20 * MB)
        dst, uri = destination(tmp)
        t0 = start_migration(src, uri)
        q = wait_bulk(src, dst, 1.0)
        check(q["status"] == "active", f"not in the bulk copy: {q}")
        r = src.ctl.execute("system_powerdown")
        check("a migration is running" in r.get("error", {}).get("desc", ""),
              f"system_powerdown during a migration: {r}")
        r = src.ctl.execute("migrate_cancel")
        check(r == {"return": {}}, f"migrate_cancel: {r}")
        q = wait_migration(src, [dst], 30)
        g = source_runs_on(src, t0, "cancel")
        rc = finish(dst)
        check(rc != 0, f"destination exit status {rc} after cancel")
        no_guest_ran(dst, "cancel")
        mig = [e["data"]["status"] for e in events(src) if e["event"] == "MIGRATION"]
        check(src.ctl.execute("migrate_cancel") == {"return": {}}, "a second migrate_cancel")
        # Known bug (see the report): a cancel that lands while the thread
        # sleeps in the bandwidth limiter or writes is reported "failed".
        check(q["status"] == "cancelled" and mig[-2:] == ["cancelling", "cancelled"],
              f"migrate_cancel ended as status {q['status']!r} (error-desc "
              f"{q.get('error-desc')!r}, events {mig}), not 'cancelled': migrate.c's "
              f"peer_error() records \"cancelled\" but the write error (-EPIPE) stays the "
              f"return value, so migration_thread() takes it for a failure")
        print(f"  cancelled 1 s into the bulk copy; source ran on (gap "
              f"{g:.2f} s); destination exited {rc}: {error_lines(dst)[:1]}")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


class CutProxy(threading.Thread):
    """tcp:127.0.0.1:PORT -> the destination's unix socket: forwards the
    first `limit` bytes source -> destination (everything back), then closes
    both sides."""

    def __init__(self, dst_path, limit):
        super().__init__(daemon=True)
        self.dst_path, self.limit = dst_path, limit
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1)
        self.port = self.ls.getsockname()[1]
        self.forwarded = 0
        self.error = None

    def run(self):
        try:
            self.ls.settimeout(30)
            a, _ = self.ls.accept()
            b = socket.socket(socket.AF_UNIX)
            b.connect(self.dst_path)
            try:
                while self.forwarded < self.limit:
                    r, _, _ = select.select([a, b], [], [], 30)
                    if not r:
                        break
                    if a in r:
                        d = a.recv(min(65536, self.limit - self.forwarded))
                        if not d:
                            break
                        b.sendall(d)
                        self.forwarded += len(d)
                    if b in r:
                        d = b.recv(65536)
                        if not d:
                            break
                        a.sendall(d)
            finally:
                a.close()
                b.close()
        except OSError as e:
            self.error = e
        finally:
            self.ls.close()


def test_connection_cut():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    try:
        src = source(DIRTY_64)
        pump([src], 2.0)
        seen = []
        for cut in (0, 10, 16, 40, 100, 5000, 1 << 20, 20 << 20):
            dst, uri = destination(tmp)
            proxy = CutProxy(uri[5:], cut)
            proxy.start()
            t0 = start_migration(src, f"tcp:127.0.0.1:{proxy.port}")
            q = wait_migration(src, [dst], 60)
            proxy.join(10)
            check(proxy.error is None, f"cut at {cut}: proxy: {proxy.error}")
            check(proxy.forwarded == cut, f"cut at {cut}: forwarded {proxy.forwarded}")
            failed_before_go(src, dst, q, t0, f"cut at {cut} bytes")
            errs = error_lines(dst)
            check(len(errs) == 1, f"cut at {cut}: destination errors {errs}")
            seen.append((cut, errs[0].split(": ", 2)[-1][:80]))
            dst.kill()
            dst = None
        nums = [b["beat"] for b in src.console.beats()]
        check(nums == list(range(1, len(nums) + 1)), "the source's beats skipped a number")
        for cut, e in seen:
            print(f"    {cut:>9}: destination said: {e}")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


# ---- hand-made streams -----------------------------------------------------

HEADER = b"FERRYVM\n" + struct.pack("<II", 1, 0)
REC_VM_INFO, REC_HELLO, REC_WELCOME, REC_ERROR = 1, 16, 17, 18


def hello(token=b"", version=1, flags=0):
    return record(REC_HELLO, struct.pack("<III", version, flags, len(token)) + token)


def read_records(s, timeout=10):
    """Everything the peer sends until it closes: (types, error texts)."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    types, errors = [], []
    if data[:16] != HEADER:
        return types, errors
    for _, typ, payload in stream_records(data):
        types.append(typ)
        if typ == REC_ERROR and len(payload) >= 4:
            n = struct.unpack_from("<I", payload)[0]
            errors.append(payload[4:4 + n].decode(errors="replace"))
    return types, errors


def send_stream(path, data, close_write=True):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    try:
        s.sendall(data)
    except OSError:
        pass
    if close_write:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    return s


def vm_info_payload(ram=256 * MIB, ncpus=1):
    def s(b):
        return struct.pack("<I", len(b)) + b
    return (struct.pack("<QIII", ram, 4096, ncpus, 1) + struct.pack("<QQ", 0, ram) +
            s(b"ferry") + s(b"") + s(b"") + s(b"stdio"))


def test_garbage_streams():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    saved = os.path.join(tmp, "vm.save")
    vm = dst = None
    try:
        vm = source("ferry.dirty=8@10", memory=64)
        r = vm.ctl.execute("save", {"path": saved})
        check("return" in r, f"save: {r}")
        vm.kill()
        vm = None
        rnd = random.Random(7)
        garbage = bytes(rnd.randrange(256) for _ in range(4096))
        info = vm_info_payload()
        cases = [
            ("random bytes", garbage, None),
            ("a header, then garbage", HEADER + garbage, None),
            ("a saved file", open(saved, "rb").read(), "HELLO"),
            ("nothing at all", b"", None),
            ("a short header", HEADER[:11], None),
            ("a HELLO with a bad CRC", HEADER + hello()[:-8] + b"\1\2\3\4\0\0\0\0", None),
            ("protocol version 99", HEADER + hello(version=99), "version"),
            ("HELLO, then a truncated VM_INFO", HEADER + hello() + record(REC_VM_INFO, info)[:40],
             "truncated"),
            ("HELLO, then a VM_INFO of 12345 bytes of RAM",
             HEADER + hello() + record(REC_VM_INFO, vm_info_payload(ram=12345)), None),
            ("HELLO, then a VM_INFO with a bad CRC",
             HEADER + hello() + record(REC_VM_INFO, info)[:-8] + b"\0" * 8, "CRC"),
            ("HELLO, then END", HEADER + hello() + record(5, b""), "VM_INFO"),
            ("HELLO, VM_INFO, then garbage",
             HEADER + hello() + record(REC_VM_INFO, info) + garbage, None),
        ]
        said = []
        for what, data, expect in cases:
            dst, uri = destination(tmp)
            s = send_stream(uri[5:], data)
            types, refusals = read_records(s)
            s.close()
            rc = finish(dst)
            errs = error_lines(dst)
            check(rc == 1, f"{what}: destination exit status {rc}")
            check(len(errs) == 1, f"{what}: {len(errs)} error lines: {errs}")
            if expect:
                check(expect in errs[0], f"{what}: error {errs[0]!r} does not say {expect!r}")
            no_guest_ran(dst, what)
            check(dst.console.transcript() == "", f"{what}: output on the console")
            said.append((what, errs[0].split("error: ", 1)[-1], refusals))
            dst.kill()
            dst = None
        for what, e, refusals in said:
            print(f"    {what}: {e[:110]}" + (f" [ERROR sent: {refusals[0][:40]}]"
                                              if refusals else ""))
    finally:
        kill_all([vm, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_incoming_token():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    src = dst = None
    token = "s3cret-token"
    try:
        # emulated, the guest cannot write 50 MiB/s: its heartbeat would come
        # seconds apart and source_runs_on could not see it go on
        src = source(DIRTY_64)
        dst, uri = destination(tmp, extra=["--incoming-token", token])
        path = uri[5:]
        n_drop = 0

        def dropped(what):
            nonlocal n_drop
            n_drop += 1
            deadline = time.monotonic() + 15
            while sum("dropped a connection" in l for _, l in dst.err.lines) < n_drop:
                check(dst.p.poll() is None, f"{what}: the destination exited: "
                      f"{dst.err.transcript()!r}")
                check(time.monotonic() < deadline, f"{what}: not dropped")
                pump([src, dst], 0.05)
            check(dst.p.poll() is None, f"{what}: the destination exited")

        for what, data in (("nothing, then close", b""),
                           ("a wrong token", HEADER + hello(b"s3cret-tokem")),
                           ("a longer token", HEADER + hello(token.encode() + b"x")),
                           ("no token", HEADER + hello()),
                           ("random bytes", bytes(range(256)) * 4)):
            s = send_stream(path, data)
            types, _ = read_records(s)
            s.close()
            check(REC_WELCOME not in types, f"{what}: the destination answered WELCOME")
            dropped(what)
        # a ferry source with the wrong token
        t0 = start_migration(src, uri, token="wrong")
        q = wait_migration(src, [dst], 30)
        check(q["status"] == "failed", f"wrong token: status {q['status']}")
        dropped("a source with the wrong token")
        source_runs_on(src, t0, "wrong token")
        no_guest_ran(dst, "wrong token")
        # the right one
        t0 = start_migration(src, uri, token=token, **{"debug-ram-hash": True})
        q = wait_migration(src, [dst], 60)
        check_completed(q)
        check(q["ferry"]["ram-hash"] == q["ferry"]["destination-ram-hash"], "RAM hashes")
        after_handover(src, dst, q, t0, watch=2.0)
        print(f"  {n_drop} connections dropped (nothing, wrong/longer/no token, junk, a "
              f"source with a wrong token); then the right token migrated: error-desc was "
              f"{q.get('error-desc', '')!r}")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


# ---- ping-pong -------------------------------------------------------------

def test_calc_dirty_rate():
    """calc-dirty-rate / query-dirty-rate (QMP's names): a guest dirtying
    20 MiB/s over a larger working set measures about that; the guest runs
    on; a measurement and a migration exclude each other."""
    # emulated, the guest cannot keep up 20 MiB/s (the rate measured is
    # what it manages, not what it was asked): 8 MiB/s there (as DIRTY_50),
    # same +-25% (4 MiB/s measured as 3, an integer, right on the edge)
    rate = scaled(20, 8)
    src = source(f"ferry.dirty=64@{rate}", memory=256)
    try:
        ctl = src.ctl
        r = ctl.execute("query-dirty-rate")["return"]
        check(r["status"] == "unstarted", f"before any measurement: {r}")
        check("error" in ctl.execute("calc-dirty-rate", {"calc-time": 0}), "calc-time 0 accepted")
        check("error" in ctl.execute("calc-dirty-rate", {}), "no calc-time accepted")
        check(ctl.execute("calc-dirty-rate", {"calc-time": 2}) == {"return": {}}, "refused")
        check(ctl.execute("query-dirty-rate")["return"]["status"] == "measuring", "not measuring")
        check("error" in ctl.execute("migrate", {"uri": "unix:/nonexistent"}),
              "a migration started during a measurement")
        # 2 s of measurement and its bitmap passes: emulated, these take
        # several times longer on the wall clock
        settle = scaled(2.5, 8.0)
        pump([src], settle)
        r = ctl.execute("query-dirty-rate")["return"]
        check(r["status"] == "measured", f"after {settle} s: {r}")
        check(0.75 * rate <= r["dirty-rate"] <= 1.25 * rate,
              f"measured {r['dirty-rate']} MB/s for {rate} MiB/s")
        check(r["calc-time"] == 2 and r["start-time"] > 0, f"fields: {r}")
        b = src.console.beats()
        check(b[-1]["corrupt"] == 0 and status(src) == "running", "the guest suffered")
        print(f"  measured {r['dirty-rate']} MB/s ({r['dirty-pages-rate']} pages/s) for a guest "
              f"writing {rate} MiB/s", flush=True)
    finally:
        kill_all([src])


def test_ping_pong():
    tmp = tempfile.mkdtemp(prefix="ferry-mig-")
    cur = nxt = None
    done = []
    text = ""
    try:
        cur = source(DIRTY_64, cpus=2, memory=256)
        pump([cur], 1.0)
        downtimes = []
        for n in range(PINGPONG):
            nxt, uri = destination(tmp, "tcp" if n % 2 else "unix")
            start_migration(cur, uri, **{"debug-ram-hash": n % 5 == 0})
            q = wait_migration(cur, [nxt], 120)
            check_completed(q)
            if n % 5 == 0:
                check(q["ferry"]["ram-hash"] == q["ferry"]["destination-ram-hash"],
                      f"round {n}: RAM hashes differ")
            downtimes.append(q["downtime"])
            nxt.console.wait_for(r"ferry-agent beat=", 20)
            nxt.connect(20)
            check(status(cur) == "postmigrate", f"round {n}: source {status(cur)}")
            cur.ctl.execute("quit")
            check(finish(cur) == 0, f"round {n}: source exit status")
            text += cur.console.transcript()
            cur.kill()
            cur, nxt = nxt, None
            pump([cur], 0.5)
            b = cur.console.beats()
            check(b and b[-1]["corrupt"] == 0, f"round {n}: corrupt on the destination")
        pump([cur], 2.0)
        cur.ctl.execute("quit")
        check(finish(cur) == 0, "last quit")
        text += complete_lines(cur)
        lines = [l for l in text.split("\n") if "beat=" in l]
        beats = [parse_beat(l) for l in lines]
        check(all(beats) and all(BEAT_RE.fullmatch(l) for l in lines),
              "a heartbeat line was cut or garbled across the hand-overs")
        nums = [b["beat"] for b in beats]
        check(nums == list(range(1, len(nums) + 1)),
              f"heartbeats across {PINGPONG + 1} processes are not 1, 2, 3, ...")
        check(all(b["corrupt"] == 0 for b in beats) and not BAD_RE.search(text),
              f"corruption: {[l for l in text.splitlines() if BAD_RE.search(l)][:3]}")
        ups = [b["uptime_ms"] for b in beats]
        check(all(y >= x for x, y in zip(ups, ups[1:])), "uptime went back")
        print(f"  {PINGPONG} migrations (unix/tcp): beats 1..{nums[-1]} in order across "
              f"{PINGPONG + 1} processes, corrupt=0; downtime ms min/median/max "
              f"{min(downtimes)}/{sorted(downtimes)[len(downtimes) // 2]}/{max(downtimes)}")
    finally:
        kill_all([cur, nxt])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    require_kvm()
    tests = [test_live_idle, test_live_256_at_50, test_live_256_at_500,
               test_live_two_vcpus_tcp, test_non_live, test_parameters, test_ladder,
               test_destination_killed_during_bulk_copy, test_destination_killed_in_device_phase,
               test_destination_killed_after_ready, test_destination_dies_after_go,
               test_cancel_during_bulk_copy, test_connection_cut, test_garbage_streams,
               test_incoming_token, test_calc_dirty_rate, test_ping_pong]
    run_tests(tests)
