"""Shared helpers for the shardmq end-to-end scripts (tests/it/NN_area.py).

What it gives a test script:
  - Broker: starts shardmq (or mosquitto when BROKER=mosquitto) on a free loopback port with a
    config built from a dict of shardmq config keys, waits until it accepts, stops it with SIGTERM
    (then SIGKILL) and keeps its stderr in a temp file to show when a test fails.
  - Raw: a byte-level MQTT 3.1/3.1.1 client on a plain socket. Received packets go to a mailbox,
    so a test can wait for "the SUBACK for id 7" while PUBLISH packets keep queueing behind it.
  - Paho: a thin synchronous wrapper over paho-mqtt 1.6.1 (a real client), used where the bytes
    do not matter.
  - Suite: a registry of test cases; each case runs once per shard count (1 and 4) on a broker of
    its own, cases run concurrently in a small thread pool, and the script prints one line per
    test and the summary line "N passed, M failed[, K skipped]", exiting 0 iff M == 0.

The invariant it keeps: every case gets a fresh broker, so cases never see each other's
sessions or retained messages, and a broker that dies or does not exit 0 on SIGTERM fails the
case that was using it.

What it leaves to the scripts: the scenarios and their assertions. Byte-level encoders here take
their inputs as given and do not validate them, so scripts can build malformed packets.

Persistence (tests/it/80_persist.py, 81_persist_kill.py): a string config value may say "{dir}",
which becomes the broker's temporary directory (so "persistence_location": "{dir}" keeps the store
there); Broker.restart() stops the broker (SIGTERM, or SIGKILL with kill=True), optionally waits,
and starts it again on the same port with the same directory (and optionally another shard
count); Broker.run_to_exit() runs the same command line expecting it to fail at start-up. For
mosquitto the keys persistence, persistence_location, persistence_file and autosave_interval
are passed through.

Environment: BROKER (shardmq | mosquitto), SHARDMQ_BIN (default $BUILD/shardmq), SHARDS
("1,4"), JOBS (parallel cases, default 4), VERBOSE=1 (start shardmq with -v). Arguments to a
script are substrings; only cases whose name contains one of them run.
"""

import collections
import concurrent.futures
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

HOST = "127.0.0.1"
KIND = os.environ.get("BROKER", "shardmq")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SHARDMQ_BIN = os.environ.get("SHARDMQ_BIN",
                             os.path.join(os.environ.get("BUILD", "build"), "shardmq"))
if not os.path.isabs(SHARDMQ_BIN) and not os.path.exists(SHARDMQ_BIN):
    SHARDMQ_BIN = os.path.join(ROOT, SHARDMQ_BIN)     # relative to the repository root
SHARDMQ_BIN = os.path.abspath(SHARDMQ_BIN)
MOSQUITTO_BIN = os.environ.get("MOSQUITTO_BIN", "/usr/sbin/mosquitto")
VERBOSE = os.environ.get("VERBOSE", "") not in ("", "0")
JOBS = int(os.environ.get("JOBS", "4"))
SHARDS = [int(s) for s in os.environ.get("SHARDS", "1,4").split(",") if s]

# MQTT control packet types (fixed header high nibble).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14
TYPE_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
              7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
              12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH", 0: "RESERVED"}


def sanitized():
    """True when the broker under test is an ASan/UBSan build (make asan): 3-5x slower, and its
    allocator keeps freed memory in quarantine."""
    try:
        with open(SHARDMQ_BIN, "rb") as f:
            return KIND == "shardmq" and b"__asan_init" in f.read()
    except OSError:
        return False


class Skip(Exception):
    """Raised by a test body to skip itself (the reason is printed)."""


class Closed(Exception):
    """The broker closed the connection while we waited for a packet."""


def unique(prefix="c"):
    """A fresh client id / topic component. Random, so ids spread over the shards."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def free_port():
    """A port that was free a moment ago (bind 127.0.0.1:0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_unbound(port):
    """True if nothing listens on HOST:port (a bind with SO_REUSEADDR fails only then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


def wait_until(pred, timeout, step=0.02):
    """Poll pred() until it is true or timeout passes; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(step)


# ---------------------------------------------------------------------------------------------
# Broker process

# shardmq config keys that mosquitto understands under the same name and meaning.
MOSQ_SAME_KEYS = ("max_inflight_messages", "max_queued_messages", "max_queued_bytes",
                  "max_packet_size", "max_keepalive", "allow_anonymous",
                  "allow_zero_length_clientid", "queue_qos0_messages", "retain_available",
                  "persistent_client_expiration")
# persistence keys mosquitto shares (its persistence_location wants a trailing slash).
MOSQ_PERSIST_KEYS = ("persistence", "persistence_location", "persistence_file",
                     "autosave_interval", "autosave_on_changes")
# mosquitto options that belong to a listener (written after the listener line).
MOSQ_LISTENER_KEYS = ("max_connections", "max_qos")


def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Broker:
    """One broker process on a free loopback port. Not thread-safe; one test owns it."""

    def __init__(self, shards=1, conf=None, kind=KIND):
        self.kind = kind
        self.shards = shards
        self.conf = dict(conf or {})
        self.port = None
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="smq-it-")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.log = None
        self.killed = False     # stop() had to SIGKILL it
        self.cwd = self.dir     # working directory of the process (the default store location)
        self.preexec = None     # run in the child before exec (e.g. a resource limit)
        self.log_mark = 0       # log offset where the current process's output starts

    def conf_items(self):
        """The config with "{dir}" in string values replaced by the broker's directory."""
        return [(k, v.replace("{dir}", self.dir) if isinstance(v, str) else v)
                for k, v in self.conf.items()]

    def _conf_file(self):
        path = os.path.join(self.dir, "broker.conf")
        lines = []
        if self.kind == "mosquitto":
            persist = bool(self.conf.get("persistence"))
            lines += ["listener %d %s" % (self.port, HOST), "allow_anonymous true",
                      "persistence %s" % conf_value(persist), "log_dest stderr",
                      "set_tcp_nodelay true"]
            # as root mosquitto would become the mosquitto user, who cannot write our 0700 dir
            lines += ["user root"] if persist and os.getuid() == 0 else []
            lines += ["log_type all"] if VERBOSE else []
            for k, v in self.conf_items():
                if k == "persistence":
                    continue
                if k == "persistence_location":
                    v = v.rstrip("/") + "/"
                if k in MOSQ_SAME_KEYS or k in MOSQ_LISTENER_KEYS or k in MOSQ_PERSIST_KEYS:
                    lines.append("%s %s" % (k, conf_value(v)))
        else:
            lines += ["%s %s" % (k, conf_value(v)) for k, v in self.conf_items()]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _argv(self):
        if self.kind == "mosquitto":
            return [MOSQUITTO_BIN, "-c", self._conf_file()]
        argv = [SHARDMQ_BIN, "-p", str(self.port), "--bind", HOST, "--shards", str(self.shards)]
        if self.conf:
            argv += ["-c", self._conf_file()]
        return argv + (["-v"] if VERBOSE else [])

    def _accepts(self):
        try:
            socket.create_connection((HOST, self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def _ready(self):
        # shardmq accepts on shard 0 before the other shards run; it logs
        # "listening" once every shard does, so tests start from a whole broker.
        if self.kind == "shardmq" and "shardmq listening on" not in self.log_since_start():
            return False
        return self._accepts()

    def _spawn(self):
        self.killed = False
        self.log = open(self.log_path, "ab")
        self.log_mark = self.log.tell()
        self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, cwd=self.cwd, preexec_fn=self.preexec)

    def start(self, port=None, timeout=5.0):
        """Start on a free port (or on port, once); retry on a lost port race.
        Raises RuntimeError on failure."""
        for _ in range(1 if port else 4):
            self.port = port or free_port()
            self._spawn()
            if wait_until(lambda: self.proc.poll() is not None or self._ready(), timeout):
                if self.proc.poll() is None:
                    return self
            self.stop()     # exited early (port taken?) or never accepted: try a new port
        raise RuntimeError("broker did not start:\n" + self.log_text())

    def kill(self):
        """SIGKILL now (a crash); returns the exit status once the port is free again (the
        kernel tears an io_uring down after the process is gone: its listener lingers for
        some milliseconds)."""
        if self.proc is None:
            return None
        self.proc.kill()
        self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        wait_until(lambda: port_unbound(self.port), 5.0, 0.005)
        return rc

    def restart(self, kill=False, down=0.0, shards=None, timeout=10.0):
        """Stop (SIGTERM, or SIGKILL with kill), stay down for down seconds, start again on the
        same port and directory (with another shard count if given). Returns the stop status."""
        rc = self.kill() if kill else self.stop()
        if down:
            time.sleep(down)
        if shards:
            self.shards = shards
        self.start(self.port, timeout)
        return rc

    def run_to_exit(self, timeout=10.0, port=None):
        """Run the broker's command line (same config and directory) expecting it to exit by
        itself within timeout; returns (exit status or None if it kept running, its output).
        A broker that keeps running is stopped."""
        saved = (self.proc, self.log, self.port, self.log_mark)
        self.port = port or free_port()
        self._spawn()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        out = self.log_since_start()
        self.proc, self.log, self.port, self.log_mark = saved
        return rc, out

    def log_since_start(self):
        """What the current (or last) process wrote to the log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_mark)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after 3 s. Returns the exit status (negative = signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return rc

    def log_text(self, tail=80):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)     # a store is a directory tree


# ---------------------------------------------------------------------------------------------
# Packet encoding (no validation: scripts build malformed packets with these too)

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack(">H", len(b)) + b


def packet(first_byte, body=b""):
    return bytes([first_byte]) + varint(len(body)) + body


def connect_packet(cid="", clean=True, keepalive=60, will=None, user=None, password=None,
                   proto="MQTT", level=4, flags=None):
    """CONNECT. will = (topic, payload, qos, retain). flags overrides the computed flags byte."""
    f = 0x02 if clean else 0
    payload = mqtt_str(cid)
    if will is not None:
        wt, wp, wq, wr = will
        f |= 0x04 | (wq << 3) | (0x20 if wr else 0)
        payload += mqtt_str(wt) + mqtt_str(wp)
    if user is not None:
        f |= 0x80
        payload += mqtt_str(user)
    if password is not None:
        f |= 0x40
        payload += mqtt_str(password)
    if flags is not None:
        f = flags
    var = mqtt_str(proto) + bytes([level, f]) + struct.pack(">H", keepalive)
    return packet(0x10, var + payload)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, pid=None):
    if isinstance(payload, str):
        payload = payload.encode()
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    var = mqtt_str(topic) + (struct.pack(">H", pid) if qos else b"")
    return packet(first, var + payload)


def subscribe_packet(pid, subs):
    body = struct.pack(">H", pid)
    for f, q in subs:
        body += mqtt_str(f) + bytes([q])
    return packet(0x82, body)


def unsubscribe_packet(pid, filters):
    return packet(0xA2, struct.pack(">H", pid) + b"".join(mqtt_str(f) for f in filters))


def ack_packet(ptype, pid):
    return packet((ptype << 4) | (0x02 if ptype == PUBREL else 0), struct.pack(">H", pid))


PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"


class Packet:
    """A received packet: type, flags (low nibble) and the bytes after the remaining length."""

    def __init__(self, first, body):
        self.type = first >> 4
        self.flags = first & 0x0F
        self.body = body

    @property
    def pid(self):
        return struct.unpack(">H", self.body[:2])[0]

    def __repr__(self):
        return "<%s flags=%x body=%s>" % (TYPE_NAMES[self.type], self.flags, self.body[:40].hex())


class Msg:
    """A decoded PUBLISH."""

    def __init__(self, p):
        self.qos = (p.flags >> 1) & 3
        self.dup = bool(p.flags & 8)
        self.retain = bool(p.flags & 1)
        n = struct.unpack(">H", p.body[:2])[0]
        self.topic = p.body[2:2 + n].decode("utf-8")
        off = 2 + n
        self.pid = struct.unpack(">H", p.body[off:off + 2])[0] if self.qos else None
        self.payload = p.body[off + (2 if self.qos else 0):]

    def __repr__(self):
        return "<PUBLISH %s q%d r%d d%d id=%s %r>" % (self.topic, self.qos, self.retain, self.dup,
                                                      self.pid, self.payload[:40])


def parse_packet(buf):
    """Split one packet off the front of buf. Returns (Packet, used) or (None, 0) if incomplete."""
    mult, n, i = 1, 0, 1
    while True:
        if i >= len(buf):
            return None, 0
        b = buf[i]
        n += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if not b & 0x80:
            break
        if i > 4:
            raise ValueError("broker sent a remaining length over 4 bytes")
    if len(buf) < i + n:
        return None, 0
    return Packet(buf[0], bytes(buf[i:i + n])), i + n


# ---------------------------------------------------------------------------------------------
# Raw socket client

class Raw:
    """A byte-level client. Received packets wait in a mailbox until a test asks for them.

    PUBREL for ids we PUBREC'd through recv_msg(ack=True) is answered with PUBCOMP on arrival.
    One thread uses one Raw at a time.
    """

    def __init__(self, broker, rcvbuf=None, timeout=3.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((HOST, broker.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.inbox = collections.deque()
        self.closed = False
        self.auto_rel = set()
        self.pid = 0
        self.timeout = timeout

    def next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    def _read(self, deadline):
        """Read once (until deadline). Raises Closed on EOF/reset, TimeoutError on deadline."""
        if self.closed:
            raise Closed("connection closed")
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.sock], [], [], left)[0]:
            raise TimeoutError()
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError):
            data = b""
        if not data:
            self.closed = True
            raise Closed("connection closed by broker")
        self.buf += data
        while True:
            p, used = parse_packet(self.buf)
            if not p:
                break
            del self.buf[:used]
            if p.type == PUBREL and p.pid in self.auto_rel:
                self.auto_rel.discard(p.pid)
                self.send(ack_packet(PUBCOMP, p.pid))
            else:
                self.inbox.append(p)

    def next(self, want=None, timeout=None):
        """First mailbox packet whose type is in want (any if None); waits up to timeout."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for p in self.inbox:
                if want is None or p.type in want:
                    self.inbox.remove(p)
                    return p
            try:
                self._read(deadline)
            except TimeoutError:
                names = "/".join(TYPE_NAMES[t] for t in want) if want else "any packet"
                raise AssertionError("timed out waiting for %s (mailbox: %s)"
                                     % (names, list(self.inbox)[:5])) from None

    def expect(self, ptype, pid=None, timeout=None):
        """Wait for a packet of type ptype (and packet id pid when given)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for p in self.inbox:
                if p.type == ptype and (pid is None or p.pid == pid):
                    self.inbox.remove(p)
                    return p
            try:
                self._read(deadline)
            except TimeoutError:
                raise AssertionError("timed out waiting for %s id=%s (mailbox: %s)"
                                     % (TYPE_NAMES[ptype], pid, list(self.inbox)[:5])) from None
            except Closed:
                raise Closed("connection closed while waiting for %s" % TYPE_NAMES[ptype])

    def wait_closed(self, timeout=3.0):
        """Assert the broker closes within timeout; returns the packets it sent before that."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._read(deadline)
            except Closed:
                got = list(self.inbox)
                self.inbox.clear()
                return got
            except TimeoutError:
                raise AssertionError("broker did not close the connection within %.1f s "
                                     "(got %s)" % (timeout, list(self.inbox)[:5])) from None

    def is_open(self, wait=0.3):
        """True if the connection is still open after wait seconds (packets stay queued)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self._read(deadline)
            except TimeoutError:
                return True
            except Closed:
                return False

    # --- protocol steps ---

    def connect(self, cid=None, clean=True, keepalive=60, **kw):
        """Send CONNECT, return (session_present, return_code) from the CONNACK."""
        self.send(connect_packet(unique() if cid is None else cid, clean, keepalive, **kw))
        p = self.expect(CONNACK)
        assert len(p.body) == 2, "CONNACK remaining length %d, want 2" % len(p.body)
        return bool(p.body[0] & 1), p.body[1]

    def connect_ok(self, cid=None, clean=True, keepalive=60, **kw):
        sp, rc = self.connect(cid, clean, keepalive, **kw)
        assert rc == 0, "CONNACK return code 0x%02x" % rc
        return sp

    def subscribe(self, subs, pid=None):
        """SUBSCRIBE [(filter, qos)...]; returns the granted QoS list from the SUBACK."""
        pid = pid or self.next_pid()
        self.send(subscribe_packet(pid, subs))
        p = self.expect(SUBACK, pid)
        return list(p.body[2:])

    def unsubscribe(self, filters):
        pid = self.next_pid()
        self.send(unsubscribe_packet(pid, filters))
        p = self.expect(UNSUBACK, pid)
        assert len(p.body) == 2, "UNSUBACK remaining length %d" % len(p.body)

    def publish(self, topic, payload=b"", qos=0, retain=False, wait=True, dup=False, pid=None):
        """PUBLISH; with wait, complete the QoS 1/2 handshake. Returns the packet id."""
        pid = pid or (self.next_pid() if qos else None)
        self.send(publish_packet(topic, payload, qos, retain, dup, pid))
        if wait and qos == 1:
            self.expect(PUBACK, pid)
        elif wait and qos == 2:
            self.expect(PUBREC, pid)
            self.send(ack_packet(PUBREL, pid))
            self.expect(PUBCOMP, pid)
        return pid

    def recv_msg(self, timeout=None, ack=True):
        """Next PUBLISH as a Msg; with ack, send PUBACK / PUBREC (PUBCOMP follows on PUBREL)."""
        m = Msg(self.next((PUBLISH,), timeout))
        if ack and m.qos == 1:
            self.send(ack_packet(PUBACK, m.pid))
        elif ack and m.qos == 2:
            self.auto_rel.add(m.pid)
            self.send(ack_packet(PUBREC, m.pid))
        return m

    def recv_msgs(self, n, timeout=None, ack=True):
        return [self.recv_msg(timeout, ack) for _ in range(n)]

    def no_msg(self, wait=0.5):
        """Assert that no PUBLISH arrives within wait seconds."""
        try:
            m = self.recv_msg(wait)
        except AssertionError:
            return
        raise AssertionError("unexpected %r" % m)

    def drain(self, wait=0.3, ack=True):
        """Every PUBLISH that arrives until none has come for wait seconds."""
        got = []
        while True:
            try:
                got.append(self.recv_msg(wait, ack))
            except AssertionError as e:
                if "timed out" not in str(e):
                    raise
                return got

    def ping(self, timeout=None):
        self.send(PINGREQ_PACKET)
        p = self.expect(PINGRESP, timeout=timeout)
        assert p.flags == 0 and p.body == b"", "bad PINGRESP %r" % p

    def disconnect(self):
        try:
            self.send(DISCONNECT_PACKET)
        except OSError:
            pass
        self.close()


# ---------------------------------------------------------------------------------------------
# paho-mqtt client

class Paho:
    """paho-mqtt 1.6.1 with its network thread, made synchronous for tests.

    An unexpected disconnect is recorded in .lost and stops paho's automatic reconnect (which
    would otherwise take the session back from whatever connection replaced it).
    """

    def __init__(self, broker, cid=None, clean=True, proto=None, keepalive=30, will=None,
                 max_inflight=20):
        import paho.mqtt.client as mqtt
        self.mqtt = mqtt
        self.cid = unique("p") if cid is None else cid
        self.broker = broker
        self.keepalive = keepalive
        self.c = mqtt.Client(client_id=self.cid, clean_session=clean,
                             protocol=mqtt.MQTTv311 if proto is None else proto)
        self.c.max_inflight_messages_set(max_inflight)
        self.c.max_queued_messages_set(0)
        if will:
            self.c.will_set(will[0], will[1], will[2], will[3])
        self.msgs = collections.deque()
        self.cond = threading.Condition()
        self.connack = None
        self.subacks = {}
        self.lost = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_disconnect = self._on_disconnect

    def _notify(self):
        with self.cond:
            self.cond.notify_all()

    def _on_connect(self, c, u, flags, rc):
        self.connack = (flags.get("session present", 0), rc)
        if rc:
            c._thread_terminate = True
        self._notify()

    def _on_message(self, c, u, m):
        with self.cond:
            self.msgs.append(m)
            self.cond.notify_all()

    def _on_subscribe(self, c, u, mid, granted):
        self.subacks[mid] = list(granted)
        self._notify()

    def _on_unsubscribe(self, c, u, mid):
        self.subacks[mid] = True
        self._notify()

    def _on_disconnect(self, c, u, rc):
        if rc != 0:
            self.lost = rc
            c._thread_terminate = True     # no automatic reconnect
        self._notify()

    def _wait(self, pred, timeout, what):
        with self.cond:
            if not self.cond.wait_for(pred, timeout):
                raise AssertionError("paho %s: timed out waiting for %s" % (self.cid, what))

    def connect(self, timeout=5):
        """Connect and wait for the CONNACK; returns (session_present, rc)."""
        self.c.connect(HOST, self.broker.port, self.keepalive)
        # paho 1.6.1 leaves Nagle on: its 4-byte acks would then wait for delayed TCP ACKs
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        self._wait(lambda: self.connack is not None or self.lost, timeout, "CONNACK")
        if self.connack is None:
            raise AssertionError("paho %s: connection lost before CONNACK" % self.cid)
        return self.connack

    def connect_ok(self, timeout=5):
        sp, rc = self.connect(timeout)
        assert rc == 0, "paho CONNACK rc=%d" % rc
        return sp

    def subscribe(self, subs, timeout=5):
        """subs: [(filter, qos)...]; returns the granted QoS list."""
        rc, mid = self.c.subscribe(subs)
        assert rc == 0, "paho subscribe rc=%d" % rc
        self._wait(lambda: mid in self.subacks, timeout, "SUBACK")
        return self.subacks.pop(mid)

    def unsubscribe(self, filters, timeout=5):
        rc, mid = self.c.unsubscribe(filters)
        assert rc == 0, "paho unsubscribe rc=%d" % rc
        self._wait(lambda: mid in self.subacks, timeout, "UNSUBACK")
        self.subacks.pop(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, wait=True, timeout=5):
        info = self.c.publish(topic, payload, qos, retain)
        assert info.rc == 0, "paho publish rc=%d" % info.rc
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), "paho %s: publish to %s not acknowledged" % (
                self.cid, topic)
        return info

    def recv(self, timeout=3):
        """Next message (paho MQTTMessage: topic, payload, qos, retain, dup, mid)."""
        self._wait(lambda: self.msgs, timeout, "a message")
        with self.cond:
            return self.msgs.popleft()

    def recv_n(self, n, timeout=5):
        self._wait(lambda: len(self.msgs) >= n, timeout,
                   "%d messages (got %d)" % (n, len(self.msgs)))
        with self.cond:
            return [self.msgs.popleft() for _ in range(n)]

    def no_msg(self, wait=0.5):
        time.sleep(wait)
        with self.cond:
            assert not self.msgs, "unexpected message %s %r" % (self.msgs[0].topic,
                                                                self.msgs[0].payload)

    def disconnect(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()

    def close(self):
        """Drop the connection without DISCONNECT."""
        self.c._thread_terminate = True
        try:
            self.c.socket().shutdown(socket.SHUT_RDWR)   # paho's thread sees EOF and exits
        except (OSError, AttributeError):
            pass
        self.c.loop_stop()


# ---------------------------------------------------------------------------------------------
# Test registry and runner

class Ctx:
    """What a test body gets: the broker, and factories for clients that are closed afterwards."""

    def __init__(self, broker):
        self.broker = broker
        self.kind = broker.kind
        self.shards = broker.shards
        self.port = broker.port
        self.clients = []
        self.stopped = False

    def stop_broker(self):
        """SIGTERM the broker now (the test checks the outcome); returns (status, killed)."""
        self.stopped = True
        rc = self.broker.stop()
        return rc, self.broker.killed

    def raw(self, **kw):
        c = Raw(self.broker, **kw)
        self.clients.append(c)
        return c

    def client(self, cid=None, clean=True, keepalive=60, **kw):
        """A Raw client already connected (CONNACK 0 checked)."""
        c = self.raw()
        c.connect_ok(cid, clean, keepalive, **kw)
        return c

    def paho(self, *a, **kw):
        c = Paho(self.broker, *a, **kw)
        self.clients.append(c)
        return c

    def close_all(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass


class Case:
    def __init__(self, name, fn, conf, spec_only, shards):
        self.name, self.fn, self.conf = name, fn, conf
        self.spec_only, self.shards = spec_only, shards


class Suite:
    """Collects cases with @suite.case(...) and runs them with suite.main()."""

    def __init__(self, title):
        self.title = title
        self.cases = []
        self.lock = threading.Lock()
        self.counts = collections.Counter()

    def case(self, name, conf=None, spec_only=None, shards=None):
        """Register a test. conf: shardmq config keys. spec_only: the reason the case is skipped
        on mosquitto (mosquitto differs from the spec or from a documented shardmq choice).
        shards: the shard counts to run on (default SHARDS)."""
        def deco(fn):
            self.cases.append(Case(name, fn, conf, spec_only, shards))
            return fn
        return deco

    def _emit(self, status, label, reason="", log=""):
        with self.lock:
            self.counts[status] += 1
            line = "%s %s" % ({"pass": "ok", "fail": "FAIL", "skip": "skip"}[status], label)
            print(line + (": " + reason if reason else ""), flush=True)
            if log:
                print("    --- broker log (tail) ---")
                print("\n".join("    " + l for l in log.splitlines()), flush=True)

    def _run_one(self, case, shards):
        label = "%s/%s" % (self.title, case.name)
        label += " (mosquitto)" if KIND == "mosquitto" else " (shards=%d)" % shards
        if KIND == "mosquitto" and case.spec_only:
            return self._emit("skip", label, "spec-only: " + case.spec_only)
        broker = Broker(shards, case.conf)
        try:
            broker.start()
        except Exception as e:
            self._emit("fail", label, "broker start: %s" % str(e).splitlines()[0],
                       broker.log_text())
            return broker.cleanup()
        ctx = Ctx(broker)
        status, reason = "pass", ""
        try:
            case.fn(ctx)
        except Skip as e:
            status, reason = "skip", str(e)
        except Exception as e:
            status, reason = "fail", describe(e)
        finally:
            ctx.close_all()
        died = not broker.alive() and not ctx.stopped
        rc = broker.stop()
        if status != "fail" and died:
            status, reason = "fail", "broker died during the test (status %s)" % rc
        elif status != "fail" and KIND != "mosquitto" and not ctx.stopped:
            status, reason = sigterm_verdict(broker, rc, status, reason)
        self._emit(status, label, reason, broker.log_text() if status == "fail" else "")
        broker.cleanup()

    def _jobs(self, filters):
        for case in self.cases:
            if filters and not any(f in case.name for f in filters):
                continue
            counts = [1] if KIND == "mosquitto" else (case.shards or SHARDS)
            for n in counts:
                yield case, n

    def main(self):
        jobs = list(self._jobs(sys.argv[1:]))
        missing = KIND != "mosquitto" and not os.path.exists(SHARDMQ_BIN)
        if missing and not os.path.exists(os.path.join(ROOT, "cmd", "shardmq.c")):
            # The broker is not written yet: nothing to test against.
            for case, n in jobs:
                self._emit("skip", "%s/%s (shards=%d)" % (self.title, case.name, n),
                           "%s not built (no cmd/shardmq.c yet)" % SHARDMQ_BIN)
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
                for f in [pool.submit(self._run_one, c, n) for c, n in jobs]:
                    f.result()
        c = self.counts
        tail = ", %d skipped" % c["skip"] if c["skip"] else ""
        print("%d passed, %d failed%s" % (c["pass"], c["fail"], tail), flush=True)
        sys.exit(1 if c["fail"] else 0)


def sigterm_verdict(broker, rc, status, reason):
    """shardmq must exit 0 on SIGTERM, and within 3 s."""
    if broker.killed:
        return "fail", "broker still running 3 s after SIGTERM (killed)"
    if rc != 0:
        return "fail", "broker exit status %s on SIGTERM, want 0" % rc
    return status, reason


def describe(e):
    """One-line reason for an exception: message plus the test-file line that raised it."""
    tb = traceback.extract_tb(e.__traceback__)
    here = [f for f in tb if "harness.py" not in f.filename] or tb
    where = "%s:%d" % (os.path.basename(here[-1].filename), here[-1].lineno)
    msg = str(e) or type(e).__name__
    if not isinstance(e, AssertionError):
        msg = "%s: %s" % (type(e).__name__, msg)
    return "%s [%s]" % (msg.replace("\n", " | "), where)


def check(cond, fmt, *args):
    """assert that survives python -O and formats lazily."""
    if not cond:
        raise AssertionError(fmt % args if args else fmt)


def eq(got, want, what):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))
