#!/usr/bin/python3
"""50 mqtt5: MQTT 5.0 end to end - the behaviours the Eclipse Paho interoperability suite checks
(client_test5.py), written as raw-socket and paho-mqtt 5.0 cases: QoS 2 state across reconnects,
timers on an idle broker (will delay, session expiry), topic aliases both ways, Server Keep
Alive, the client's Maximum Packet Size, Payload Format Indicator, request/response properties
forwarded intact, refused publishes (0x87) and unsupported authentication methods (0x8C).
"""
import os
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402
from mqtt5 import S, U16, U32, ack_reason, connect5, parse_props, props, pub5, sub5  # noqa: E402,F401,E501

t = h.Suite("50_mqtt5")


def raw5(x, cid=None, clean=True, prop=b"", will=None, keepalive=60, want_rc=0):
    """A raw 5.0 client; returns (client, session_present, CONNACK properties)."""
    c = x.raw()
    c.send(connect5(cid or h.unique(), clean, keepalive, prop, will))
    p = c.expect(h.CONNACK)
    eq(p.body[1], want_rc, "CONNACK reason")
    pr, _ = parse_props(p.body[2:])
    return c, bool(p.body[0] & 1), pr


def recv5(c, timeout=None):
    """Next PUBLISH as (topic, payload, qos, pid, props); QoS 1 is acknowledged."""
    p = c.next((h.PUBLISH,), timeout)
    qos = (p.flags >> 1) & 3
    n = struct.unpack(">H", p.body[:2])[0]
    topic, off = p.body[2:2 + n].decode(), 2 + n
    pid = None
    if qos:
        pid, off = struct.unpack(">H", p.body[off:off + 2])[0], off + 2
    pr, payload = parse_props(p.body[off:])
    if qos == 1:
        c.send(h.ack_packet(h.PUBACK, pid))
    return topic, payload, qos, pid, pr


# ---- QoS 2 across reconnects ---------------------------------------------------------------

@t.case("inbound_qos2_pubrel_after_reconnect_completes_once [MQTT-4.3.3-2]")
def _(x):
    obs = x.client()
    obs.subscribe([("q2/t", 2)])
    cid = h.unique()
    c, sp, _ = raw5(x, cid, clean=True, prop=b"\x11" + U32(60))
    c.send(pub5("q2/t", b"once", 2, 7))
    eq(ack_reason(c.expect(h.PUBREC, 7)), 0, "PUBREC reason")
    c.close()                                   # lost before PUBREL
    c, sp, _ = raw5(x, cid, clean=False, prop=b"\x11" + U32(60))
    eq(sp, True, "session present")
    c.send(h.ack_packet(h.PUBREL, 7))
    eq(ack_reason(c.expect(h.PUBCOMP, 7)), 0, "PUBCOMP reason (not 0x92)")
    eq(obs.recv_msg().payload, b"once", "delivered")
    obs.no_msg(0.4)                             # exactly once


# ---- timers on an idle broker --------------------------------------------------------------

@t.case("will_delay_fires_on_an_idle_broker [MQTT-3.1.3-9]")
def _(x):
    obs = x.client(keepalive=0)
    obs.subscribe([("wd/#", 0)])
    c, _, _ = raw5(x, clean=True, keepalive=0, prop=b"\x11" + U32(60),
                   will=("wd/t", b"late", b"\x18" + U32(2)))
    t0 = time.monotonic()
    c.close()
    m = obs.recv_msg(timeout=5)
    took = time.monotonic() - t0
    eq((m.topic, m.payload), ("wd/t", b"late"), "will")
    check(1.8 <= took <= 3.0, "will delay 2 s fired after %.2f s", took)


@t.case("session_expiry_ends_the_session_and_publishes_the_waiting_will [MQTT-3.1.2-23]")
def _(x):
    obs = x.client(keepalive=0)
    obs.subscribe([("se/#", 0)])
    cid = h.unique()
    c, _, _ = raw5(x, cid, keepalive=0, prop=b"\x11" + U32(2),
                   will=("se/t", b"ended", b"\x18" + U32(100)))
    t0 = time.monotonic()
    c.close()
    m = obs.recv_msg(timeout=5)                 # the session end comes first
    took = time.monotonic() - t0
    eq(m.payload, b"ended", "will at session end")
    check(1.8 <= took <= 3.0, "session expiry 2 s ended it after %.2f s", took)
    c, sp, _ = raw5(x, cid, clean=False, prop=b"\x11" + U32(2))
    eq(sp, False, "a late reconnect never resumes an expired session")


@t.case("reconnect_within_session_expiry_resumes")
def _(x):
    cid = h.unique()
    c, _, _ = raw5(x, cid, prop=b"\x11" + U32(3))
    sub5(c, "rs/t", 1)
    c.close()
    time.sleep(1)
    c, sp, _ = raw5(x, cid, clean=False, prop=b"\x11" + U32(3))
    eq(sp, True, "session present within the expiry")


@t.case("persistent_client_expiration_on_an_idle_broker",
        conf={"persistent_client_expiration": 2})
def _(x):
    cid = h.unique()
    c = x.raw()
    c.connect_ok(cid, clean=False, keepalive=0)
    c.close()
    time.sleep(3)
    c = x.raw()
    eq(c.connect(cid, clean=False), (False, 0), "(session present, rc) after expiration")


# ---- topic aliases -------------------------------------------------------------------------

@t.case("inbound_topic_alias_set_then_used [MQTT-3.3.2-12]")
def _(x):
    obs = x.client()
    obs.subscribe([("ta/#", 0)])
    c, _, pr = raw5(x)
    check(pr.get(0x22, [0])[0] >= 1, "CONNACK Topic Alias Maximum: %s", pr.get(0x22))
    c.send(pub5("ta/long/topic/name", b"1", prop=b"\x23" + U16(1)))
    c.send(pub5("", b"2", prop=b"\x23" + U16(1)))
    got = [(m.topic, m.payload) for m in obs.recv_msgs(2)]
    eq(got, [("ta/long/topic/name", b"1"), ("ta/long/topic/name", b"2")], "messages")


@t.case("inbound_topic_alias_unknown_or_too_large_disconnects_0x94")
def _(x):
    for alias in (2, 1000):
        c, _, _ = raw5(x)
        c.send(pub5("" if alias == 2 else "t", b"x", prop=b"\x23" + U16(alias)))
        got = c.wait_closed()
        eq([(p.type, p.body[:1]) for p in got], [(h.DISCONNECT, b"\x94")], "alias %d" % alias)


@t.case("outbound_topic_aliases_when_the_client_allows_them")
def _(x):
    c, _, _ = raw5(x, prop=b"\x22" + U16(4))
    sub5(c, "oa/#", 0)
    pub = x.client()
    for i in range(3):
        pub.publish("oa/a/rather/long/topic", b"%d" % i)
    got = [recv5(c) for _ in range(3)]
    eq(got[0][0], "oa/a/rather/long/topic", "first: the topic")
    alias = got[0][4].get(0x23, [None])[0]
    check(alias is not None and 1 <= alias <= 4, "first: sets an alias (%s)", alias)
    for tp, payload, _, _, pr in got[1:]:
        eq((tp, pr.get(0x23)), ("", [alias]), "later: the alias alone")


# ---- limits --------------------------------------------------------------------------------

@t.case("server_keep_alive_when_max_keepalive_is_lower", conf={"max_keepalive": 10})
def _(x):
    _, _, pr = raw5(x, keepalive=100)
    eq(pr.get(0x13), [10], "Server Keep Alive")


@t.case("client_maximum_packet_size_drops_larger_publishes [MQTT-3.1.2-25]")
def _(x):
    c, _, _ = raw5(x, prop=b"\x27" + U32(64))
    sub5(c, "mp/t", 0)
    pub = x.client()
    pub.publish("mp/t", b"x" * 200)
    pub.publish("mp/t", b"small")
    eq(recv5(c)[1], b"small", "only the message that fits")


@t.case("payload_format_1_with_invalid_utf8_gets_0x99")
def _(x):
    obs = x.client()
    obs.subscribe([("pf/#", 0)])
    c, _, _ = raw5(x)
    c.send(pub5("pf/t", b"\xff\xfe", 1, 3, prop=b"\x01\x01"))
    eq(ack_reason(c.expect(h.PUBACK, 3)), 0x99, "PUBACK reason")
    c.send(pub5("pf/t", "caf\u00e9".encode(), 1, 4, prop=b"\x01\x01"))
    eq(ack_reason(c.expect(h.PUBACK, 4)), 0, "PUBACK reason for valid UTF-8")
    eq(obs.recv_msg().payload, "caf\u00e9".encode(), "only the valid one")
    obs.no_msg(0.3)


@t.case("publish_to_sys_answers_0x87")
def _(x):
    c, _, _ = raw5(x)
    c.send(pub5("$SYS/broker/x", b"1", 1, 5))
    eq(ack_reason(c.expect(h.PUBACK, 5)), 0x87, "PUBACK reason")


@t.case("unsupported_authentication_method_gets_connack_0x8c")
def _(x):
    c = x.raw()
    c.send(connect5(h.unique(), prop=b"\x15" + S("SCRAM-SHA-1")))
    got = c.wait_closed()
    eq([(p.type, p.body[1]) for p in got], [(h.CONNACK, 0x8C)], "CONNACK")


# ---- properties forwarded intact (paho-mqtt 5.0) -------------------------------------------

@t.case("request_response_properties_forwarded_intact_paho5")
def _(x):
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    got = []

    def client(cid):
        c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
        c.on_message = lambda cl, u, m: got.append(m)
        c.connect(h.HOST, x.broker.port, keepalive=30)
        c.loop_start()
        return c
    sub, pub = client(h.unique("s")), client(h.unique("p"))
    try:
        sub.subscribe("rr/#", qos=1)
        time.sleep(0.3)
        pr = Properties(PacketTypes.PUBLISH)
        pr.ResponseTopic = "rr/reply/1"
        pr.CorrelationData = b"\x00\x01corr"
        pr.ContentType = "application/json"
        pr.PayloadFormatIndicator = 1
        pr.UserProperty = [("k", "v"), ("k", "v2")]
        pub.publish("rr/req", b'{"q":1}', qos=1, properties=pr).wait_for_publish()
        check(h.wait_until(lambda: got, 3), "no message")
        m = got[0].properties
        eq((m.ResponseTopic, m.CorrelationData, m.ContentType, m.PayloadFormatIndicator),
           ("rr/reply/1", b"\x00\x01corr", "application/json", 1), "properties")
        eq(m.UserProperty, [("k", "v"), ("k", "v2")], "user properties in order")
    finally:
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()


if __name__ == "__main__":
    t.main()
