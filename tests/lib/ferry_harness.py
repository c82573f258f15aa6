"""The one harness for everything that drives ferry from Python: the
end-to-end tests (tests/e2e/ferrytest.py builds on it), the benchmarks
(bench/) and the demo (scripts/demo.py).

- the test guest's console protocol: its heartbeat line (parse_beat), its
  ready line, and the lines that must never appear (BAD_RE);
- Lines: every line of a pipe, each with the monotonic time it arrived,
  read by a thread of its own, so that a writer never blocks on a full pipe
  however long its reader looks elsewhere (a ferry-vmm whose serial output
  stalls drops console bytes after a while: docs/architecture.md);
- Qmp: a client of a QMP socket, QEMU's or ferry-vmm's control socket
  (docs/control-protocol.md): commands, replies and the events between;
- sh (a command's output, its exit status checked) and free_port.

Waits raise HarnessError with what was awaited and what was seen instead."""

import json
import os
import re
import socket
import subprocess
import threading
import time

# ferry-agent beat=N uptime_ms=T verified=V corrupt=C [written=W]
# [ticks=A/B...] [device figures: disk_written=, net_lost=, ...]
BEAT_RE = re.compile(r"ferry-agent beat=(\d+) uptime_ms=(\d+) verified=(\d+) corrupt=(\d+)"
                     r"(?: written=(\d+))?(?: ticks=([\d/]+))?"
                     r"((?: [a-z_]+=\d+)*)")
READY_RE = re.compile(r"ferry-agent ready cpus=(\d+) mem_mib=(\d+)")
# What the guest prints when something is wrong with it.
BAD_RE = re.compile(r"ferry-agent (CORRUPT|DISK-CORRUPT|PANIC|panic|error)")


class HarnessError(Exception):
    pass


def parse_beat(line):
    """The figures of a heartbeat line as a dict (beat, uptime_ms, verified,
    corrupt, written, ticks: a list, and every device figure by its name),
    or None for any other line."""
    m = BEAT_RE.search(line)
    if not m:
        return None
    b = {"beat": int(m.group(1)), "uptime_ms": int(m.group(2)),
         "verified": int(m.group(3)), "corrupt": int(m.group(4)),
         "written": int(m.group(5)) if m.group(5) else 0,
         "ticks": [int(t) for t in m.group(6).split("/")] if m.group(6) else []}
    for kv in m.group(7).split():
        k, v = kv.split("=")
        b[k] = int(v)
    return b


class Lines:
    """Every line of a pipe (a file object), each with the monotonic time its
    newline arrived, read by a daemon thread. `lines` is a list of
    (time, text) that only grows; `buf` the bytes of a line not ended yet;
    `eof` is set once the writer closed its end. With follow, f is a file
    that others append to, read as it grows (tail -f) until stop().
    on_line(time, text), if given, is called (in the thread) for each
    line."""

    def __init__(self, f, name="process", follow=False, on_line=None):
        self.f, self.name, self.follow, self.on_line = f, name, follow, on_line
        self.lines = []
        self.buf = b""
        self.eof = False
        self.stopped = False
        self.cv = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self, fd):
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return b""
            if data or not self.follow or self.stopped:
                return data
            time.sleep(0.05)

    def _run(self):
        fd = self.f.fileno()
        buf = b""
        while True:
            data = self._read(fd)
            now = time.monotonic()
            new = []
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                new.append((now, line.decode(errors="replace").rstrip("\r")))
            for t, line in new if self.on_line else ():
                self.on_line(t, line)
            with self.cv:
                self.lines.extend(new)
                self.buf = buf
                self.eof = not data
                self.cv.notify_all()
            if not data:
                return

    def stop(self):
        """Ends following a file: what is in it by now is still read."""
        self.stopped = True
        self.thread.join()

    def poll(self, timeout):
        """Waits up to `timeout` seconds for anything new (or the end).
        Once at the end nothing new can come: it then sleeps a little
        (up to 50 ms), so that a caller polling until something else
        happens (a process's exit) does not spin."""
        with self.cv:
            n, partial = len(self.lines), self.buf
            if not self.eof:
                self.cv.wait_for(lambda: len(self.lines) != n or self.buf != partial or self.eof,
                                 timeout)
                return
        time.sleep(min(timeout, 0.05))

    def wait_for(self, pattern, timeout, start=0, what=None):
        """Index of the first line from `start` that matches pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        i = start
        with self.cv:
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i][1]):
                        return i
                    i += 1
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    why = "its output ended" if self.eof else f"nothing within {timeout:g} s"
                    raise HarnessError(f"no line matching {pattern!r} from {what or self.name}: "
                                       f"{why}; last lines: {self.tail(5)}")
                self.cv.wait(min(left, 0.5))

    def wait_eof(self, timeout):
        """True once the writer has closed its end, False after `timeout`."""
        with self.cv:
            return self.cv.wait_for(lambda: self.eof, timeout)

    def collect(self, seconds):
        """Lets `seconds` pass (lines keep arriving meanwhile), or until the end."""
        with self.cv:
            self.cv.wait_for(lambda: self.eof, seconds)

    def snapshot(self):
        with self.cv:
            return list(self.lines)

    def tail(self, n=12):
        """The last n lines, and a line not ended yet, marked so."""
        with self.cv:
            out = [l for _, l in self.lines[-n:]]
            if self.buf:
                out.append(self.buf.decode(errors="replace") + "  [no newline]")
            return out

    def partial(self):
        """The last line, not ended yet, as its complete lines are kept: a
        tty's "\r" before its "\n" left off (a guest may stop between the
        two, and another process end the line)."""
        with self.cv:
            return self.buf.decode(errors="replace").rstrip("\r")

    def transcript(self):
        """Everything read so far, as the bytes arrived (a last partial line
        included)."""
        with self.cv:
            return "".join(l + "\n" for _, l in self.lines) + self.partial()

    def beats(self, start=0):
        """The heartbeats from line `start` on, parsed."""
        return [b for b in (parse_beat(l) for _, l in self.snapshot()[start:]) if b]


class Qmp:
    """A client of a QMP socket: QEMU's, or ferry-vmm's control socket.
    `execute` returns the reply as it came ({"return": ...} or
    {"error": ...}); `cmd` returns what a command returned and raises
    HarnessError for an error reply. Events that arrive meanwhile are kept
    in `events`, as (monotonic time, event). Every timeout a method is given
    is multiplied by `scale` (a slower machine's limits for a hang)."""

    def __init__(self, path, name="process", owner=None, negotiate=False, connect_timeout=0,
                 alive=None, scale=1):
        """Connects to the socket at path, retrying for up to connect_timeout
        seconds while alive() (if given) holds; reads the greeting (kept in
        `greeting`) and, with negotiate, leaves capabilities negotiation.
        owner, if given, has fate(): what became of the process, said when
        the socket closes."""
        self.name, self.owner, self.scale = name, owner, scale
        connect_timeout *= scale
        deadline = time.monotonic() + connect_timeout
        while True:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.s.connect(path)
                break
            except OSError as e:
                self.s.close()
                # Only a socket not there yet or not listening yet is
                # worth another try; any other error is one.
                if not isinstance(e, (FileNotFoundError, ConnectionRefusedError)):
                    raise
                if alive is not None and not alive():
                    raise HarnessError(f"{name} exited before its control socket {path} "
                                       f"could be reached") from None
                if time.monotonic() >= deadline:
                    if connect_timeout == 0:
                        raise
                    raise HarnessError(f"cannot connect to {name}'s control socket {path} "
                                       f"within {connect_timeout:g} s: {e}") from None
                time.sleep(0.01)
        self.f = self.s.makefile("rb")
        self.events = []
        # a limit for a hang, scaled like every other; a socket that never
        # greets is closed, not left open behind the error
        greeting_timeout = 30 * scale
        try:
            self.greeting = self.recv(greeting_timeout)
        except socket.timeout:
            self.close()
            raise HarnessError(f"{name}: no QMP greeting within {greeting_timeout:g} s "
                               f"on {path}") from None
        except BaseException:
            self.close()
            raise
        if "QMP" not in self.greeting:
            self.close()
            raise HarnessError(f"{name}: unexpected greeting {self.greeting}")
        if negotiate:
            self.cmd("qmp_capabilities")

    def closed(self, how):
        fate = f": {self.owner.fate()}" if self.owner is not None else ""
        return HarnessError(f"{self.name}: control socket {how}{fate}")

    def recv(self, timeout):
        """The next message; socket.timeout after `timeout` seconds."""
        self.s.settimeout(timeout)
        try:
            line = self.f.readline()
        except (ConnectionResetError, BrokenPipeError) as e:
            raise self.closed(f"reset ({e.strerror})") from None
        if not line:
            raise self.closed("closed")
        return json.loads(line)

    def send_raw(self, text):
        try:
            self.s.sendall(text.encode() + b"\n")
        except (ConnectionResetError, BrokenPipeError) as e:
            raise self.closed(f"reset ({e.strerror})") from None

    def reply(self, timeout=5):
        """The next message that is not an event."""
        timeout *= self.scale
        while True:
            try:
                msg = self.recv(timeout)
            except socket.timeout:
                raise HarnessError(f"{self.name}: no reply within {timeout:g} s") from None
            if "event" not in msg:
                return msg
            self.events.append((time.monotonic(), msg))

    def execute(self, name, args=None, timeout=5):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        self.send_raw(json.dumps(req))
        return self.reply(timeout)

    def cmd(self, name, args=None, timeout=30):
        r = self.execute(name, args, timeout)
        if "error" in r:
            raise HarnessError(f"{self.name}: {name} {json.dumps(args or {})}: "
                               f"{r['error'].get('class')}: {r['error'].get('desc')}")
        return r.get("return")

    def wait_event(self, name, timeout=5):
        """The first event called name (taken out of `events`)."""
        timeout *= self.scale
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if e[1]["event"] == name:
                    self.events.remove(e)
                    return e[1]
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError(f"{self.name}: no {name} event within {timeout:g} s")
            try:
                msg = self.recv(left)
            except socket.timeout:
                continue
            if "event" in msg:
                self.events.append((time.monotonic(), msg))

    def close(self):
        for c in (self.f, self.s):
            try:
                c.close()
            except OSError:
                pass


def sh(*args, check_rc=True, timeout=60):
    """Runs a command (no shell), its output captured as text, and returns
    the CompletedProcess. With check_rc, an exit status other than 0 raises
    HarnessError naming the command and what it printed. timeout is a limit
    for a hang (subprocess.TimeoutExpired); None for a command that may
    take long."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode:
        raise HarnessError(f"{' '.join(args)}: exit status {r.returncode}: "
                           f"{(r.stdout + r.stderr).strip()}")
    return r


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (another process
    may take it before the caller's listener binds it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
