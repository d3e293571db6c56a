#!/usr/bin/python3
"""15 sys: the broker's $SYS/broker/... topics (mosquitto's names), every sys_interval seconds,
retained, summed over every shard; shardmq's own $SYS/broker/shards/N/...; sys_interval 0 turns
them off.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("15_sys")
FAST = {"sys_interval": 1}


class SysView:
    """The latest payload of every $SYS topic a paho subscriber to $SYS/broker/# has seen."""

    def __init__(self, x):
        self.c = x.paho()
        self.c.connect_ok()
        eq(self.c.subscribe([("$SYS/broker/#", 0)]), [0], "granted")
        self.last = {}
        self.seen = []          # (topic, payload) in arrival order

    def pump(self, wait=0.05):
        with self.c.cond:
            self.c.cond.wait_for(lambda: self.c.msgs, wait)
            while self.c.msgs:
                m = self.c.msgs.popleft()
                self.last[m.topic] = m.payload.decode()
                self.seen.append((m.topic, self.last[m.topic]))

    def until(self, pred, timeout=5.0, what="a $SYS value"):
        end = time.time() + timeout
        while time.time() < end:
            self.pump()
            try:
                if pred(self.last):
                    return self.last
            except (KeyError, ValueError):
                pass
        raise AssertionError("timed out waiting for %s; have %r" % (what, sorted(self.last)))

    def num(self, topic):
        return int(self.last[topic])


@t.case("version_and_uptime_increase", conf=FAST)
def _(x):
    v = SysView(x)
    v.until(lambda d: "$SYS/broker/version" in d and "$SYS/broker/uptime" in d)
    check(v.last["$SYS/broker/version"].startswith("shardmq version "), "version %r",
          v.last["$SYS/broker/version"])
    first = int(v.last["$SYS/broker/uptime"].split()[0])
    check(v.last["$SYS/broker/uptime"].endswith(" seconds"), "uptime %r",
          v.last["$SYS/broker/uptime"])
    v.until(lambda d: int(d["$SYS/broker/uptime"].split()[0]) > first, 4.0, "uptime to grow")


@t.case("retained_for_a_late_subscriber", conf=FAST)
def _(x):
    time.sleep(1.5)
    v = SysView(x)
    # retained: all there at once, not a second later at the next round
    v.until(lambda d: "$SYS/broker/version" in d and "$SYS/broker/clients/total" in d, 0.5,
            "the retained $SYS topics")
    # a '#' subscriber never sees $SYS topics [MQTT-4.7.2-1]
    w = x.paho()
    w.connect_ok()
    w.subscribe([("#", 0)])
    w.no_msg(1.3)


@t.case("clients_connected_summed_over_shards", conf=FAST)
def _(x):
    v = SysView(x)
    v.until(lambda d: v.num("$SYS/broker/clients/connected") == 1, what="1 client")
    # client ids spread over the shards; the count is the whole broker's
    others = [x.client() for _ in range(6)]
    v.until(lambda d: v.num("$SYS/broker/clients/connected") == 7 and
            v.num("$SYS/broker/clients/total") == 7, what="7 clients")
    v.until(lambda d: v.num("$SYS/broker/clients/maximum") == 7, 1.5, "maximum 7")
    for c in others[:4]:
        c.disconnect()
    v.until(lambda d: v.num("$SYS/broker/clients/connected") == 3, what="3 clients")
    eq(v.num("$SYS/broker/clients/maximum"), 7, "maximum after disconnects")


@t.case("messages_received_and_sent_count_publishes", conf=FAST)
def _(x):
    v = SysView(x)
    v.until(lambda d: "$SYS/broker/messages/received" in d and
            "$SYS/broker/publish/messages/received" in d)
    base = v.num("$SYS/broker/publish/messages/received")
    sub = x.client()
    sub.subscribe([("sys/t", 1)])
    pubs = [x.client() for _ in range(4)]
    n = 25
    for i in range(n):
        pubs[i % len(pubs)].publish("sys/t", b"m%d" % i, qos=1)
    eq(len(sub.drain(0.5)), n, "delivered")
    v.until(lambda d: v.num("$SYS/broker/publish/messages/received") == base + n,
            what="%d more received" % n)
    v.until(lambda d: v.num("$SYS/broker/publish/messages/sent") >= n, what="sent")
    v.until(lambda d: v.num("$SYS/broker/messages/received") == base + n, what="messages")
    check(v.num("$SYS/broker/bytes/received") > n * len("sys/t"), "bytes received %r",
          v.last.get("$SYS/broker/bytes/received"))
    v.until(lambda d: float(d["$SYS/broker/load/messages/received/1min"]) > 0, what="load 1min")
    for w in ("5min", "15min"):
        check("$SYS/broker/load/messages/received/" + w in v.last, "load %s missing", w)


@t.case("retained_and_subscription_counts", conf=FAST)
def _(x):
    v = SysView(x)
    v.until(lambda d: "$SYS/broker/subscriptions/count" in d and
            "$SYS/broker/retained messages/count" in d)
    subs0 = v.num("$SYS/broker/subscriptions/count")
    c = x.client()
    c.subscribe([("a/1", 0), ("a/2", 0), ("a/3", 0)])
    v.until(lambda d: v.num("$SYS/broker/subscriptions/count") == subs0 + 3, what="3 more subs")
    ret0 = v.num("$SYS/broker/retained messages/count")
    for i in range(5):
        c.publish("r/%d" % i, b"x", qos=1, retain=True)
    v.until(lambda d: v.num("$SYS/broker/retained messages/count") >= ret0 + 5,
            what="5 more retained")


@t.case("per_shard_topics", conf=FAST)
def _(x):
    v = SysView(x)
    names = ["$SYS/broker/shards/%d/%s" % (i, k) for i in range(x.shards)
             for k in ("loop/turns", "clients/connected", "messages/received",
                       "dropped/qos0", "dropped/queue_full", "inbox/depth")]
    v.until(lambda d: all(n in d for n in names), what="every shard's topics")
    eq(sum(v.num("$SYS/broker/shards/%d/clients/connected" % i) for i in range(x.shards)),
       v.num("$SYS/broker/clients/connected"), "shards' clients sum to the total")
    check("$SYS/broker/shards/%d/loop/turns" % x.shards not in v.last, "a shard too many")


@t.case("unchanged_values_are_not_republished", conf=FAST)
def _(x):
    v = SysView(x)
    v.until(lambda d: "$SYS/broker/version" in d)
    time.sleep(2.5)
    v.pump(0.2)
    eq([tp for tp, _ in v.seen].count("$SYS/broker/version"), 1, "version publishes")
    check([tp for tp, _ in v.seen].count("$SYS/broker/uptime") >= 2, "uptime publishes")


@t.case("sys_interval_0_publishes_nothing", conf={"sys_interval": 0})
def _(x):
    c = x.paho()
    c.connect_ok()
    c.subscribe([("$SYS/#", 0)])
    c.no_msg(2.5)


sys.exit(t.main())
