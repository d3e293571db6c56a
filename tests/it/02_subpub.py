#!/usr/bin/python3
"""02 subpub: SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, topic matching, '$' topics, overlapping
subscriptions, fan-out. QoS handshakes are in 03_qos.py, retained messages in 04_retain.py.
"""
import os
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("02_subpub")


@t.case("suback_grants_requested_qos_0_1_2")
def _(x):
    c = x.client()
    c.send(h.subscribe_packet(4321, [("g/0", 0), ("g/1", 1), ("g/2", 2)]))
    p = c.expect(h.SUBACK)
    # [MQTT-3.8.4-2] same packet id; [MQTT-3.9.3-1] one code per filter, in order
    eq((p.flags, p.body), (0, b"\x10\xe1\x00\x01\x02"), "SUBACK flags/body")


@t.case("suback_0x80_for_invalid_filter_and_connection_stays",
        spec_only="mosquitto closes the connection on an invalid filter (allowed by "
                  "[MQTT-4.8.0-1]); shardmq answers return code 0x80 (3.1.1 section 3.9.3)")
def _(x):
    c = x.client()
    subs = [("ok/a", 1), ("a/#/b", 1), ("a/b#", 0), ("a+/b", 2), ("ok/b", 2)]
    eq(c.subscribe(subs), [1, 0x80, 0x80, 0x80, 2], "granted")
    c.publish("ok/a", b"1", qos=1)
    eq(c.recv_msg().topic, "ok/a", "topic")


@t.case("invalid_filters_never_granted")
def _(x):
    # Either answer is allowed by 3.1.1: a 0x80 failure code or closing the connection
    # [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.7.3-1] (empty filter).
    for f in ("a/#/b", "a/b#", "a+/b", "+a", "#/", ""):
        c = x.client()
        c.send(h.subscribe_packet(9, [(f, 1)]))
        try:
            p = c.expect(h.SUBACK, 9)
            eq(p.body[2:], b"\x80", "return code for %r" % f)
        except h.Closed:
            pass
    x.client().ping()


@t.case("bom_in_topic_is_not_stripped")
def _(x):
    # [MQTT-1.5.3-3] U+FEFF is a character like any other: not skipped or stripped
    plain, bom, pub = x.client(), x.client(), x.client()
    plain.subscribe([("bom/t", 1)])
    bom.subscribe([("\ufeffbom/t", 1)])
    pub.publish("\ufeffbom/t", b"b", qos=1)
    pub.publish("bom/t", b"p", qos=1)
    eq([(m.topic, m.payload) for m in bom.drain(0.3)], [("\ufeffbom/t", b"b")], "BOM filter")
    eq([(m.topic, m.payload) for m in plain.drain(0.1)], [("bom/t", b"p")], "plain filter")


@t.case("granted_qos_capped_by_max_qos", conf={"max_qos": 1})
def _(x):
    c = x.client()
    eq(c.subscribe([("cap/2", 2), ("cap/1", 1), ("cap/0", 0)]), [1, 1, 0], "granted")
    c.publish("cap/2", b"x", qos=1)
    eq(c.recv_msg().qos, 1, "delivered QoS")


@t.case("unsubscribe_acks_same_id_and_stops_delivery")
def _(x):
    c = x.client()
    c.subscribe([("u/t", 1)])
    c.publish("u/t", b"1", qos=1)
    eq(c.recv_msg().payload, b"1", "before unsubscribe")
    c.send(h.unsubscribe_packet(777, ["u/t"]))
    p = c.expect(h.UNSUBACK)
    eq((p.flags, p.body), (0, b"\x03\x09"), "UNSUBACK")      # [MQTT-3.10.4-4]
    c.publish("u/t", b"2", qos=1)
    c.no_msg(0.5)                                          # [MQTT-3.10.4-1]


@t.case("unsubscribe_unknown_filter_still_unsuback")
def _(x):
    c = x.client()
    c.unsubscribe(["never/subscribed"])                    # [MQTT-3.10.4-5]
    c.ping()


@t.case("unsubscribe_one_filter_keeps_the_other")
def _(x):
    c = x.client()
    c.subscribe([("k/a", 0), ("k/b", 0)])
    c.unsubscribe(["k/a"])
    c.publish("k/a", b"a")
    c.publish("k/b", b"b")
    eq(c.recv_msg().topic, "k/b", "topic")
    c.no_msg(0.3)


@t.case("resubscribe_replaces_qos")
def _(x):
    sub, pub = x.client(), x.client()
    eq(sub.subscribe([("r/t", 0)]), [0], "first grant")
    eq(sub.subscribe([("r/t", 2)]), [2], "second grant")   # [MQTT-3.8.4-3] replaces
    pub.publish("r/t", b"x", qos=2)
    m = sub.recv_msg()
    eq((m.payload, m.qos), (b"x", 2), "payload, QoS")
    sub.no_msg(0.4)                                        # one subscription, one copy
    eq(sub.subscribe([("r/t", 1)]), [1], "third grant")
    pub.publish("r/t", b"y", qos=2)
    eq(sub.recv_msg().qos, 1, "QoS after downgrade")


# (filter, topic, matches) -- [MQTT-4.7.1-1..3], [MQTT-4.7.3-1..4] and the spec's examples
MATCH_TABLE = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/tennis/player1/#", "sport/tennis/player2", False),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+", "finance", True),
    ("a/+/c", "a//c", True),
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/b/d", False),
    ("Case/t", "case/t", False),
    ("Case/t", "Case/t", True),
    ("a/b", "a/b/", False),
    ("a/b/", "a/b/", True),
    ("sp ace/\u00e9t\u00e9", "sp ace/\u00e9t\u00e9", True),
    ("sp ace/\u00e9t\u00e9", "sp ace/ete", False),
]


@t.case("topic_matching_table")
def _(x):
    # One subscriber per filter, every topic published once: each subscriber must get exactly
    # the topics its filter matches (subscribers land on different shards).
    topics = sorted({tp for _, tp, _ in MATCH_TABLE})
    filters = sorted({f for f, _, _ in MATCH_TABLE})
    subs = {}
    for f in filters:
        subs[f] = x.client()
        eq(subs[f].subscribe([(f, 1)]), [1], "granted for %r" % f)
    pub = x.client()
    for tp in topics:
        pub.publish(tp, tp.encode(), qos=1)
    for f, c in subs.items():
        c.subscribe([("end/marker", 1)])
    pub.publish("end/marker", b"", qos=1)
    for f, c in subs.items():
        got = set()
        while True:
            m = c.recv_msg()
            if m.topic == "end/marker":
                break
            got.add(m.topic)
        want = {tp for ff, tp, ok in MATCH_TABLE if ff == f and ok}
        unwanted = {tp for ff, tp, ok in MATCH_TABLE if ff == f and not ok}
        check(want <= got, "filter %r missed %s", f, sorted(want - got))
        check(not (unwanted & got), "filter %r wrongly got %s", f, sorted(unwanted & got))


@t.case("dollar_topics_not_matched_by_leading_wildcards")
def _(x):
    hashsub, plussub, dollarsub, explicit = x.client(), x.client(), x.client(), x.client()
    hashsub.subscribe([("#", 1)])
    plussub.subscribe([("+/bar", 1), ("+/+", 1)])
    dollarsub.subscribe([("$foo/#", 1)])
    explicit.subscribe([("$foo/+", 1)])
    pub = x.client()
    pub.publish("$foo/bar", b"d", qos=1)    # still acknowledged, not delivered
    pub.publish("foo/bar", b"n", qos=1)
    for c in (dollarsub, explicit):
        m = c.recv_msg()
        eq((m.topic, m.payload), ("$foo/bar", b"d"), "explicit $ filter")
    # [MQTT-4.7.2-1] '#' and '+/...' must not match topics starting with '$'
    eq(hashsub.recv_msg().topic, "foo/bar", "first message for '#'")
    eq(plussub.recv_msg().topic, "foo/bar", "first message for +/bar, +/+")
    hashsub.no_msg(0.3)
    for m in plussub.drain(0.1):       # a second copy for the overlap is allowed
        eq(m.topic, "foo/bar", "extra message for +/bar, +/+")


@t.case("client_publish_to_sys_not_delivered")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("$SYS/#", 1)])
    pub.publish("$SYS/forged/" + h.unique(), b"fake", qos=1)    # acknowledged, not delivered
    pub.publish("$SYS/forged/x", b"fake0", qos=0)
    pub.ping()
    for m in sub.drain(0.6):            # the broker's own $SYS messages are fine
        check(not m.topic.startswith("$SYS/forged"), "client's $SYS publish delivered: %r", m)


@t.case("overlapping_subscriptions_one_copy_at_max_qos",
        spec_only="mosquitto 2.0.11 sends one copy at the QoS of one matching subscription "
                  "(QoS 0 here), not the maximum [MQTT-3.3.5-1]")
def _(x):
    # [MQTT-3.3.5-1] the copy goes at the maximum QoS of the matching subscriptions; shardmq
    # sends exactly one copy (3.1.1 would allow one per subscription)
    for sub_order in ([("ov/#", 1), ("ov/+", 2), ("ov/b", 0)],
                      [("ov/b", 0), ("ov/#", 1), ("ov/+", 2)]):
        sub, pub = x.client(), x.client()
        eq(sub.subscribe(sub_order), [q for _, q in sub_order], "granted")
        pub.publish("ov/b", b"x", qos=2)
        m = sub.recv_msg()
        eq((m.topic, m.payload, m.qos), ("ov/b", b"x", 2), "the copy")
        sub.no_msg(0.4)
        pub.publish("ov/b", b"y", qos=1)                 # min(1, max granted 2) = 1
        eq(sub.recv_msg().qos, 1, "QoS of a QoS 1 publish")
        sub.no_msg(0.2)


@t.case("publisher_receives_own_message")
def _(x):
    c = x.client()
    c.subscribe([("self/t", 0)])
    c.publish("self/t", b"me")
    eq(c.recv_msg().payload, b"me", "payload")


@t.case("publish_right_after_suback_reaches_the_new_subscriber", shards=[2, 4])
def _(x):
    # A SUBACK promises the subscription is in place for every publisher, also one whose
    # connection lives on another shard (the subscriber's shard tells the others through their
    # inboxes). Each round subscribes to a new topic and publishes to it from 8 clients the
    # moment the SUBACK is in; some of them sit on another shard than the subscriber (all 8 on
    # its shard: 1 run in 2^8 at 2 shards). Flooding clients keep every shard busy, which
    # widens the window a SUBACK sent too early would open.
    stop = threading.Event()

    def flood(c, i):
        burst = h.publish_packet("nobody/%d" % i, b"x" * 16) * 2000
        try:
            while not stop.is_set():
                c.send(burst)
        except OSError:
            pass

    floods = [threading.Thread(target=flood, args=(x.client(), i), daemon=True)
              for i in range(4)]
    sub = x.client()
    pubs = [x.client() for _ in range(8)]
    for f in floods:
        f.start()
    lost = []
    try:
        for r in range(200):
            topic = "vis/%d" % r
            sub.send(h.subscribe_packet(r + 1, [(topic, 0)]))
            sub.expect(h.SUBACK, pid=r + 1, timeout=5)
            data = h.publish_packet(topic, b"%d" % r)
            for p in pubs:
                p.send(data)
            got = 0
            while got < len(pubs):
                try:
                    m = sub.recv_msg(timeout=1.0)
                except AssertionError:      # timed out: the rest were lost
                    lost.append((r, len(pubs) - got))
                    break
                eq(m.topic, topic, "topic")
                got += 1
    finally:
        stop.set()
        for f in floods:
            f.join()
    check(not lost, "messages published right after the SUBACK were lost "
          "(round, how many of %d): %s", len(pubs), lost[:10])


@t.case("fan_out_to_many_subscribers")
def _(x):
    subs = [x.client() for _ in range(16)]
    for c in subs:
        c.subscribe([("fan/+", 1)])
    pub = x.client()
    pub.publish("fan/a", b"1", qos=1)
    pub.publish("fan/b", b"2", qos=0)
    for c in subs:
        got = sorted((m.topic, m.payload) for m in c.recv_msgs(2))
        eq(got, [("fan/a", b"1"), ("fan/b", b"2")], "messages")


@t.case("payload_bytes_intact_binary_empty_and_large")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("bin/#", 1)])
    payloads = [b"", bytes(range(256)) * 4, b"\x00" * 10, os.urandom(300000)]
    for i, p in enumerate(payloads):
        pub.publish("bin/%d" % i, p, qos=1)
    for i, p in enumerate(payloads):
        m = sub.recv_msg(5)
        eq((m.topic, len(m.payload)), ("bin/%d" % i, len(p)), "topic, length")
        check(m.payload == p, "payload %d corrupted", i)


@t.case("paho_publish_subscribe_roundtrip")
def _(x):
    sub, pub = x.paho(), x.paho()
    sub.connect_ok()
    pub.connect_ok()
    eq(sub.subscribe([("pp/#", 1)]), [1], "granted")
    pub.publish("pp/a/b", b"hi", qos=1)
    m = sub.recv()
    eq((m.topic, m.payload, m.qos, m.retain), ("pp/a/b", b"hi", 1, 0), "message")


if __name__ == "__main__":
    t.main()
