#!/usr/bin/python3
"""40 security: authentication, listeners and signals, end to end with real clients. It also
holds what 41_tls.py (TLS, mTLS, certificates) and 42_acl.py (ACL files) import: brokers started
from a mosquitto-style config file with listener blocks (SBroker), certificates and password files
made at run time with openssl and mosquitto_passwd (Pki), byte-level 3.1.1 / 5.0 clients over
plain or TLS sockets (Conn), paho over TLS (PahoTls), mosquitto_pub / mosquitto_sub, and a runner
(Suite).

What a user sees and these scripts check:
  - password_file (made with Debian's mosquitto_passwd): the right password gets in, a wrong one
    or an unknown user gets CONNACK 5 (3.1.1) / 0x86 (5.0), and mosquitto_pub exits 5 saying
    "not authorised"; once a listener line exists, anonymous clients are refused (5 / 0x87)
    unless allow_anonymous true; allow_anonymous false without a password file refuses
    everyone.
  - listeners: none configured -> loopback only (127.0.0.1 and ::1), anonymous allowed;
    "listener PORT" without address -> every interface, IPv4 and IPv6; plain and TLS listeners
    side by side; max_connections per listener.
  - signals: SIGHUP re-reads the password file (connected clients stay), SIGUSR1 / SIGUSR2 do
    not stop the broker.

Each case starts its own broker (--shards from SHARDS, default 2) on free ports and stops it with
SIGTERM; a broker that died or did not exit 0 fails the case. BROKER=mosquitto runs the same
cases against /usr/sbin/mosquitto (checks of shardmq's own log lines are left out there, and
cases marked spec_only are skipped) to show that the expectations are mosquitto's.

Environment: BROKER, SHARDMQ_BIN / BUILD, SHARDS, JOBS, VERBOSE as in lib/harness.py.
Arguments are case-name substrings.
"""
import os
import sys


def reexec_with_paho():
    """Run the script again under /usr/bin/python3 when this python lacks Debian's paho."""
    if sys.executable == "/usr/bin/python3" or not os.path.exists("/usr/bin/python3"):
        return
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)


if __name__ == "__main__":
    reexec_with_paho()

import collections  # noqa: E402
import concurrent.futures  # noqa: E402
import queue  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

KIND = h.KIND
SHARDS = [int(s) for s in os.environ.get("SHARDS", "2").split(",") if s]
MOSQ = KIND == "mosquitto"

# ---------------------------------------------------------------------------------------------
# Certificates and password files, made once per run in a temp dir

CA_CNF = """[ ca ]
default_ca = CA_default
[ CA_default ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = copy
[ policy_any ]
commonName = supplied
"""


class Pki:
    """ca/ca2: two CAs; server (CN=localhost, SAN localhost, 127.0.0.1, ::1) and server2 (the
    same name, signed by ca2); clients alice and bob (by ca), expired (CN=alice, by ca, valid
    only in 2000) and mallory (CN=alice, by ca2). Passwords: alice/secret, bob/bobpw."""

    USERS = {"alice": "secret", "bob": "bobpw", "carol": "carolpw"}

    def __init__(self):
        self.dir = None           # made by make(), so that importing this file leaves nothing
        self.made = False
        self.lock = threading.Lock()

    def path(self, name):
        return os.path.join(self.dir, name)

    def _run(self, *argv):
        r = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True)
        if r.returncode:
            raise RuntimeError("%s failed: %s" % (" ".join(argv[:3]),
                                                  r.stderr.decode(errors="replace")[-400:]))

    def _csr(self, name, cn, ext=None):
        argv = ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/CN=" + cn]
        if ext:
            argv += ["-addext", ext]
        self._run(*argv)

    def _sign(self, name, ca, days="30", start=None, end=None):
        if start:
            self._run("openssl", "ca", "-batch", "-config", "ca.cnf", "-cert", ca + ".crt",
                      "-keyfile", ca + ".key", "-in", name + ".csr", "-out", name + ".crt",
                      "-startdate", start, "-enddate", end, "-notext")
        else:
            self._run("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt",
                      "-CAkey", ca + ".key", "-CAcreateserial", "-days", days, "-out",
                      name + ".crt", "-copy_extensions", "copy")

    def make(self):
        with self.lock:
            if self.made:
                return self
            self.dir = tempfile.mkdtemp(prefix="smq-it40-pki-")
            with open(self.path("ca.cnf"), "w") as f:
                f.write(CA_CNF)
            open(self.path("index.txt"), "w").close()
            with open(self.path("serial"), "w") as f:
                f.write("1000\n")
            for ca in ("ca", "ca2"):
                self._run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca + ".key",
                          "-out", ca + ".crt", "-days", "30", "-subj", "/CN=shardmq test " + ca)
            san = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
            for name, ca in (("server", "ca"), ("server2", "ca2")):
                self._csr(name, "localhost", san)
                self._sign(name, ca)
            for name, cn, ca in (("alice", "alice", "ca"), ("bob", "bob", "ca"),
                                 ("mallory", "alice", "ca2")):
                self._csr(name, cn)
                self._sign(name, ca)
            self._csr("expired", "alice")
            self._sign("expired", "ca", start="20000101000000Z", end="20010101000000Z")
            first = True
            for user, pw in self.USERS.items():
                argv = ["mosquitto_passwd"] + (["-c"] if first else []) + ["-b", "passwd",
                                                                           user, pw]
                self._run(*argv)
                first = False
            self.made = True
            return self

    def cleanup(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


PKI = Pki()

# ---------------------------------------------------------------------------------------------
# Brokers from a config text


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class SBroker:
    """One broker started from config text. "{p0}".."{p3}" in the text become free ports,
    "{pki}" the certificate dir, "{dir}" the broker's own temp dir."""

    def __init__(self, text, shards, extra_args=(), files=None):
        self.text, self.shards, self.extra = text, shards, list(extra_args)
        self.dir = tempfile.mkdtemp(prefix="smq-it40-")
        self.files = files or {}
        self.conf = os.path.join(self.dir, "broker.conf")
        self.log_path = os.path.join(self.dir, "broker.log")
        self.proc = None
        self.ports = []
        self.killed = False
        self.stopped = False

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        """Write a file in the broker's dir (atomically: a reload never sees half of it)."""
        tmp = self.path(name + ".tmp")
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path(name))
        return self.path(name)

    def _expand(self, text):
        out = text.replace("{pki}", PKI.dir).replace("{dir}", self.dir)
        for i, p in enumerate(self.ports):
            out = out.replace("{p%d}" % i, str(p))
        return out

    def _ready(self):
        if not MOSQ:
            return "shardmq listening on" in self.log()[self.start_mark:]
        for p in self.ports[:self.nports]:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            except OSError:
                return False
        return True

    def start(self):
        for name, text in self.files.items():
            self.write(name, self._expand(text))
        self.nports = sum(("{p%d}" % i) in self.text for i in range(4))
        for _ in range(4):
            self.ports = [h.free_port() for _ in range(4)]
            with open(self.conf, "w") as f:
                f.write(self._expand(self.text))
                if MOSQ:
                    f.write("\nlog_dest stderr\nlog_type all\nuser root\n")
            extra = [self._expand(a) for a in self.extra]
            if MOSQ:
                argv = [h.MOSQUITTO_BIN, "-c", self.conf] + extra
            else:
                argv = [h.SHARDMQ_BIN, "-c", self.conf, "--shards", str(self.shards)] + extra
                argv += ["-v"] if h.VERBOSE else []
            self.start_mark = self.log_mark()
            self.logf = open(self.log_path, "ab")
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                         stderr=self.logf, cwd=self.dir)
            if h.wait_until(lambda: self.proc.poll() is not None or self._ready(), 5.0):
                if self.proc.poll() is None:
                    return self
            in_use = "in use" in self.log()
            self.stop()
            if not in_use:
                break
        raise RuntimeError("broker did not start: " + " | ".join(self.log().splitlines()[-4:]))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_mark(self):
        return len(self.log())

    def wait_log(self, text, since=0, timeout=5.0):
        """True once text shows up in the log after offset since (always true on mosquitto,
        whose log words differ: there we wait a moment instead)."""
        if MOSQ:
            time.sleep(0.5)
            return True
        return bool(h.wait_until(lambda: text in self.log()[since:], timeout))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def hup(self, ok=True):
        """SIGHUP and wait until the broker says it reloaded (ok) or failed to."""
        mark = self.log_mark()
        self.signal(signal.SIGHUP)
        word = "reloaded" if ok else "reload failed"
        check(self.wait_log(word, mark), "no '%s' in the log after SIGHUP: %s", word,
              self.log()[mark:][-300:])

    def stop(self):
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
        self.logf.close()
        return rc

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Clients: byte-level (plain or TLS, 3.1.1 or 5.0), paho, mosquitto_pub / mosquitto_sub

def tls_ctx(ca="ca", cert=None, minv=None, maxv=None):
    """A client SSLContext trusting PKI CA @ca, presenting client cert @cert (a Pki name)."""
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(PKI.path(ca + ".crt"))
    if cert:
        c.load_cert_chain(PKI.path(cert + ".crt"), PKI.path(cert + ".key"))
    if minv:
        c.minimum_version = minv
    if maxv:
        c.maximum_version = maxv
    return c


class Conn(h.Raw):
    """h.Raw over any port and family, optionally TLS (handshake done in the constructor, so
    a refused certificate may show up here or only at the first read, as in TLS 1.3)."""

    def __init__(self, port, host="127.0.0.1", tls=None, timeout=3.0):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                s = tls.wrap_socket(s, server_hostname="localhost")
            except BaseException:
                s.close()
                raise
        self.sock = s
        self.buf = bytearray()
        self.inbox = collections.deque()
        self.closed = False
        self.auto_rel = set()
        self.pid = 0
        self.timeout = timeout
        self.tls_error = None

    def _read(self, deadline):
        if self.closed:
            raise h.Closed("connection closed")
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        left = deadline - time.monotonic()
        if not pending and (left <= 0 or not select.select([self.sock], [], [], left)[0]):
            raise TimeoutError()
        try:
            data = self.sock.recv(65536)
        except ssl.SSLWantReadError:
            return
        except (ConnectionError, ssl.SSLError) as e:
            self.tls_error = str(e)
            data = b""
        if not data:
            self.closed = True
            raise h.Closed("connection closed by broker")
        self.buf += data
        while True:
            p, used = h.parse_packet(self.buf)
            if not p:
                break
            del self.buf[:used]
            if p.type == h.PUBREL and p.pid in self.auto_rel:
                self.auto_rel.discard(p.pid)
                self.send(h.ack_packet(h.PUBCOMP, p.pid))
            else:
                self.inbox.append(p)

    # --- MQTT 5 ---

    def connect5(self, cid=None, user=None, password=None, will=None, clean=True):
        """Send a 5.0 CONNECT; return the CONNACK reason code."""
        self.send(connect5_packet(h.unique() if cid is None else cid, user, password, will,
                                  clean))
        return self.expect(h.CONNACK).body[1]

    def publish5(self, topic, payload=b"", qos=1, retain=False):
        """5.0 PUBLISH at QoS 1 or 2; returns the reason code of the PUBACK / PUBREC (and
        finishes the QoS 2 flow when that code is a success)."""
        pid = self.next_pid()
        self.send(publish5_packet(topic, payload, qos, pid, retain))
        p = self.expect(h.PUBACK if qos == 1 else h.PUBREC, pid)
        rc = p.body[2] if len(p.body) > 2 else 0
        if qos == 2 and rc < 0x80:
            self.send(h.ack_packet(h.PUBREL, pid))
            self.expect(h.PUBCOMP, pid)
        return rc

    def subscribe5(self, subs):
        pid = self.next_pid()
        self.send(subscribe5_packet(pid, subs))
        b = self.expect(h.SUBACK, pid).body
        n, used = read_varint(b, 2)
        return list(b[2 + used + n:])

    def recv5(self, timeout=None):
        """Next 5.0 PUBLISH as (topic, payload, qos, retain), acked."""
        p = self.next((h.PUBLISH,), timeout)
        qos, b = (p.flags >> 1) & 3, p.body
        n = struct.unpack(">H", b[:2])[0]
        topic, off = b[2:2 + n].decode(), 2 + n
        if qos:
            pid = struct.unpack(">H", b[off:off + 2])[0]
            off += 2
            self.send(h.ack_packet(h.PUBACK if qos == 1 else h.PUBREC, pid))
            if qos == 2:
                self.auto_rel.add(pid)
        plen, used = read_varint(b, off)
        return topic, b[off + used + plen:], qos, bool(p.flags & 1)


def read_varint(b, off):
    n, mult, i = 0, 1, off
    while True:
        n += (b[i] & 0x7F) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 0x80:
            return n, i - off


def connect5_packet(cid, user=None, password=None, will=None, clean=True, keepalive=60):
    f = 0x02 if clean else 0
    payload = h.mqtt_str(cid)
    if will is not None:
        wt, wp, wq, wr = will
        f |= 0x04 | (wq << 3) | (0x20 if wr else 0)
        payload += b"\x00" + h.mqtt_str(wt) + h.mqtt_str(wp)
    if user is not None:
        f |= 0x80
        payload += h.mqtt_str(user)
    if password is not None:
        f |= 0x40
        payload += h.mqtt_str(password)
    var = h.mqtt_str("MQTT") + bytes([5, f]) + struct.pack(">H", keepalive) + b"\x00"
    return h.packet(0x10, var + payload)


def publish5_packet(topic, payload, qos, pid, retain=False):
    if isinstance(payload, str):
        payload = payload.encode()
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    return h.packet(first, h.mqtt_str(topic) + (struct.pack(">H", pid) if qos else b"")
                    + b"\x00" + payload)


def subscribe5_packet(pid, subs):
    return h.packet(0x82, struct.pack(">H", pid) + b"\x00"
                    + b"".join(h.mqtt_str(f) + bytes([q]) for f, q in subs))


def run(argv, timeout=10):
    """Run a client program; returns (exit status, stdout + stderr text)."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace").strip()


def mosq_args(port, ca=None, cert=None, version=None, user=None, password=None, tls_ver=None):
    a = ["-h", "127.0.0.1", "-p", str(port)]
    if ca:
        a += ["--cafile", PKI.path(ca + ".crt")]
    if cert:
        a += ["--cert", PKI.path(cert + ".crt"), "--key", PKI.path(cert + ".key")]
    if version:
        a += ["-V", version]
    if user is not None:
        a += ["-u", user]
    if password is not None:
        a += ["-P", password]
    if tls_ver:
        a += ["--tls-version", tls_ver]
    return a


def mosq_pub(port, topic="t", msg="hello", qos=1, **kw):
    return run(["mosquitto_pub"] + mosq_args(port, **kw) + ["-t", topic, "-m", msg, "-q",
                                                            str(qos)])


class MosqSub:
    """mosquitto_sub -d -C 1: started, then wait_subscribed(), then result()."""

    def __init__(self, port, topic, **kw):
        # stdbuf: mosquitto_sub's stdout is a pipe here, and its debug lines must not wait
        argv = (["stdbuf", "-oL", "mosquitto_sub", "-d", "-C", "1", "-W", "8"]
                + mosq_args(port, **kw) + ["-t", topic, "-q", "1"])
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.lines = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_subscribed(self, timeout=5):
        with self.cond:
            ok = self.cond.wait_for(lambda: any(x and "SUBACK" in x for x in self.lines)
                                    or None in self.lines, timeout)
        check(ok and None not in self.lines, "mosquitto_sub did not subscribe: %s",
              " | ".join(x for x in self.lines if x))

    def result(self, timeout=10):
        """(exit status, output lines that are not debug lines)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.thread.join(2)
        return rc, [x for x in self.lines if x and not x.startswith(("Client ", "Subscribed (mid"))]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class PahoTls:
    """paho-mqtt 1.6.1 over TLS (tls_set(ca_certs=...)), 3.1.1 or 5.0, made synchronous."""

    def __init__(self, port, v5=False, ca="ca", cert=None, user=None, password=None):
        import paho.mqtt.client as mqtt
        self.port, self.v5 = port, v5
        kw = {"protocol": mqtt.MQTTv5} if v5 else {"clean_session": True,
                                                    "protocol": mqtt.MQTTv311}
        self.c = mqtt.Client(client_id=h.unique("pt"), **kw)
        self.c.tls_set(ca_certs=PKI.path(ca + ".crt"),
                       certfile=PKI.path(cert + ".crt") if cert else None,
                       keyfile=PKI.path(cert + ".key") if cert else None)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.q = queue.Queue()
        self.ev = queue.Queue()
        self.c.on_connect = lambda c, u, f, rc, props=None: self.ev.put(("connack", code(rc)))
        self.c.on_subscribe = lambda c, u, mid, granted, props=None: self.ev.put(
            ("suback", [code(g) for g in granted]))
        self.c.on_message = lambda c, u, m: self.q.put(m)

    def _event(self, kind, timeout=5):
        end = time.monotonic() + timeout
        while True:
            try:
                k, v = self.ev.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError("paho: no %s" % kind) from None
            if k == kind:
                return v

    def connect(self):
        self.c.connect("127.0.0.1", self.port, 30)
        self.c.loop_start()
        return self._event("connack")

    def subscribe(self, topic, qos=1):
        self.c.subscribe(topic, qos)
        return self._event("suback")

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos)
        info.wait_for_publish(5)
        check(info.is_published(), "paho: publish to %s not acknowledged", topic)

    def recv(self, timeout=5):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("paho: no message") from None

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def code(rc):
    """paho 1.6.1 gives 5.0 codes as ReasonCodes objects, 3.1.1 ones as ints."""
    return int(getattr(rc, "value", rc))


def refused(port, tls=None, host="127.0.0.1", v5=False, **kw):
    """Try a client; returns None if the connection failed or was closed before a CONNACK,
    else the CONNACK code (0 = let in). For checks that something is kept out."""
    try:
        c = Conn(port, host, tls)
    except (OSError, ssl.SSLError):
        return None
    try:
        if v5:
            return c.connect5(**kw)
        return c.connect(**kw)[1]
    except (h.Closed, OSError, AssertionError):
        return None
    finally:
        c.close()


def closed_without_connack(port, data, timeout=3.0):
    """Send raw bytes on a plain socket; True if the broker closes the connection within
    timeout and sent no MQTT CONNACK."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got, end = b"", time.monotonic() + timeout
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = s.recv(4096)
            except socket.timeout:
                return False
            except ConnectionError:
                break
            if not d:
                break
            got += d
        else:
            return False
    return not got.startswith(b"\x20")


# ---------------------------------------------------------------------------------------------
# Cases and the runner

class X:
    """What a case gets: brokers and clients it starts, all stopped and closed afterwards."""

    def __init__(self, shards):
        self.shards = shards
        self.brokers, self.things = [], []

    def broker(self, text, extra_args=(), files=None):
        b = SBroker(text, self.shards, extra_args, files)
        self.brokers.append(b)
        return b.start()

    def conn(self, port, host="127.0.0.1", tls=None, timeout=3.0):
        c = Conn(port, host, tls, timeout)
        self.things.append(c)
        return c

    def client(self, port, host="127.0.0.1", tls=None, v5=False, **kw):
        """A connected client (CONNACK 0 checked)."""
        c = self.conn(port, host, tls)
        rc = c.connect5(**kw) if v5 else c.connect(**kw)[1]
        check(rc == 0, "CONNACK 0x%02x, want 0 (%s)", rc, kw)
        return c

    def paho(self, port, **kw):
        p = PahoTls(port, **kw)
        self.things.append(p)
        return p

    def mosq_sub(self, port, topic, **kw):
        s = MosqSub(port, topic, **kw)
        self.things.append(s)
        return s

    def close(self):
        for t in self.things:
            try:
                t.close()
            except Exception:
                pass


class Suite:
    def __init__(self, title):
        self.title, self.cases = title, []
        self.counts = collections.Counter()
        self.lock = threading.Lock()

    def case(self, name, spec_only=None):
        """spec_only: why the case is skipped on mosquitto (a documented shardmq choice)."""
        def deco(fn):
            self.cases.append((name, fn, spec_only))
            return fn
        return deco

    def _emit(self, status, label, reason="", log=""):
        with self.lock:
            self.counts[status] += 1
            word = {"pass": "ok", "fail": "FAIL", "skip": "skip"}[status]
            print("%s %s%s" % (word, label, ": " + reason if reason else ""), flush=True)
            if log:
                print("\n".join("    " + x for x in log.splitlines()[-25:]), flush=True)

    def _run(self, name, fn, spec_only, shards):
        label = "%s/%s (%s)" % (self.title, name,
                                "mosquitto" if MOSQ else "shards=%d" % shards)
        if MOSQ and spec_only:
            return self._emit("skip", label, "spec-only: " + spec_only)
        x = X(shards)
        status, reason = "pass", ""
        try:
            PKI.make()
            fn(x)
        except h.Skip as e:
            status, reason = "skip", str(e)
        except Exception as e:
            status, reason = "fail", h.describe(e)
        finally:
            x.close()
        log = ""
        for b in x.brokers:
            died = b.proc is not None and not b.alive()
            rc = b.stop()
            if status != "fail" and died:
                status, reason = "fail", "broker died during the test (status %s)" % rc
            elif status != "fail" and not MOSQ and rc is not None and (b.killed or rc != 0):
                status, reason = "fail", "broker exit status %s on SIGTERM (killed: %s)" % (
                    rc, b.killed)
            if status == "fail":
                log += b.log()
        self._emit(status, label, reason, log)
        for b in x.brokers:
            b.cleanup()

    def main(self):
        filters = sys.argv[1:]
        jobs = [(n, f, s, k) for n, f, s in self.cases for k in ([1] if MOSQ else SHARDS)
                if not filters or any(x in n for x in filters)]
        if not MOSQ and not os.path.exists(h.SHARDMQ_BIN):
            print("FAIL %s: %s not built" % (self.title, h.SHARDMQ_BIN))
            print("0 passed, 1 failed")
            sys.exit(1)
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=h.JOBS) as pool:
                for f in [pool.submit(self._run, *j) for j in jobs]:
                    f.result()
        finally:
            PKI.cleanup()
        c = self.counts
        tail = ", %d skipped" % c["skip"] if c["skip"] else ""
        print("%d passed, %d failed%s" % (c["pass"], c["fail"], tail), flush=True)
        sys.exit(1 if c["fail"] else 0)


def roundtrip(x, sub_port, pub_port, topic=None, sub_kw=None, pub_kw=None):
    """A subscriber on sub_port gets what a publisher on pub_port sends (both Conn kw)."""
    topic = topic or "rt/" + h.unique()
    s = x.client(sub_port, **(sub_kw or {}))
    eq(s.subscribe([(topic, 1)]), [1], "SUBACK")
    p = x.client(pub_port, **(pub_kw or {}))
    p.publish(topic, b"across", qos=1)
    m = s.recv_msg()
    eq((m.topic, m.payload), (topic, b"across"), "message")


# ---------------------------------------------------------------------------------------------
# Authentication, listeners and signals

t = Suite("40_security")

PW_LISTENER = "listener {p0} 127.0.0.1\npassword_file {pki}/passwd\n"


@t.case("password_right_one_gets_in_and_publishes")
def _(x):
    b = x.broker(PW_LISTENER)
    s = x.client(b.ports[0], user="bob", password="bobpw")
    s.subscribe([("pw/#", 1)])
    rc, out = mosq_pub(b.ports[0], "pw/t", "by alice", user="alice", password="secret")
    eq((rc, out), (0, ""), "mosquitto_pub -u alice -P secret (status, output)")
    m = s.recv_msg()
    eq((m.topic, m.payload), ("pw/t", b"by alice"), "message")


@t.case("password_wrong_one_refused_5")
def _(x):
    b = x.broker(PW_LISTENER)
    s = x.client(b.ports[0], user="bob", password="bobpw")
    s.subscribe([("pw/#", 1)])
    rc, out = mosq_pub(b.ports[0], "pw/t", "nope", user="alice", password="Secret")
    eq(rc, 5, "mosquitto_pub exit status (%s)" % out)
    check("not authorised" in out, "mosquitto_pub says %r, want 'not authorised'", out)
    eq(refused(b.ports[0], user="alice", password="secre"), 5, "3.1.1 CONNACK code")
    eq(refused(b.ports[0], user="alice", password=""), 5, "CONNACK code, empty password")
    eq(refused(b.ports[0], user="alice"), 5, "CONNACK code, no password")
    s.no_msg(0.3)


@t.case("password_wrong_one_refused_0x86_in_v5",
        spec_only="mosquitto 2.0.11 answers a wrong password with 0x87, not 0x86")
def _(x):
    b = x.broker(PW_LISTENER)
    eq(refused(b.ports[0], v5=True, user="alice", password="wrong"), 0x86, "5.0 CONNACK")
    eq(refused(b.ports[0], v5=True, user="mallory", password="secret"), 0x86,
       "5.0 CONNACK, unknown user")
    eq(refused(b.ports[0], v5=True, user="alice", password="secret"), 0, "5.0 CONNACK, right")


@t.case("password_unknown_user_refused")
def _(x):
    b = x.broker(PW_LISTENER)
    rc, out = mosq_pub(b.ports[0], user="mallory", password="secret")
    eq(rc, 5, "mosquitto_pub exit status (%s)" % out)
    eq(refused(b.ports[0], user="", password="secret"), 5, "CONNACK code, empty user name")


@t.case("anonymous_refused_once_a_listener_exists")
def _(x):
    b = x.broker(PW_LISTENER)
    rc, out = mosq_pub(b.ports[0])
    eq(rc, 5, "mosquitto_pub without -u: exit status (%s)" % out)
    eq(refused(b.ports[0]), 5, "3.1.1 CONNACK code")
    eq(refused(b.ports[0], v5=True), 0x87, "5.0 CONNACK code")
    b2 = x.broker("listener {p0} 127.0.0.1\n")          # no password file either
    eq(refused(b2.ports[0]), 5, "3.1.1 CONNACK code, listener and nothing else")


@t.case("allow_anonymous_true_lets_anonymous_in")
def _(x):
    b = x.broker(PW_LISTENER + "allow_anonymous true\n")
    roundtrip(x, b.ports[0], b.ports[0])
    rc, out = mosq_pub(b.ports[0])
    eq((rc, out), (0, ""), "mosquitto_pub without -u (status, output)")
    eq(refused(b.ports[0], user="alice", password="wrong"), 5, "wrong password still refused")
    eq(refused(b.ports[0], user="alice", password="secret"), 0, "right password")


@t.case("allow_anonymous_false_without_password_file_refuses_everyone")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\nallow_anonymous false\n")
    eq(refused(b.ports[0], user="alice", password="secret"), 5, "CONNACK with a user name")
    eq(refused(b.ports[0]), 5, "CONNACK anonymous")
    rc, out = mosq_pub(b.ports[0], user="alice", password="secret")
    eq(rc, 5, "mosquitto_pub -u alice exit status (%s)" % out)


@t.case("no_listener_means_loopback_v4_and_v6_anonymous_allowed",
        spec_only="mosquitto 2 has no way to move its loopback-only port without a listener")
def _(x):
    port = h.free_port()
    b = x.broker("max_keepalive 600\n", extra_args=["-p", str(port)])
    c = x.client(port)                                       # anonymous allowed
    c.ping()
    if has_ipv6_loopback():
        x.client(port, host="::1").ping()
    addr = local_address()
    if addr:
        eq(refused(port, host=addr), None, "connect to %s (not loopback)" % addr)
    check(b.alive(), "broker died")


def local_address():
    """An IPv4 address of this host that is not loopback, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))              # TEST-NET-1: no packet is sent
            a = s.getsockname()[0]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((a, 0))
        return None if a.startswith("127.") else a
    except OSError:
        return None


@t.case("listener_without_address_is_dual_stack")
def _(x):
    if not has_ipv6_loopback():
        raise h.Skip("no IPv6 loopback on this host")
    b = x.broker("listener {p0}\nallow_anonymous true\n")
    v4 = x.client(b.ports[0], host="127.0.0.1")
    v6 = x.client(b.ports[0], host="::1")
    topic = "ds/" + h.unique()
    v6.subscribe([(topic, 1)])
    v4.publish(topic, b"4 to 6", qos=1)
    eq(v6.recv_msg().payload, b"4 to 6", "payload over IPv6")
    addr = local_address()
    if addr:
        x.client(b.ports[0], host=addr).ping()


@t.case("listener_with_ipv4_socket_domain_refuses_ipv6")
def _(x):
    if not has_ipv6_loopback():
        raise h.Skip("no IPv6 loopback on this host")
    b = x.broker("listener {p0}\nsocket_domain ipv4\nallow_anonymous true\n")
    x.client(b.ports[0]).ping()
    eq(refused(b.ports[0], host="::1"), None, "IPv6 connect to an ipv4-only listener")


@t.case("plain_and_tls_listeners_in_one_config")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\nlistener {p1} 127.0.0.1\ncertfile {pki}/server.crt\n"
                 "keyfile {pki}/server.key\nallow_anonymous true\n")
    plain, tls = b.ports[0], b.ports[1]
    roundtrip(x, plain, tls, pub_kw={"tls": tls_ctx()})
    roundtrip(x, tls, plain, sub_kw={"tls": tls_ctx()})
    rc, out = mosq_pub(tls, ca="ca")
    eq((rc, out), (0, ""), "mosquitto_pub --cafile to the TLS listener")
    rc, out = mosq_pub(plain)
    eq((rc, out), (0, ""), "mosquitto_pub to the plain listener")


@t.case("max_connections_per_listener",
        spec_only="mosquitto 2.0.11 admits max_connections + 1 clients (off by one)")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\nmax_connections 2\nlistener {p1} 127.0.0.1\n"
                 "allow_anonymous true\n")
    lim, free = b.ports[:2]
    one, two = x.client(lim), x.client(lim)
    eq(refused(lim), None, "third connection to a listener with max_connections 2")
    for _ in range(4):
        x.client(free).ping()                   # the other listener has no limit
    two.disconnect()
    check(h.wait_until(lambda: refused(lim) == 0, 3.0, 0.1),
          "no room on the limited listener after one client left")
    one.ping()


@t.case("sighup_rereads_password_file_and_keeps_connections",
        spec_only="mosquitto 2.0.11 re-checks connected clients on SIGHUP and drops those whose "
        "password changed")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\npassword_file {dir}/passwd\n",
                 files={"passwd": open(PKI.path("passwd")).read()})
    port = b.ports[0]
    old = x.client(port, user="alice", password="secret")
    old.subscribe([("hup/#", 1)])
    r = run(["mosquitto_passwd", "-b", b.path("passwd"), "alice", "newer"])
    eq(r[0], 0, "mosquitto_passwd: %s" % r[1])
    eq(refused(port, user="alice", password="newer"), 5, "new password before SIGHUP")
    b.hup()
    eq(refused(port, user="alice", password="newer"), 0, "new password after SIGHUP")
    eq(refused(port, user="alice", password="secret"), 5, "old password after SIGHUP")
    eq(refused(port, user="bob", password="bobpw"), 0, "untouched user after SIGHUP")
    x.client(port, user="bob", password="bobpw").publish("hup/x", b"still here", qos=1)
    m = old.recv_msg()
    eq((m.topic, m.payload), ("hup/x", b"still here"), "message to the client connected before")
    old.ping()


@t.case("sighup_with_a_broken_password_file_keeps_the_old_one",
        spec_only="mosquitto 2.0.11 refuses everyone when the password file is gone on SIGHUP")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\npassword_file {dir}/passwd\n",
                 files={"passwd": open(PKI.path("passwd")).read()})
    os.unlink(b.path("passwd"))
    b.hup(ok=False)
    eq(refused(b.ports[0], user="alice", password="secret"), 0, "alice after a failed reload")
    eq(refused(b.ports[0], user="alice", password="x"), 5, "wrong password after it")


@t.case("sighup_allow_anonymous_change_applies",
        spec_only="mosquitto 2.0.11 drops connected anonymous clients when SIGHUP refuses them")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\nallow_anonymous true\n")
    c = x.client(b.ports[0])
    b.write("broker.conf", open(b.conf).read().replace("allow_anonymous true",
                                                       "allow_anonymous false"))
    b.hup()
    eq(refused(b.ports[0]), 5, "anonymous after SIGHUP set allow_anonymous false")
    c.ping()                                    # connected clients stay


@t.case("sigusr1_and_sigusr2_do_not_stop_the_broker")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\nallow_anonymous true\n")
    c = x.client(b.ports[0])
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1):
        b.signal(sig)
        time.sleep(0.15)
        check(b.alive(), "broker gone after %s", sig.name)
        c.ping()
    roundtrip(x, b.ports[0], b.ports[0])


if __name__ == "__main__":
    t.main()
