#!/usr/bin/python3
"""11 shared: shared subscriptions "$share/{group}/{filter}" from 3.1.1 clients (as mosquitto and
EMQX accept them; MQTT 5.0 section 4.8.2 defines them). Each message matching a group's filter
goes to exactly one member of the group across the whole broker (with 4 shards the members sit
on different shards), normal subscribers still get their own copy, members that leave stop
sharing, and a new shared subscription gets no retained messages.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("11_shared")

# Interest in a filter travels between shards asynchronously; after a member leaves, give the
# other shards this long to hear of it (a message already routed to the emptied shard is lost).
SETTLE = 0.3


def numbers(msgs):
    return [int(m.payload) for m in msgs]


@t.case("group_of_four_gets_each_message_once_and_normal_subscriber_all",
        conf={"max_queued_messages": 1000})
def _(x):
    members = [x.client() for _ in range(4)]
    for c in members:
        eq(c.subscribe([("$share/g/sh/#", 1)]), [1], "granted")
    normal = x.client()
    eq(normal.subscribe([("sh/#", 1)]), [1], "normal granted")
    pub = x.client()
    for i in range(400):
        pub.publish("sh/%d" % (i % 4), b"%d" % i, qos=1)
    got = [numbers(c.drain(1.0)) for c in members]
    everything = sorted(n for g in got for n in g)
    eq(everything, list(range(400)), "messages received by the group (each exactly once)")
    for i, g in enumerate(got):
        check(g, "member %d got no message (counts %s)", i, [len(v) for v in got])
        eq(g, sorted(g), "order of member %d's messages" % i)
    eq(numbers(normal.drain(0.5)), list(range(400)), "normal subscriber's messages")


@t.case("two_groups_on_one_filter_each_get_every_message")
def _(x):
    ga = [x.client() for _ in range(2)]
    gb = [x.client() for _ in range(3)]
    for c in ga:
        c.subscribe([("$share/a/tg/t", 1)])
    for c in gb:
        c.subscribe([("$share/b/tg/t", 1)])
    pub = x.client()
    for i in range(30):
        pub.publish("tg/t", b"%d" % i, qos=1)
    for name, group in (("a", ga), ("b", gb)):
        got = sorted(n for c in group for n in numbers(c.drain(0.5)))
        eq(got, list(range(30)), "group %s" % name)


@t.case("client_in_group_and_subscribed_normally_gets_both_copies",
        spec_only="mosquitto 2.0.11 sends one copy; the shared and the non-shared subscription "
                  "are two subscriptions (5.0 section 4.8.2), each owed its copy")
def _(x):
    c, pub = x.client(), x.client()
    eq(c.subscribe([("$share/g/both/t", 1), ("both/t", 1)]), [1, 1], "granted")
    for i in range(5):
        pub.publish("both/t", b"%d" % i, qos=1)
    eq(sorted(numbers(c.drain(0.5))), sorted(list(range(5)) * 2), "two copies of each")


@t.case("members_that_leave_stop_sharing")
def _(x):
    stay, unsub, gone = x.client(), x.client(), x.client()
    for c in (stay, unsub, gone):
        c.subscribe([("$share/g/lv/#", 1)])
    unsub.unsubscribe(["$share/g/lv/#"])
    gone.disconnect()
    time.sleep(SETTLE)
    pub = x.client()
    for i in range(40):
        pub.publish("lv/t", b"%d" % i, qos=1)
    eq(numbers(stay.drain(0.5)), list(range(40)), "the remaining member's messages")
    unsub.no_msg(0.1)


@t.case("retained_message_not_sent_to_new_shared_subscription",
        spec_only="mosquitto 2.0.11 sends retained messages to a new shared subscription of a "
                  "3.1.1 client; 5.0 section 3.3.1.3 sends them to new Non-shared ones only")
def _(x):
    pub = x.client()
    pub.publish("rt/t", b"kept", qos=1, retain=True)
    m = x.client()
    eq(m.subscribe([("$share/g/rt/#", 1)]), [1], "granted")
    m.no_msg(0.5)
    plain = x.client()
    plain.subscribe([("rt/#", 1)])
    r = plain.recv_msg()
    eq((r.topic, r.payload, r.retain), ("rt/t", b"kept", True), "retained message (normal sub)")
    pub.publish("rt/t", b"live", qos=1)
    eq(m.recv_msg().payload, b"live", "live message to the member")


@t.case("invalid_shared_filters_refused",
        spec_only="mosquitto 2.0.11 grants \"$share//t\" (an empty ShareName is invalid, "
                  "[MQTT-4.8.2-1])")
def _(x):
    # [MQTT-4.8.2-1] non-empty group; [MQTT-4.8.2-2] no '/', '+', '#' in it; a filter must follow
    for f in ("$share//t", "$share/g+/t", "$share/g#/t", "$share/g"):
        c = x.client()
        c.send(h.subscribe_packet(3, [(f, 1)]))
        try:
            eq(c.expect(h.SUBACK, 3).body[2:], b"\x80", "return code for %r" % f)
        except h.Closed:
            pass        # closing the connection is allowed too


if __name__ == "__main__":
    t.main()
