#!/usr/bin/python3
"""01 connect: CONNECT first and once, CONNACK return codes, MQTT 3.1 (MQIsdp) clients.

Each case starts its own broker (harness.Suite); raw sockets check the bytes, paho checks that a
real 3.1 client works.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("01_connect")


@t.case("v311_connack_accepted_exact_bytes")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), clean=True))
    p = c.expect(h.CONNACK)
    # [MQTT-3.2.2-1] clean session 1 -> session present 0; return code 0
    eq((p.flags, p.body), (0, b"\x00\x00"), "CONNACK flags/body")
    c.ping()


@t.case("v31_mqisdp_level3_accepted_and_usable")
def _(x):
    c = x.raw()
    eq(c.connect(h.unique(), proto="MQIsdp", level=3), (False, 0), "(session present, rc)")
    eq(c.subscribe([("v31/t", 1)]), [1], "granted")
    c.publish("v31/t", b"hello", qos=1)
    m = c.recv_msg()
    eq((m.topic, m.payload, m.qos), ("v31/t", b"hello", 1), "message")


@t.case("paho_mqttv31_client_subscribes_and_receives")
def _(x):
    import paho.mqtt.client as mqtt
    sub = x.paho(proto=mqtt.MQTTv31)
    eq(sub.connect_ok(), 0, "session present")
    eq(sub.subscribe([("p31/#", 2)]), [2], "granted")
    pub = x.paho()
    pub.connect_ok()
    for q in (0, 1, 2):
        pub.publish("p31/q%d" % q, b"m%d" % q, qos=q)
    got = sorted((m.topic, m.payload, m.qos) for m in sub.recv_n(3))
    eq(got, [("p31/q0", b"m0", 0), ("p31/q1", b"m1", 1), ("p31/q2", b"m2", 2)], "messages")


@t.case("protocol_level_6_gets_0x01_then_close")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), level=6))
    got = c.wait_closed()
    # [MQTT-3.1.2-2] CONNACK 0x01 unacceptable protocol level, then disconnect
    eq([(p.type, p.body[1:2]) for p in got], [(h.CONNACK, b"\x01")], "packets before close")


@t.case("zero_length_id_clean0_gets_0x02_then_close")
def _(x):
    c = x.raw()
    c.send(h.connect_packet("", clean=False))
    got = c.wait_closed()
    # [MQTT-3.1.3-8] identifier rejected; [MQTT-3.2.2-5] close after a non-zero CONNACK
    eq([(p.type, p.body) for p in got], [(h.CONNACK, b"\x00\x02")], "packets before close")


@t.case("v31_empty_id_gets_0x02_then_close")
def _(x):
    c = x.raw()
    c.send(h.connect_packet("", clean=True, proto="MQIsdp", level=3))
    got = c.wait_closed()
    # MQTT 3.1: client id must be 1-23 characters, otherwise 0x02 identifier rejected
    eq([(p.type, p.body) for p in got], [(h.CONNACK, b"\x00\x02")], "packets before close")


@t.case("zero_length_id_clean1_accepted_and_usable")
def _(x):
    # [MQTT-3.1.3-6] the server assigns an id; two such clients must not take each other over
    a, b = x.raw(), x.raw()
    eq(a.connect("", clean=True), (False, 0), "a (session present, rc)")
    eq(b.connect("", clean=True), (False, 0), "b (session present, rc)")
    for c in (a, b):
        eq(c.subscribe([("anon/t", 1)]), [1], "granted")
    a.publish("anon/t", b"x", qos=1)
    for c in (a, b):
        eq(c.recv_msg().payload, b"x", "payload")
    check(a.is_open() and b.is_open(), "an anonymous client was disconnected")


@t.case("second_connect_closes_connection")
def _(x):
    c = x.client()
    c.send(h.connect_packet(h.unique()))
    c.wait_closed()     # [MQTT-3.1.0-2]


@t.case("publish_before_connect_closes")
def _(x):
    c = x.raw()
    c.send(h.publish_packet("early/t", b"x", qos=0))
    got = c.wait_closed()    # [MQTT-3.1.0-1]
    eq(got, [], "packets before close")


@t.case("subscribe_before_connect_closes")
def _(x):
    obs = x.client()
    obs.subscribe([("early/#", 0)])
    c = x.raw()
    c.send(h.subscribe_packet(1, [("early/#", 0)]))
    eq(c.wait_closed(), [], "packets before close")
    obs.ping()


@t.case("pingreq_before_connect_closes")
def _(x):
    c = x.raw()
    c.send(h.PINGREQ_PACKET)
    eq(c.wait_closed(), [], "packets before close")


@t.case("connect_reserved_flag_closes")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), flags=0x03))   # [MQTT-3.1.2-3] bit 0 reserved
    check(not any(p.type == h.CONNACK and p.body[1] == 0 for p in c.wait_closed()),
          "accepted a CONNECT with the reserved flag set")


@t.case("will_qos_without_will_flag_closes")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), flags=0x02 | 0x08))   # [MQTT-3.1.2-13]
    check(not any(p.type == h.CONNACK and p.body[1] == 0 for p in c.wait_closed()),
          "accepted will QoS 1 without the will flag")


@t.case("will_retain_without_will_flag_closes")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), flags=0x02 | 0x20))   # [MQTT-3.1.2-15]
    check(not any(p.type == h.CONNACK and p.body[1] == 0 for p in c.wait_closed()),
          "accepted will retain without the will flag")


@t.case("will_qos_3_closes")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), will=("w/t", b"w", 3, False)))   # [MQTT-3.1.2-14]
    check(not any(p.type == h.CONNACK and p.body[1] == 0 for p in c.wait_closed()),
          "accepted will QoS 3")


@t.case("unknown_protocol_name_not_accepted")
def _(x):
    c = x.raw()
    c.send(h.connect_packet(h.unique(), proto="MQTX", level=4))
    # [MQTT-3.1.2-1] the server may close or answer otherwise, but must not accept it as MQTT
    check(not any(p.type == h.CONNACK and p.body[1] == 0 for p in c.wait_closed()),
          "accepted protocol name MQTX")


@t.case("truncated_connect_closes")
def _(x):
    c = x.raw()
    full = h.connect_packet(h.unique())
    body = full[2:-4]      # client id claims more bytes than the remaining length holds
    c.send(bytes([0x10]) + h.varint(len(body)) + body)
    check(not any(p.type == h.CONNACK and p.body[1] == 0 for p in c.wait_closed()),
          "accepted a truncated CONNECT")


@t.case("username_and_password_accepted_when_anonymous_allowed")
def _(x):
    c = x.raw()
    eq(c.connect(h.unique(), user="alice", password=b"secret"), (False, 0), "(sp, rc)")
    c.ping()


@t.case("persistent_session_first_connect_session_present_0")
def _(x):
    c = x.raw()
    eq(c.connect(h.unique(), clean=False), (False, 0), "(session present, rc)")  # [MQTT-3.2.2-3]


@t.case("multibyte_utf8_client_id_accepted")
def _(x):
    c = x.raw()
    eq(c.connect("cl\u00e9-\u4e2d-" + h.unique()), (False, 0), "(session present, rc)")
    c.ping()


@t.case("many_clients_connect_at_once")
def _(x):
    cs = [x.raw() for _ in range(40)]
    for c in cs:
        c.send(h.connect_packet(h.unique()))
    for c in cs:
        eq(c.expect(h.CONNACK).body, b"\x00\x00", "CONNACK")
    for c in cs:
        c.ping()


@t.case("sigterm_with_connected_clients_exits_0")
def _(x):
    cs = [x.client(keepalive=0) for _ in range(3)]
    cs[0].subscribe([("st/#", 1)])
    cs[1].publish("st/a", b"x", qos=1)
    rc, killed = x.stop_broker()
    check(not killed, "broker still running 3 s after SIGTERM (killed)")
    eq(rc, 0, "exit status after SIGTERM")
    for c in cs:
        c.wait_closed(timeout=1)


if __name__ == "__main__":
    t.main()
