#!/usr/bin/python3
"""04 retain: retained messages stored, replaced, deleted, sent with RETAIN=1 to new (wildcard)
subscriptions and with RETAIN=0 to existing subscribers, re-sent on re-subscribe.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("04_retain")


def retained(x, filt, qos=1, wait=0.4):
    """Subscribe a fresh client to filt; return [(topic, payload, qos, retain)] it then gets."""
    c = x.client()
    c.subscribe([(filt, qos)])
    return sorted((m.topic, m.payload, m.qos, m.retain) for m in c.drain(wait))


@t.case("retained_sent_to_new_subscriber_with_retain_1")
def _(x):
    pub = x.client()
    pub.publish("ret/a", b"kept", qos=1, retain=True)
    pub.disconnect()            # stored by the broker, not tied to the publisher
    # [MQTT-3.3.1-6] sent on subscribe; [MQTT-3.3.1-8] with RETAIN=1
    eq(retained(x, "ret/a"), [("ret/a", b"kept", 1, True)], "retained messages")


@t.case("retained_qos0_stored")
def _(x):
    pub = x.client()
    pub.publish("ret0/a", b"zero", qos=0, retain=True)
    pub.ping()                  # packets of one connection are handled in order
    eq(retained(x, "ret0/a"), [("ret0/a", b"zero", 0, True)], "retained messages")


@t.case("retained_replaced_by_next_retained_publish")
def _(x):
    pub = x.client()
    pub.publish("rep/a", b"one", qos=1, retain=True)
    pub.publish("rep/a", b"two", qos=1, retain=True)       # [MQTT-3.3.1-5]
    eq(retained(x, "rep/a"), [("rep/a", b"two", 1, True)], "retained messages")


@t.case("non_retained_publish_leaves_retained_alone")
def _(x):
    pub = x.client()
    pub.publish("keep/a", b"one", qos=1, retain=True)
    pub.publish("keep/a", b"plain", qos=1)                  # [MQTT-3.3.1-12]
    eq(retained(x, "keep/a"), [("keep/a", b"one", 1, True)], "retained messages")


@t.case("empty_retained_publish_deletes_and_is_delivered")
def _(x):
    pub, sub = x.client(), x.client()
    pub.publish("del/a", b"x", qos=1, retain=True)
    sub.subscribe([("del/a", 1)])
    eq(sub.recv_msg().retain, True, "retain flag of the stored message")
    pub.publish("del/a", b"", qos=1, retain=True)
    m = sub.recv_msg()           # [MQTT-3.3.1-10] processed as normal, sent to subscribers
    eq((m.payload, m.retain), (b"", False), "the deleting message")
    eq(retained(x, "del/a"), [], "retained after delete")   # [MQTT-3.3.1-11]


@t.case("existing_subscribers_get_retain_0")
def _(x):
    sub, pub = x.client(), x.client()
    sub.subscribe([("live/#", 2)])
    pub.publish("live/a", b"x", qos=2, retain=True)
    m = sub.recv_msg()
    eq((m.topic, m.retain), ("live/a", False), "topic, retain")   # [MQTT-3.3.1-9]


@t.case("retained_to_wildcard_subscriptions")
def _(x):
    pub = x.client()
    for tp in ("rw/a/b", "rw/a/c", "rw/x", "rw", "other/a/c"):
        pub.publish(tp, tp.encode(), qos=1, retain=True)
    def topics(f):
        return [tp for tp, _, _, r in retained(x, f) if r]
    eq(topics("rw/+/b"), ["rw/a/b"], "rw/+/b")
    eq(topics("rw/#"), ["rw", "rw/a/b", "rw/a/c", "rw/x"], "rw/#")
    eq(topics("+/a/c"), ["other/a/c", "rw/a/c"], "+/a/c")
    eq(topics("+"), ["rw"], "+")
    got = topics("#")
    check({"rw/a/b", "rw/a/c", "rw/x", "rw", "other/a/c"} <= set(got), "# got %s", got)
    check(not [tp for tp in got if tp.startswith("$")], "# got $ topics: %s", got)


@t.case("retained_dollar_topic_only_for_explicit_filter")
def _(x):
    x.client().publish("$app/r", b"d", qos=1, retain=True)
    x.client().publish("app/r", b"n", qos=1, retain=True)
    eq([tp for tp, _, _, _ in retained(x, "+/r")], ["app/r"], "+/r")   # [MQTT-4.7.2-1]
    eq([tp for tp, _, _, _ in retained(x, "$app/#")], ["$app/r"], "$app/#")


@t.case("retained_qos_is_min_of_stored_and_granted")
def _(x):
    x.client().publish("rq/a", b"x", qos=2, retain=True)
    eq(retained(x, "rq/a", qos=2), [("rq/a", b"x", 2, True)], "granted 2")
    eq(retained(x, "rq/a", qos=1), [("rq/a", b"x", 1, True)], "granted 1")
    eq(retained(x, "rq/a", qos=0), [("rq/a", b"x", 0, True)], "granted 0")


@t.case("resubscribe_resends_retained")
def _(x):
    x.client().publish("rs/a", b"x", qos=1, retain=True)
    c = x.client()
    c.subscribe([("rs/#", 1)])
    eq(c.recv_msg().retain, True, "first subscribe")
    c.subscribe([("rs/#", 2)])                              # [MQTT-3.8.4-3]
    m = c.recv_msg()
    eq((m.topic, m.retain, m.qos), ("rs/a", True, 1), "after re-subscribe")


@t.case("retained_from_many_clients_visible_to_one_subscriber")
def _(x):
    # Publishers land on different shards; the subscriber must see every retained topic.
    n = 40
    pubs = [x.client() for _ in range(n)]
    for i, p in enumerate(pubs):
        p.publish("many/%02d" % i, b"%d" % i, qos=1, retain=True)
    got = retained(x, "many/+", wait=0.6)
    eq([tp for tp, _, _, _ in got], ["many/%02d" % i for i in range(n)], "topics")


@t.case("paho_sees_retained_flag")
def _(x):
    pub = x.paho()
    pub.connect_ok()
    pub.publish("pr/a", b"r", qos=1, retain=True)
    sub = x.paho()
    sub.connect_ok()
    sub.subscribe([("pr/#", 1)])
    m = sub.recv()
    eq((m.topic, m.payload, m.retain), ("pr/a", b"r", 1), "message")


if __name__ == "__main__":
    t.main()
