#!/usr/bin/python3
"""05 session: clean session 0 keeps subscriptions and QoS 1/2 messages while offline, re-sends
unacknowledged messages with DUP on reconnect; clean session 1 starts (and leaves) nothing.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("05_session")

# After a client's DISCONNECT or close, give the broker this long to notice before publishing
# "while it is offline" (3.1.1 has no way to observe it; the tests stay correct if it is late).
SETTLE = 0.3


def persistent(x, cid, subs):
    """Create a persistent session for cid with subs, then go offline with DISCONNECT."""
    c = x.raw()
    eq(c.connect(cid, clean=False), (False, 0), "first connect (session present, rc)")
    c.subscribe(subs)
    c.disconnect()
    time.sleep(SETTLE)


@t.case("offline_qos1_qos2_queued_and_delivered_with_session_present")
def _(x):
    cid = h.unique()
    persistent(x, cid, [("s/#", 2)])
    pub = x.client()
    pub.publish("s/1", b"one", qos=1)
    pub.publish("s/2", b"two", qos=2)
    pub.publish("s/0", b"zero", qos=0)    # may or may not be queued [MQTT-3.1.2-5]
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")   # [MQTT-3.2.2-2]
    got = {(m.topic, m.payload, m.qos) for m in c.drain(0.5)}
    check({("s/1", b"one", 1), ("s/2", b"two", 2)} <= got, "queued messages: %s", sorted(got))
    pub.publish("s/live", b"live", qos=1)     # the subscription is still there
    eq(c.recv_msg().topic, "s/live", "live message after reconnect")


@t.case("offline_queue_keeps_order")
def _(x):
    cid = h.unique()
    persistent(x, cid, [("so/t", 1)])
    pub = x.client()
    for i in range(50):
        pub.publish("so/t", b"%d" % i, qos=1)
    c = x.raw()
    c.connect_ok(cid, clean=False)
    eq([int(m.payload) for m in c.recv_msgs(50)], list(range(50)), "sequence")


@t.case("unacked_qos1_resent_with_dup_and_same_id")
def _(x):
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("dup/t", 1)])
    x.client().publish("dup/t", b"again", qos=1)
    m1 = c.recv_msg(ack=False)
    eq(m1.dup, False, "DUP on first delivery")
    c.close()                                   # no PUBACK, no DISCONNECT
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    m2 = c.recv_msg(ack=False)
    # [MQTT-4.4.0-1] re-sent with DUP=1 [MQTT-3.3.1-1] and the same packet id
    eq((m2.topic, m2.payload, m2.qos, m2.dup, m2.pid),
       ("dup/t", b"again", 1, True, m1.pid), "re-sent PUBLISH")
    c.send(h.ack_packet(h.PUBACK, m2.pid))
    c.disconnect()
    time.sleep(SETTLE)
    c = x.raw()
    c.connect_ok(cid, clean=False)
    c.no_msg(0.5)                               # acknowledged: not sent a third time


@t.case("unacked_qos2_publish_resent_with_dup")
def _(x):
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("dup2/t", 2)])
    x.client().publish("dup2/t", b"q2", qos=2)
    m1 = c.recv_msg(ack=False)
    c.close()
    c = x.raw()
    c.connect_ok(cid, clean=False)
    m2 = c.recv_msg()
    eq((m2.payload, m2.qos, m2.dup, m2.pid), (b"q2", 2, True, m1.pid), "re-sent PUBLISH")
    c.ping()
    c.no_msg(0.3)


@t.case("pubrec_then_reconnect_gets_pubrel_not_publish")
def _(x):
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("rel/t", 2)])
    x.client().publish("rel/t", b"q2", qos=2)
    m = c.recv_msg(ack=False)
    c.send(h.ack_packet(h.PUBREC, m.pid))
    c.expect(h.PUBREL, m.pid)
    c.close()                                   # no PUBCOMP
    c = x.raw()
    c.connect_ok(cid, clean=False)
    p = c.expect(h.PUBREL, m.pid)               # [MQTT-4.4.0-1] PUBREL re-sent
    eq(p.flags, 2, "PUBREL flags")
    c.send(h.ack_packet(h.PUBCOMP, m.pid))
    c.no_msg(0.5)                               # the message itself is not sent again


@t.case("inbound_qos2_completed_after_publisher_reconnects")
def _(x):
    sub = x.client()
    sub.subscribe([("in2/t", 2)])
    cid = h.unique()
    p = x.client(cid, clean=False)
    p.send(h.publish_packet("in2/t", b"once", qos=2, pid=7))
    p.expect(h.PUBREC, 7)
    p.close()                                   # lost before PUBREL
    p = x.raw()
    eq(p.connect(cid, clean=False), (True, 0), "(session present, rc)")
    p.send(h.ack_packet(h.PUBREL, 7))
    p.expect(h.PUBCOMP, 7)
    eq(sub.recv_msg().payload, b"once", "payload")
    sub.no_msg(0.5)                             # exactly once


@t.case("clean_session_1_discards_persistent_session")
def _(x):
    cid = h.unique()
    persistent(x, cid, [("cs/t", 1)])
    pub = x.client()
    pub.publish("cs/t", b"queued", qos=1)
    c = x.raw()
    eq(c.connect(cid, clean=True), (False, 0), "clean connect")   # [MQTT-3.1.2-6]
    c.no_msg(0.4)                               # no queued message, no subscription
    pub.publish("cs/t", b"after", qos=1)
    c.no_msg(0.3)
    c.disconnect()
    time.sleep(SETTLE)
    c = x.raw()
    # the clean session ended with its connection: nothing left to resume
    eq(c.connect(cid, clean=False), (False, 0), "persistent connect after a clean one")
    pub.publish("cs/t", b"later", qos=1)
    c.no_msg(0.3)


@t.case("clean_session_1_state_not_kept_after_disconnect")
def _(x):
    cid = h.unique()
    c = x.client(cid, clean=True)
    c.subscribe([("cl/t", 1)])
    c.disconnect()
    time.sleep(SETTLE)
    x.client().publish("cl/t", b"x", qos=1)
    c = x.raw()
    eq(c.connect(cid, clean=False), (False, 0), "(session present, rc)")
    c.no_msg(0.4)


@t.case("persistent_session_survives_abrupt_close")
def _(x):
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("ab/t", 1)])
    c.close()
    time.sleep(SETTLE)
    x.client().publish("ab/t", b"x", qos=1)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    eq(c.recv_msg().payload, b"x", "payload")


@t.case("paho_persistent_session_receives_missed_messages")
def _(x):
    cid = h.unique("pp")
    a = x.paho(cid=cid, clean=False)
    a.connect_ok()
    a.subscribe([("pps/#", 1)])
    a.disconnect()
    time.sleep(SETTLE)
    pub = x.paho()
    pub.connect_ok()
    for i in range(5):
        pub.publish("pps/t", b"%d" % i, qos=1)
    b = x.paho(cid=cid, clean=False)
    eq(b.connect_ok(), 1, "session present")
    eq([m.payload for m in b.recv_n(5)], [b"%d" % i for i in range(5)], "messages")


if __name__ == "__main__":
    t.main()
