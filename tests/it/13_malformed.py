#!/usr/bin/python3
"""13 malformed: every malformed or forbidden packet closes the connection that sent it, and only
that one. For each packet: a client with a will sends it; the broker must close that connection
without answering, publish the will (a protocol error is not a DISCONNECT [MQTT-3.1.2-8]), deliver
nothing else, and keep serving a well-behaved paho client and a '#' observer. One more case sends
them all, one after another, to a single broker.
"""
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("13_malformed")

P = h.packet
S = h.mqtt_str
PID1 = struct.pack(">H", 1)
PID0 = struct.pack(">H", 0)


def pub_raw(topic_bytes, first=0x30, extra=b""):
    """PUBLISH with an arbitrary (possibly invalid) topic byte string."""
    return P(first, struct.pack(">H", len(topic_bytes)) + topic_bytes + extra)


def connect_raw(cid_bytes, flags=0x02, rest=b""):
    return P(0x10, S("MQTT") + bytes([4, flags]) + b"\x00\x3c" +
             struct.pack(">H", len(cid_bytes)) + cid_bytes + rest)


# (name, spec id, bytes, stage) -- stage "connected": sent after a good CONNECT (client has a
# will); "connect": sent instead of the CONNECT (a non-zero CONNACK before the close is allowed).
CASES = [
    ("reserved_flags_puback", "MQTT-2.2.2-2", b"\x42\x02\x00\x01", "connected"),
    ("reserved_flags_subscribe_0000", "MQTT-3.8.1-1",
     P(0x80, PID1 + S("a") + b"\x00"), "connected"),
    ("reserved_flags_unsubscribe_0000", "MQTT-3.10.1-1", P(0xA0, PID1 + S("a")), "connected"),
    ("reserved_flags_pubrel_0000", "MQTT-3.6.1-1", b"\x60\x02\x00\x01", "connected"),
    ("reserved_flags_pingreq", "MQTT-2.2.2-2", b"\xc1\x00", "connected"),
    ("reserved_flags_disconnect", "MQTT-3.14.1-1", b"\xe1\x00", "connected"),
    ("remaining_length_5_bytes", "MQTT-2.2.3", b"\x30\xff\xff\xff\xff\x01", "connected"),
    ("pingreq_with_body", "3.12.1 length 0", b"\xc0\x01\x00", "connected"),
    ("puback_too_long", "3.4.1 length 2", b"\x40\x03\x00\x01\x00", "connected"),
    ("puback_too_short", "3.4.1 length 2", b"\x40\x01\x00", "connected"),
    ("invalid_utf8_in_topic", "MQTT-1.5.3-1", pub_raw(b"a/\xff\xfe"), "connected"),
    ("utf16_surrogate_in_topic", "MQTT-1.5.3-1", pub_raw(b"a/\xed\xa0\x80"), "connected"),
    ("overlong_utf8_in_topic", "MQTT-1.5.3-1", pub_raw(b"a/\xc0\xaf"), "connected"),
    ("u0000_in_topic", "MQTT-1.5.3-2", pub_raw(b"a/\x00b"), "connected"),
    ("hash_wildcard_in_publish_topic", "MQTT-3.3.2-2", pub_raw(b"a/#"), "connected"),
    ("plus_wildcard_in_publish_topic", "MQTT-3.3.2-2", pub_raw(b"a/+/b"), "connected"),
    ("empty_publish_topic", "MQTT-4.7.3-1", pub_raw(b""), "connected"),
    ("topic_longer_than_packet", "MQTT-2.2.3", P(0x30, b"\x00\x40abc"), "connected"),
    ("publish_qos0_with_dup", "MQTT-3.3.1-2", pub_raw(b"a/b", 0x38, b"x"), "connected"),
    ("publish_qos_3", "MQTT-3.3.1-4", pub_raw(b"a/b", 0x36, PID1 + b"x"), "connected"),
    ("publish_qos1_packet_id_0", "MQTT-2.3.1-1", pub_raw(b"a/b", 0x32, PID0 + b"x"),
     "connected"),
    ("publish_qos2_packet_id_0", "MQTT-2.3.1-1", pub_raw(b"a/b", 0x34, PID0 + b"x"),
     "connected"),
    ("subscribe_no_filters", "MQTT-3.8.3-3", P(0x82, PID1), "connected"),
    ("unsubscribe_no_filters", "MQTT-3.10.3-2", P(0xA2, PID1), "connected"),
    ("subscribe_packet_id_0", "MQTT-2.3.1-1", P(0x82, PID0 + S("a") + b"\x00"), "connected"),
    ("unsubscribe_packet_id_0", "MQTT-2.3.1-1", P(0xA2, PID0 + S("a")), "connected"),
    ("subscribe_qos_3", "MQTT-3.8.3-4", P(0x82, PID1 + S("a") + b"\x03"), "connected"),
    ("subscribe_reserved_option_bits", "MQTT-3.8.3-4", P(0x82, PID1 + S("a") + b"\x41"),
     "connected"),
    ("subscribe_missing_qos_byte", "MQTT-3.8.3-1", P(0x82, PID1 + S("a")), "connected"),
    ("subscribe_invalid_utf8_filter", "MQTT-1.5.3-1",
     P(0x82, PID1 + b"\x00\x02\xc3\x28" + b"\x00"), "connected"),
    ("subscribe_u0000_in_filter", "MQTT-1.5.3-2", P(0x82, PID1 + b"\x00\x03a\x00b\x00"),
     "connected"),
    ("client_sends_connack", "MQTT-4.8.0-1", b"\x20\x02\x00\x00", "connected"),
    ("client_sends_suback", "MQTT-4.8.0-1", b"\x90\x03\x00\x01\x00", "connected"),
    ("client_sends_unsuback", "MQTT-4.8.0-1", b"\xb0\x02\x00\x01", "connected"),
    ("client_sends_pingresp", "MQTT-4.8.0-1", b"\xd0\x00", "connected"),
    ("packet_type_0", "MQTT-2.2.1", b"\x00\x00", "connected"),
    ("packet_type_15", "MQTT-2.2.1", b"\xf0\x00", "connected"),
    ("password_without_username", "MQTT-3.1.2-22",
     h.connect_packet(h.unique(), password=b"pw"), "connect"),
    ("invalid_utf8_client_id", "MQTT-1.5.3-1", connect_raw(b"id\xff"), "connect"),
    ("u0000_in_client_id", "MQTT-1.5.3-2", connect_raw(b"id\x00x"), "connect"),
    ("invalid_utf8_will_topic", "MQTT-3.1.3-10",
     connect_raw(b"wid", 0x06, b"\x00\x02\xc3\x28" + S("p")), "connect"),
    ("wildcard_in_will_topic", "MQTT-4.7.1-1",
     h.connect_packet(h.unique(), will=("w/#", b"x", 0, False)), "connect"),
    ("connect_trailing_bytes", "3.1 payload",
     P(0x10, h.connect_packet(h.unique())[2:] + b"zz"), "connect"),
    ("invalid_utf8_username", "MQTT-3.1.3-11",
     connect_raw(b"uid", 0x82, b"\x00\x02\xc3\x28"), "connect"),
    ("connect_missing_client_id", "MQTT-3.1.3-3",
     P(0x10, S("MQTT") + bytes([4, 2]) + b"\x00\x3c"), "connect"),
    # control characters U+0001..U+001F, U+007F..U+009F in names [MQTT-1.5.3-3 / 1.5.4-3]
    ("tab_in_topic", "MQTT-1.5.3-3", pub_raw(b"a/\tb"), "connected"),
    ("newline_in_topic", "MQTT-1.5.3-3", pub_raw(b"a/\nb"), "connected"),
    ("del_in_topic", "MQTT-1.5.3-3", pub_raw(b"a/\x7fb"), "connected"),
    ("c1_control_in_topic", "MQTT-1.5.3-3", pub_raw(b"a/\xc2\x85b"), "connected"),
    ("control_char_in_filter", "MQTT-1.5.3-3", P(0x82, PID1 + S("a/\x01") + b"\x00"),
     "connected"),
    ("control_char_in_unsubscribe_filter", "MQTT-1.5.3-3", P(0xA2, PID1 + S("a/\x1f")),
     "connected"),
    ("newline_in_client_id", "MQTT-1.5.3-3", connect_raw(b"id\nfake log line"), "connect"),
    ("escape_in_will_topic", "MQTT-1.5.3-3", connect_raw(b"wid", 0x06, S("w/\x1b[2J") + S("p")),
     "connect"),
    ("del_in_username", "MQTT-1.5.3-3", connect_raw(b"uid", 0x82, S("us\x7fer")), "connect"),
    # zero-length topic filters, anywhere in the list [MQTT-4.7.3-1]
    ("subscribe_zero_length_filter", "MQTT-4.7.3-1", P(0x82, PID1 + S("") + b"\x00"),
     "connected"),
    ("subscribe_later_zero_length_filter", "MQTT-4.7.3-1",
     P(0x82, PID1 + S("a") + b"\x00" + S("") + b"\x00"), "connected"),
    ("unsubscribe_later_zero_length_filter", "MQTT-4.7.3-1", P(0xA2, PID1 + S("a") + S("")),
     "connected"),
]

OVERSIZE = ("oversize_publish", "max_packet_size", h.publish_packet("a/b", b"x" * 9000),
            "connected")


def good_client(x):
    """A paho client that publishes to itself; roundtrip() proves it still works."""
    g = x.paho()
    g.connect_ok()
    g.subscribe([("good/" + g.cid, 1)])

    def roundtrip(tag):
        g.publish("good/" + g.cid, tag.encode(), qos=1)
        m = g.recv()
        eq(m.payload, tag.encode(), "good client's message")
        check(g.lost is None, "good client was disconnected (%s)", g.lost)
    roundtrip("before")
    return roundtrip


def observer(x):
    o = x.client()
    o.subscribe([("#", 1)])
    return o


def send_bad(x, obs, name, data, stage):
    """Send one bad packet; check the close, the will, and that nothing else was delivered."""
    c = x.raw()
    will_topic = "malwill/" + name
    if stage == "connected":
        c.connect_ok(h.unique(), will=(will_topic, b"bad", 1, False))
    try:
        c.send(data)
    except OSError:
        pass
    got = c.wait_closed(timeout=3)
    if stage == "connect":
        got = [p for p in got if not (p.type == h.CONNACK and p.body[1] != 0)]
    eq(got, [], "%s: packets sent before closing" % name)
    got = []
    while stage == "connected" and will_topic not in [m.topic for m in got]:
        got.append(obs.recv_msg())
    got += obs.drain(0.2)
    got = [(m.topic, m.payload) for m in got if not m.topic.startswith("good/")]
    want = [(will_topic, b"bad")] if stage == "connected" else []
    eq(got, want, "%s: messages the '#' observer got" % name)


def register(case, conf=None, spec_only=None):
    name, spec, data, stage = case

    @t.case("%s_closes [%s]" % (name, spec), conf=conf, spec_only=spec_only)
    def _(x):
        roundtrip = good_client(x)
        obs = observer(x)
        send_bad(x, obs, name, data, stage)
        roundtrip("after")
        obs.ping()


# mosquitto 2.0.11 keeps these connections open; the 3.1.1 spec says close.
LENIENT = "mosquitto 2.0.11 accepts it and keeps the connection"
SPEC_ONLY = {
    "reserved_flags_puback": LENIENT,
    "reserved_flags_pingreq": LENIENT + " (and answers PINGRESP)",
    "pingreq_with_body": LENIENT + " (and answers PINGRESP)",
    "puback_too_long": LENIENT,
    "client_sends_suback": LENIENT + " (it parses SUBACK for its bridges)",
    "client_sends_unsuback": LENIENT + " (it parses UNSUBACK for its bridges)",
    "client_sends_pingresp": LENIENT,
    "publish_qos0_with_dup": LENIENT + " and delivers the message",
}

for _c in CASES:
    register(_c, spec_only=SPEC_ONLY.get(_c[0]))
register(OVERSIZE, conf={"max_packet_size": 4096})


def proto_connect(name_bytes, level=4):
    return P(0x10, struct.pack(">H", len(name_bytes)) + name_bytes + bytes([level, 2]) +
             b"\x00\x3c" + S(h.unique()))


@t.case("wrong_protocol_names_close_without_connack [MQTT-3.1.2-1]")
def _(x):
    for name in (b"", b"MQT", b"MQTTT", b"MQTX", b"mqtt", b"MQIsdpX", b"MQIs"):
        c = x.raw()
        c.send(proto_connect(name))
        eq(c.wait_closed(timeout=3), [], "packets for protocol name %r" % name)


@t.case("right_name_wrong_level_gets_connack_1 [MQTT-3.1.2-2]")
def _(x):
    c = x.raw()
    c.send(proto_connect(b"MQTT", 6))
    got = c.wait_closed(timeout=3)
    eq([(p.type, p.body) for p in got], [(h.CONNACK, b"\x00\x01")], "CONNACK")


@t.case("first_byte_not_connect_closes_at_once [MQTT-3.1.0-1]")
def _(x):
    import time
    for junk in (b"G", b"\x20", b"\x30\x7f", b"\x16\x03\x01"):    # HTTP, CONNACK, PUBLISH, TLS
        c = x.raw()
        t0 = time.monotonic()
        c.send(junk)
        eq(c.wait_closed(timeout=2), [], "packets after %r" % junk)
        check(time.monotonic() - t0 < 1.0, "closed after %.2f s, not at once",
              time.monotonic() - t0)


@t.case("mqtt31_one_character_client_id_accepted")
def _(x):
    c = x.raw()
    eq(c.connect("z", proto="MQIsdp", level=3), (False, 0), "(session present, rc)")
    c.ping()


@t.case("pubcomp_answering_a_qos1_publish_closes [MQTT-4.3.2]")
def _(x):
    sub = x.client()
    sub.subscribe([("wk/t", 1)])
    x.client().publish("wk/t", b"x", qos=1)
    m = sub.recv_msg(ack=False)
    sub.send(h.ack_packet(h.PUBCOMP, m.pid))
    sub.wait_closed(timeout=3)


@t.case("puback_answering_a_qos2_publish_closes [MQTT-4.3.3]")
def _(x):
    sub = x.client()
    sub.subscribe([("wk/t", 2)])
    x.client().publish("wk/t", b"x", qos=2)
    m = sub.recv_msg(ack=False)
    sub.send(h.ack_packet(h.PUBACK, m.pid))
    sub.wait_closed(timeout=3)


@t.case("all_in_sequence_on_one_broker", conf={"max_packet_size": 4096})
def _(x):
    roundtrip = good_client(x)
    obs = observer(x)
    for name, spec, data, stage in CASES + [OVERSIZE]:
        if h.KIND == "mosquitto" and name in SPEC_ONLY:
            continue
        send_bad(x, obs, name, data, stage)
        roundtrip(name)


if __name__ == "__main__":
    t.main()
