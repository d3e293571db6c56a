#!/usr/bin/python3
"""43 websockets: MQTT over WebSocket listeners (protocol websockets), plain (ws) and over TLS
(wss, certificates made by openssl at run time as in 40_security.py), driven by paho-mqtt 1.6.1
(transport="websockets") and by a byte-level WebSocket client written here (WsConn), which can
split messages into frames of any size, send pings, closes and broken frames.

What a user sees and this checks:
  - a browser-style client on the WebSocket port and a TCP client on the MQTT port talk both
    ways, over ws and over wss; any path is taken; the subprotocol is "mqtt", or "mqttv3.1" for
    an MQTT 3.1 client;
  - a message split into hundreds of frames (and frames split across TCP writes) arrives whole,
    and a big message goes to a WebSocket subscriber whole;
  - a ping is answered with a pong; a close is answered with a close, then the connection ends;
  - a malformed upgrade request gets 400 (426 for a wrong version, 431 past
    websockets_headers_size) and a close; a malformed frame gets a close frame with 1002
    (unmasked), 1003 (text) or 1009 (over max_packet_size); each costs only its own connection,
    with a log line "WebSocket from ... failed: ...", and the broker keeps serving others.

BROKER=mosquitto runs the same cases against /usr/sbin/mosquitto (Debian 12's 2.0.11 has
websockets listeners); cases that check shardmq's documented choices (the exact status codes,
the close codes, the log lines) are spec_only there, and a mosquitto that cannot open a
websockets listener makes every case a skip saying so.

Environment: BROKER, SHARDMQ_BIN / BUILD, SHARDS, JOBS, VERBOSE as in lib/harness.py.
Arguments are case-name substrings.
"""
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sec = importlib.import_module("40_security")
if __name__ == "__main__":
    sec.reexec_with_paho()

import base64  # noqa: E402
import hashlib  # noqa: E402
import queue  # noqa: E402
import select  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402

h = sec.h
check, eq = sec.check, sec.eq
PKI, MOSQ = sec.PKI, sec.MOSQ

t = sec.Suite("43_websockets")

WS = ("listener {p0} 127.0.0.1\n"
      "listener {p1} 127.0.0.1\nprotocol websockets\n"
      "allow_anonymous true\n")
WSS = WS + ("listener {p2} 127.0.0.1\nprotocol websockets\n"
            "certfile {pki}/server.crt\nkeyfile {pki}/server.key\n")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_broker(x, text=WS):
    try:
        return x.broker(text)
    except RuntimeError as e:
        if MOSQ:
            raise h.Skip("this mosquitto cannot open a websockets listener (%s)" % e) from None
        raise


# ---------------------------------------------------------------------------------------------
# A byte-level WebSocket client

def mask(key, data):
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def ws_frame(op, payload=b"", fin=True, masked=True, rsv=0):
    """One client frame (RFC 6455 5.2), masked unless told otherwise."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n, m = len(payload), 0x80 if masked else 0
    if n < 126:
        hdr = bytes([b0, m | n])
    elif n < 65536:
        hdr = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not masked:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + mask(key, payload)


def unframe(buf):
    """One server frame off the front of buf: (fin, opcode, payload, used) or None."""
    if len(buf) < 2:
        return None
    check(not buf[1] & 0x80, "the server sent a masked frame")
    n, at = buf[1] & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack(">H", bytes(buf[2:4]))[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack(">Q", bytes(buf[2:10]))[0], 10
    if len(buf) < at + n:
        return None
    return bool(buf[0] & 0x80), buf[0] & 0x0F, bytes(buf[at:at + n]), at + n


def upgrade_request(port, path="/mqtt", protocols="mqtt", key=None, extra=""):
    key = key or base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
           % (path, port, key))
    if protocols:
        req += "Sec-WebSocket-Protocol: %s\r\n" % protocols
    return (req + extra + "\r\n").encode(), key


def read_response(sock, timeout=3.0):
    """(status, {lower-case header: value}, bytes after the blank line)."""
    data, end = b"", time.monotonic() + timeout
    while b"\r\n\r\n" not in data:
        left = end - time.monotonic()
        check(left > 0 and select.select([sock], [], [], left)[0] or
              (isinstance(sock, ssl.SSLSocket) and sock.pending()),
              "no HTTP response in %.0f s (got %r)", timeout, data)
        d = sock.recv(4096)
        check(d, "closed before an HTTP response (got %r)", data)
        data += d
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, rest


class WsConn(sec.Conn):
    """sec.Conn (MQTT packets, mailbox) over WebSocket: send() frames MQTT bytes (into frames of
    at most `frame` bytes when given), the read side takes binary frames apart; pongs and close
    codes the server sends are kept in .pongs / .closes."""

    def __init__(self, port, tls=None, path="/mqtt", protocols="mqtt", frame=None, extra="",
                 timeout=3.0):
        super().__init__(port, tls=tls, timeout=timeout)
        self.frame = frame
        self.wsbuf = bytearray()
        self.pongs, self.closes = [], []
        req, key = upgrade_request(port, path, protocols, extra=extra)
        self.sock.sendall(req)
        self.status, self.headers, rest = read_response(self.sock)
        eq(self.status, 101, "upgrade status")
        want = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        eq(self.headers.get("sec-websocket-accept"), want, "Sec-WebSocket-Accept")
        self.protocol = self.headers.get("sec-websocket-protocol")
        self.wsbuf += rest

    def send(self, data):
        step = self.frame or max(1, len(data))
        parts = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
        out = b"".join(ws_frame(0x2 if i == 0 else 0x0, p, fin=i == len(parts) - 1)
                       for i, p in enumerate(parts))
        self.sock.sendall(out)

    def send_frame(self, op, payload=b"", **kw):
        self.sock.sendall(ws_frame(op, payload, **kw))

    def _read(self, deadline):
        if self.closed:
            raise h.Closed("connection closed")
        self._take_frames()
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
        left = deadline - time.monotonic()
        if not pending and (left <= 0 or not select.select([self.sock], [], [], left)[0]):
            raise TimeoutError()
        try:
            data = self.sock.recv(65536)
        except ssl.SSLWantReadError:
            return
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            raise h.Closed("connection closed by broker")
        self.wsbuf += data
        self._take_frames()

    def _take_frames(self):
        while True:
            f = unframe(self.wsbuf)
            if not f:
                break
            fin, op, payload, used = f
            del self.wsbuf[:used]
            if op in (0x0, 0x2):
                self.buf += payload
            elif op == 0xA:
                self.pongs.append(payload)
            elif op == 0x8:
                self.closes.append(struct.unpack(">H", payload[:2])[0] if payload else None)
            else:
                raise AssertionError("unexpected frame opcode %d from the server" % op)
        while True:
            p, used = h.parse_packet(self.buf)
            if not p:
                break
            del self.buf[:used]
            self.inbox.append(p)

    def wait_closed(self, timeout=3.0):
        """Read until the broker closes; returns the close codes it sent."""
        end = time.monotonic() + timeout
        try:
            while True:
                self._read(end)
        except h.Closed:
            return self.closes
        except TimeoutError:
            raise AssertionError("the broker did not close the connection in %.0f s (closes "
                                 "%s)" % (timeout, self.closes)) from None


class PahoWs(sec.PahoTls):
    """paho-mqtt 1.6.1 with transport="websockets" (and TLS for wss), made synchronous."""

    def __init__(self, port, tls=False, path="/mqtt"):
        import paho.mqtt.client as mqtt
        self.port, self.v5 = port, False
        self.c = mqtt.Client(client_id=h.unique("pw"), clean_session=True,
                             protocol=mqtt.MQTTv311, transport="websockets")
        self.c.ws_set_options(path=path)
        if tls:
            self.c.tls_set(ca_certs=PKI.path("ca.crt"))
        self.q, self.ev = queue.Queue(), queue.Queue()
        self.c.on_connect = lambda c, u, f, rc, props=None: self.ev.put(("connack", rc))
        self.c.on_subscribe = lambda c, u, mid, granted, props=None: self.ev.put(
            ("suback", list(granted)))
        self.c.on_message = lambda c, u, m: self.q.put(m)


def paho_ws(x, port, **kw):
    p = PahoWs(port, **kw)
    x.things.append(p)
    eq(p.connect(), 0, "paho over WebSocket: CONNACK")
    return p


def ws(x, port, **kw):
    c = WsConn(port, **kw)
    x.things.append(c)
    return c


def ws_client(x, port, **kw):
    c = ws(x, port, **kw)
    c.connect_ok()
    return c


def both_ways(x, tcp_port, ws_port, tls=False):
    """paho on the WebSocket port and a TCP client exchange a message each way."""
    topic = "ws/" + h.unique()
    p = paho_ws(x, ws_port, tls=tls)
    eq(p.subscribe(topic + "/down"), [1], "paho SUBACK")
    tcp = x.client(tcp_port)
    eq(tcp.subscribe([(topic + "/up", 1)]), [1], "TCP SUBACK")
    tcp.publish(topic + "/down", b"to the browser", qos=1)
    m = p.recv()
    eq((m.topic, m.payload), (topic + "/down", b"to the browser"), "message TCP -> ws")
    p.publish(topic + "/up", b"from the browser")
    m = tcp.recv_msg()
    eq((m.topic, m.payload), (topic + "/up", b"from the browser"), "message ws -> TCP")


def still_serving(x, b):
    """Another WebSocket client and a TCP one still get through."""
    topic = "alive/" + h.unique()
    c = ws_client(x, b.ports[1])
    eq(c.subscribe([(topic, 1)]), [1], "SUBACK")
    x.client(b.ports[0]).publish(topic, b"still here", qos=1)
    eq(c.recv_msg().payload, b"still here", "message after the bad connection")


def failure_logged(b, since, words):
    if MOSQ:
        return
    check(b.wait_log("WebSocket from", since, 3.0), "no 'WebSocket from ... failed' log line: %s",
          b.log()[since:][-300:])
    check(words in b.log()[since:], "the log does not say %r: %s", words, b.log()[since:][-300:])


# ---------------------------------------------------------------------------------------------
# Cases

@t.case("paho_over_ws_and_tcp_both_ways")
def _(x):
    b = ws_broker(x)
    both_ways(x, b.ports[0], b.ports[1])


@t.case("paho_over_wss_and_tcp_both_ways")
def _(x):
    b = ws_broker(x, WSS)
    both_ways(x, b.ports[0], b.ports[2], tls=True)


@t.case("wss_port_refuses_plain_ws")
def _(x):
    b = ws_broker(x, WSS)
    with socket.create_connection(("127.0.0.1", b.ports[2]), timeout=3) as s:
        s.sendall(upgrade_request(b.ports[2])[0])
        s.settimeout(3)
        try:
            got = s.recv(100)
        except ConnectionError:
            got = b""
        check(not got.startswith(b"HTTP/1.1 101"), "a plain upgrade on the wss port got %r", got)
    still_serving(x, b)


@t.case("any_path_is_taken")
def _(x):
    b = ws_broker(x)
    for path in ("/", "/mqtt", "/some/deep/path?token=abc"):
        c = ws_client(x, b.ports[1], path=path)
        eq(c.protocol, "mqtt", "subprotocol for %s" % path)
        c.ping()


@t.case("mqttv31_subprotocol_for_an_mqtt31_client")
def _(x):
    b = ws_broker(x)
    c = ws(x, b.ports[1], protocols="mqttv3.1")
    eq(c.protocol, "mqttv3.1", "Sec-WebSocket-Protocol in the 101")
    c.send(h.connect_packet(h.unique(), proto="MQIsdp", level=3))
    eq(c.expect(h.CONNACK).body[1], 0, "MQTT 3.1 CONNACK code")
    c.ping()
    if not MOSQ:    # mosquitto (libwebsockets) takes the client's first; shardmq prefers mqtt
        both = ws(x, b.ports[1], protocols="mqttv3.1, mqtt")
        eq(both.protocol, "mqtt", "mqtt wins when both are offered")


@t.case("big_message_split_into_many_frames_arrives_whole")
def _(x):
    b = ws_broker(x)
    topic = "big/" + h.unique()
    big = bytes((i * 7) & 0xFF for i in range(600000))
    tcp = x.client(b.ports[0])
    eq(tcp.subscribe([(topic + "/up", 1)]), [1], "SUBACK")
    pub = ws_client(x, b.ports[1], frame=1000)           # about 600 frames for one PUBLISH
    pub.publish(topic + "/up", big, qos=1)
    m = tcp.recv_msg(timeout=10)
    eq(len(m.payload), len(big), "payload length ws -> TCP")
    check(m.payload == big, "payload differs ws -> TCP")
    if MOSQ:
        # Debian's mosquitto 2.0.11 sends a big message to a WebSocket client at about 40 KB/s
        # (one libwebsockets write per service-loop turn): 600 KB would take 15 s.
        return
    sub = ws_client(x, b.ports[1])
    eq(sub.subscribe([(topic + "/down", 1)]), [1], "SUBACK")
    tcp.publish(topic + "/down", big, qos=1)
    m = sub.recv_msg(timeout=10)
    check(m.payload == big, "payload differs TCP -> ws (%d bytes)", len(m.payload))


@t.case("frames_split_across_tcp_writes")
def _(x):
    b = ws_broker(x)
    c = ws(x, b.ports[1])
    wire = ws_frame(0x2, h.connect_packet(h.unique())[:7], fin=False)
    wire += ws_frame(0x9, b"between")
    wire += ws_frame(0x0, h.connect_packet(h.unique())[7:])
    # one CONNECT in two fragments with a ping between, dribbled out a few bytes at a time
    for i in range(0, len(wire), 3):
        c.sock.sendall(wire[i:i + 3])
        time.sleep(0.002)
    eq(c.expect(h.CONNACK).body[1], 0, "CONNACK")
    c.ping()
    eq(c.pongs, [b"between"], "pongs")


@t.case("ping_answered_and_close_handshake")
def _(x):
    b = ws_broker(x)
    c = ws_client(x, b.ports[1])
    c.send_frame(0x9, b"ping payload")
    c.ping()                                            # an MQTT round trip after it
    eq(c.pongs, [b"ping payload"], "pong frames")
    c.send_frame(0x8, struct.pack(">H", 1000) + b"bye")
    eq(c.wait_closed(), [1000], "close codes from the broker")
    # after a DISCONNECT the broker closes the connection (MQTT), close frame or not
    d = ws_client(x, b.ports[1])
    d.send(h.packet(0xE0, b""))
    d.send_frame(0x8, struct.pack(">H", 1000))
    check(d.wait_closed() in ([], [1000]), "close codes after DISCONNECT: %s", d.closes)


@t.case("will_is_sent_when_the_websocket_just_closes")
def _(x):
    b = ws_broker(x)
    topic = "will/" + h.unique()
    tcp = x.client(b.ports[0])
    tcp.subscribe([(topic, 1)])
    c = ws(x, b.ports[1])
    c.connect_ok(will=(topic, b"gone", 1, False))
    c.send_frame(0x8, struct.pack(">H", 1001))         # going away, no DISCONNECT
    c.wait_closed()
    eq(tcp.recv_msg().payload, b"gone", "will message")


@t.case("broker_closing_sends_a_close_frame_first",
        spec_only="mosquitto (libwebsockets) may close without a close frame")
def _(x):
    b = ws_broker(x)
    c = ws(x, b.ports[1])
    c.send(h.connect_packet(h.unique(), level=9))      # an unknown protocol level
    eq(c.expect(h.CONNACK).body[1], 1, "CONNACK code (unacceptable protocol version)")
    eq(c.wait_closed(), [1000], "close codes after the refusal")
    d = ws_client(x, b.ports[1])
    d.send(h.packet(0xE0, b""))                         # DISCONNECT
    eq(d.wait_closed(), [1000], "close codes after DISCONNECT")


BAD_UPGRADES = [
    ("no key", lambda p: upgrade_request(p)[0].replace(b"Sec-WebSocket-Key", b"X-Key"), 400),
    ("version 8", lambda p: upgrade_request(p)[0].replace(b"Version: 13", b"Version: 8"), 426),
    ("POST", lambda p: upgrade_request(p)[0].replace(b"GET ", b"POST "), 400),
    ("HTTP/1.0", lambda p: upgrade_request(p)[0].replace(b"HTTP/1.1", b"HTTP/1.0"), 400),
    ("no Upgrade", lambda p: upgrade_request(p)[0].replace(b"Upgrade: websocket\r\n", b""), 400),
    ("other subprotocol", lambda p: upgrade_request(p, protocols="chat")[0], 400),
    ("short key", lambda p: upgrade_request(p, key="c2hvcnQ=")[0], 400),
    ("MQTT CONNECT", lambda p: h.connect_packet("mqtt-on-ws"), 400),
    ("TLS ClientHello", lambda p: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), 400),
    ("huge headers", lambda p: upgrade_request(p, extra="Cookie: %s\r\n" % ("a" * 5000))[0], 431),
]


@t.case("malformed_upgrades_get_4xx_and_cost_one_connection",
        spec_only="the status codes are shardmq's strict parser's")
def _(x):
    b = ws_broker(x)
    watcher = ws_client(x, b.ports[1])
    since = b.log_mark()
    for what, make, status in BAD_UPGRADES:
        with socket.create_connection(("127.0.0.1", b.ports[1]), timeout=3) as s:
            s.sendall(make(b.ports[1]))
            got, hdrs, _ = read_response(s)
            eq(got, status, "status for %s" % what)
            eq(hdrs.get("connection"), "close", "Connection header for %s" % what)
            if status == 426:
                eq(hdrs.get("sec-websocket-version"), "13", "the version we speak")
            s.settimeout(3)
            try:
                while s.recv(4096):
                    pass
            except ConnectionError:
                pass
    failure_logged(b, since, "upgrade request refused")
    watcher.ping()
    still_serving(x, b)


@t.case("half_an_upgrade_then_gone_costs_nothing")
def _(x):
    b = ws_broker(x)
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", b.ports[1]), timeout=3) as s:
            s.sendall(upgrade_request(b.ports[1])[0][:40])
    still_serving(x, b)


@t.case("websockets_headers_size_bounds_the_request",
        spec_only="mosquitto's bound is libwebsockets' buffer, with other answers")
def _(x):
    b = ws_broker(x, WS + "websockets_headers_size 512\n")
    ws(x, b.ports[1], extra="Cookie: %s\r\n" % ("a" * 250))    # fits
    with socket.create_connection(("127.0.0.1", b.ports[1]), timeout=3) as s:
        s.sendall(upgrade_request(b.ports[1], extra="Cookie: %s\r\n" % ("a" * 400))[0])
        eq(read_response(s)[0], 431, "status past websockets_headers_size")


BAD_FRAMES = [
    ("unmasked", lambda: ws_frame(0x2, h.connect_packet("x"), masked=False), 1002),
    ("RSV1 (compression not agreed)", lambda: ws_frame(0x2, h.connect_packet("x"), rsv=4), 1002),
    ("text", lambda: ws_frame(0x1, b"hello"), 1003),
    ("over max_packet_size", lambda: ws_frame(0x2, bytes(20000)), 1009),
    ("unknown opcode", lambda: ws_frame(0x3, b"??"), 1002),
]


@t.case("malformed_frames_get_a_close_code_and_cost_one_connection",
        spec_only="the close codes are RFC 6455's as shardmq applies them")
def _(x):
    b = ws_broker(x, WS + "max_packet_size 10000\n")
    watcher = ws_client(x, b.ports[1])
    since = b.log_mark()
    for what, make, code in BAD_FRAMES:
        c = ws(x, b.ports[1])
        c.sock.sendall(make())
        eq(c.wait_closed(), [code], "close codes for a %s frame" % what)
    failure_logged(b, since, "WebSocket from")
    watcher.ping()
    still_serving(x, b)


@t.case("mqtt_on_the_websocket_port_and_websocket_on_the_mqtt_port_hurt_no_one")
def _(x):
    b = ws_broker(x)
    check(sec.closed_without_connack(b.ports[1], h.connect_packet(h.unique())),
          "MQTT on the WebSocket port was not closed without a CONNACK")
    check(sec.closed_without_connack(b.ports[0], upgrade_request(b.ports[0])[0]),
          "a WebSocket upgrade on the MQTT port was not closed")
    still_serving(x, b)


if __name__ == "__main__":
    t.main()
