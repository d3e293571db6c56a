#!/usr/bin/python3
"""03 qos: QoS 0/1/2 handshakes in both directions, exactly-once inbound QoS 2, outbound QoS as
min(publish, granted), and per-publisher order. Offline queues and re-sends are in 05_session.py,
in-flight windows in 08_limits.py.
"""
import os
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("03_qos")


@t.case("qos0_publish_is_not_acknowledged")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("q0/t", 0)])
    pub.send(h.publish_packet("q0/t", b"zero", qos=0))
    pub.ping()
    eq([p for p in pub.inbox], [], "packets besides PINGRESP")
    m = sub.recv_msg()
    eq((m.payload, m.qos, m.dup, m.pid), (b"zero", 0, False, None), "delivery")


@t.case("qos1_inbound_puback_exact_bytes")
def _(x):
    c = x.client()
    c.send(h.publish_packet("q1/t", b"x", qos=1, pid=0x1234))
    p = c.expect(h.PUBACK)
    eq((p.flags, p.body), (0, b"\x12\x34"), "PUBACK")      # [MQTT-4.3.2-2]


@t.case("qos2_inbound_pubrec_pubrel_pubcomp_exact_bytes")
def _(x):
    sub, c = x.client(), x.client()
    sub.subscribe([("q2/t", 2)])
    c.send(h.publish_packet("q2/t", b"x", qos=2, pid=0xBEEF))
    p = c.expect(h.PUBREC)
    eq((p.flags, p.body), (0, b"\xbe\xef"), "PUBREC")       # [MQTT-4.3.3-2]
    c.send(h.ack_packet(h.PUBREL, 0xBEEF))
    p = c.expect(h.PUBCOMP)
    eq((p.flags, p.body), (0, b"\xbe\xef"), "PUBCOMP")
    eq(sub.recv_msg().payload, b"x", "delivered payload")


@t.case("qos1_outbound_publish_then_puback")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("o1/t", 1)])
    pub.publish("o1/t", b"a", qos=1)
    m = sub.recv_msg(ack=False)
    eq((m.qos, m.dup, m.retain), (1, False, False), "QoS, DUP, RETAIN")
    check(m.pid != 0, "packet id 0 on a QoS 1 PUBLISH")       # [MQTT-2.3.1-1]
    sub.send(h.ack_packet(h.PUBACK, m.pid))
    pub.publish("o1/t", b"b", qos=1)
    eq(sub.recv_msg().payload, b"b", "next message")


@t.case("qos2_outbound_publish_pubrec_pubrel_pubcomp")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("o2/t", 2)])
    pub.publish("o2/t", b"a", qos=2)
    m = sub.recv_msg(ack=False)
    eq((m.qos, m.dup), (2, False), "QoS, DUP")
    check(m.pid != 0, "packet id 0 on a QoS 2 PUBLISH")
    sub.send(h.ack_packet(h.PUBREC, m.pid))
    p = sub.expect(h.PUBREL)
    # [MQTT-3.6.1-1] PUBREL flags 0010; same packet id
    eq((p.flags, p.body), (2, struct.pack(">H", m.pid)), "PUBREL")
    sub.send(h.ack_packet(h.PUBCOMP, m.pid))
    pub.publish("o2/t", b"b", qos=2)
    eq(sub.recv_msg().payload, b"b", "next message")
    sub.no_msg(0.3)


@t.case("qos2_inbound_resent_before_pubrel_delivered_once")
def _(x):
    sub, c = x.client(), x.client()
    sub.subscribe([("dup2/t", 2)])
    c.send(h.publish_packet("dup2/t", b"once", qos=2, pid=10))
    c.expect(h.PUBREC, 10)
    c.send(h.publish_packet("dup2/t", b"once", qos=2, pid=10, dup=True))
    c.expect(h.PUBREC, 10)                                  # acknowledged again
    c.send(h.ack_packet(h.PUBREL, 10))
    c.expect(h.PUBCOMP, 10)
    eq(sub.recv_msg().payload, b"once", "payload")
    sub.no_msg(0.5)                                         # [MQTT-4.3.3-2] exactly once
    # After PUBCOMP the id is free again: the same id now carries a new message.
    c.publish("dup2/t", b"again", qos=2, pid=10)
    eq(sub.recv_msg().payload, b"again", "message reusing the id")


@t.case("pubrel_for_unknown_id_gets_pubcomp")
def _(x):
    c = x.client()
    c.send(h.ack_packet(h.PUBREL, 4242))
    p = c.expect(h.PUBCOMP)           # [MQTT-4.3.3-2] respond to PUBREL with PUBCOMP
    eq(p.body, b"\x10\x92", "PUBCOMP packet id")
    c.ping()


@t.case("unsolicited_acks_do_not_hurt_others")
def _(x):
    bad, good = x.client(), x.client()
    good.subscribe([("good/t", 1)])
    for pt in (h.PUBACK, h.PUBREC, h.PUBCOMP):
        bad.send(h.ack_packet(pt, 999))
    good.publish("good/t", b"ok", qos=1)
    eq(good.recv_msg().payload, b"ok", "payload")


@t.case("outbound_qos_is_min_of_publish_and_granted_all_9")
def _(x):
    subs = {}
    for sq in (0, 1, 2):
        subs[sq] = x.client()
        eq(subs[sq].subscribe([("min/#", sq)]), [sq], "granted")
    pub = x.client()
    for pq in (0, 1, 2):
        pub.publish("min/%d" % pq, b"p%d" % pq, qos=pq)
    for sq, c in subs.items():
        got = sorted((m.topic, m.qos) for m in c.recv_msgs(3))
        want = [("min/%d" % pq, min(pq, sq)) for pq in (0, 1, 2)]   # [MQTT-3.8.4-6]
        eq(got, want, "(topic, QoS) for subscription QoS %d" % sq)


@t.case("order_per_publisher_kept_1000_qos1")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("ord/t", 1)])
    n = 1000
    pids = [pub.publish("ord/t", b"%d" % i, qos=1, wait=False) for i in range(n)]
    for pid in pids:
        pub.expect(h.PUBACK, pid, timeout=10)
    got = [int(m.payload) for m in sub.recv_msgs(n, timeout=10)]
    eq(got, list(range(n)), "sequence")                     # [MQTT-4.6.0-6]
    sub.no_msg(0.2)


@t.case("order_per_publisher_kept_qos2_paho")
def _(x):
    sub, pub = x.paho(), x.paho()
    sub.connect_ok()
    pub.connect_ok()
    sub.subscribe([("ord2/#", 2)])
    n = 300
    infos = [pub.publish("ord2/t", b"%d" % i, qos=2, wait=False) for i in range(n)]
    for i in infos:
        i.wait_for_publish(10)
    got = [int(m.payload) for m in sub.recv_n(n, timeout=10)]
    eq(got, list(range(n)), "sequence")


@t.case("order_kept_per_publisher_with_interleaved_publishers")
def _(x):
    sub = x.client()
    sub.subscribe([("mix/#", 1)])
    pubs = [x.client() for _ in range(4)]
    n = 150
    pids = [[p.publish("mix/%d" % k, b"%d" % i, qos=1, wait=False) for k, p in enumerate(pubs)]
            for i in range(n)]
    last = {}
    for m in sub.recv_msgs(4 * n, timeout=10):
        k, i = m.topic, int(m.payload)
        check(last.get(k, -1) == i - 1, "publisher %s: %d after %s", k, i, last.get(k))
        last[k] = i
    for row in pids:
        for p, pid in zip(pubs, row):
            p.expect(h.PUBACK, pid)


if __name__ == "__main__":
    t.main()
