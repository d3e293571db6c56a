#!/usr/bin/python3
"""31 subscribe burst: one client subscribes to 100,000 filters in SUBSCRIBE packets of 1,000,
written back to back, while a second client connects and disconnects in a loop.

What a user would notice and what is asserted:
  - the burst completes: 100 SUBACKs, every filter granted, in seconds (the linear search of a
    session's subscriptions made this quadratic: 4 s for 80,000 filters, and it grows with the
    square; the bound here, 5 s for 100,000, is far from the ~0.3 s it takes now);
  - a client connecting meanwhile gets its CONNACK within 1 s (~50-150 ms measured; generous
    for a shared 2-core machine, see CONNACK_BOUND_S: the quadratic broker held its loop for the
    whole burst, seconds), and the subscriptions work:
    a publish to one of the filters arrives, one to a neighbour that was never subscribed does not;
  - unsubscribing all 100,000 (UNSUBSCRIBE had the same linear search) is as quick, and afterwards
    nothing is delivered;
  - re-subscribing to filters the session already holds replaces their QoS, no duplicates;
  - joining 50,000 shared groups of one filter (one scan per group name before) is as quick.
Timing bounds are orders of magnitude, not benchmarks: perf/bench_subs.sh measures.
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

t = h.Suite("31_sub_burst")

N, K = 100000, 1000             # filters, filters per SUBSCRIBE


SLOW = 4 if h.sanitized() else 1
BURST_BOUND_S = 5.0 * SLOW
# How long a CONNECT may wait while the burst is applied. Measured on 2 cores: ~50 ms with one
# shard (the burst's share of the loop), ~150 ms with 4 (each new filter is also an interest
# update to every other shard, one inbox node each, and a CONNECT handed off to its home shard
# queues behind them). The quadratic broker held its loop for the whole burst: 4.5 to 13 s.
# The bound leaves room for a loaded machine; it only has to tell those apart.
CONNACK_BOUND_S = 2.0 * SLOW
# The harness runs cases side by side; two bursts at once on 2 cores would measure the machine,
# not the broker: the heavy part of each case holds this lock.
ONE_BURST = threading.Lock()


def filt(i):
    return "burst/%d/%d/%s" % (i // 1000, i % 1000, "+" if i % 8 == 7 else "leaf")


def packets(kind, n, k, qos=0, first_pid=1, name=filt):
    """SUBSCRIBE (kind 'sub') or UNSUBSCRIBE packets of k filters each, concatenated."""
    out = []
    for p, start in enumerate(range(0, n, k)):
        fs = [name(i) for i in range(start, min(n, start + k))]
        pid = first_pid + p
        out.append(h.subscribe_packet(pid, [(f, qos) for f in fs]) if kind == "sub"
                   else h.unsubscribe_packet(pid, fs))
    return b"".join(out), (n + k - 1) // k


def timed_burst(c, data, npkts, ack, first_pid=1, want_code=None):
    """Write data from a thread, read npkts acks (in order) here; returns the seconds taken."""
    sender = threading.Thread(target=c.send, args=(data,), daemon=True)
    t0 = time.monotonic()
    sender.start()
    for i in range(npkts):
        p = c.expect(ack, first_pid + i, timeout=30)
        if want_code is not None:
            codes = p.body[2:]
            check(codes and all(x == want_code for x in codes),
                  "ack %d: codes %s, want all 0x%02x", i, sorted(set(codes))[:4], want_code)
    took = time.monotonic() - t0
    sender.join(10)
    return took


class Prober:
    """Connects, waits for CONNACK, closes; again and again until stopped. Keeps the latencies."""

    def __init__(self, broker):
        self.broker, self.lat, self.errors = broker, [], []
        self.stop = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)

    def run(self):
        n = 0
        while not self.stop.is_set():
            try:
                c = h.Raw(self.broker, timeout=10)
                t0 = time.monotonic()
                c.connect_ok("probe-%d" % n)
                self.lat.append(time.monotonic() - t0)
                c.disconnect()
            except Exception as e:
                self.errors.append(h.describe(e))
            n += 1
            time.sleep(0.002)

    def __enter__(self):
        self.th.start()
        time.sleep(0.05)        # a few idle probes first
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.th.join(15)


@t.case("burst_of_100000_filters_while_others_connect")
def burst(x):
    c = x.client(h.unique("burst"))
    data, npkts = packets("sub", N, K, qos=1)
    data2, npkts2 = packets("unsub", N, K, first_pid=npkts + 1)
    with ONE_BURST:
        with Prober(x.broker) as pr:
            took = timed_burst(c, data, npkts, h.SUBACK, want_code=1)
        check(not pr.errors, "prober: %s", pr.errors[:3])
        check(len(pr.lat) >= 3, "only %d probes completed", len(pr.lat))
        check(took < BURST_BOUND_S, "%d filters took %.2f s (bound %.1f s)", N, took,
              BURST_BOUND_S)
        worst = max(pr.lat)
        check(worst < CONNACK_BOUND_S, "a CONNACK during the burst took %.0f ms (bound %.0f ms; "
              "%d probes)", worst * 1e3, CONNACK_BOUND_S * 1e3, len(pr.lat))
        pub = x.client(h.unique("pub"))
        # The subscriber's shard tells the others about each new filter through their
        # inboxes (one message per filter and shard): a publisher on another shard sees
        # 100,000 new filters a little after the SUBACK. Wait for that, then check routing.
        deadline, first = time.time() + 10 * SLOW, None
        while first is None and time.time() < deadline:
            # filter 99999 (".../+") is the last one subscribed: once it routes, all do
            pub.publish("burst/99/999/anything", b"plus", qos=1)
            try:
                first = c.recv_msg(0.5)
            except AssertionError:
                pass
        check(first is not None, "no delivery within %d s of the SUBACK", 10 * SLOW)
        eq((first.topic, bytes(first.payload)), ("burst/99/999/anything", b"plus"), "delivered")
        c.drain(0.3)                                            # extra copies of the probe
        pub.publish("burst/77/123/leaf", b"exact", qos=1)
        pub.publish("burst/77/123/other", b"never", qos=1)     # 77123 is a "leaf" filter
        eq([(m.topic, bytes(m.payload)) for m in c.recv_msgs(1)],
           [("burst/77/123/leaf", b"exact")], "delivered")
        c.no_msg(0.3)
        # Leave the broker nothing to tear down at SIGTERM: 100,000 subscriptions end with
        # 100,000 interest updates to every other shard, over the harness's 3 s under ASan.
        timed_burst(c, data2, npkts2, h.UNSUBACK, first_pid=npkts + 1)


@t.case("unsubscribing_100000_filters_is_as_quick")
def unsub(x):
    c = x.client(h.unique("burst"))
    data, npkts = packets("sub", N, K)
    data2, npkts2 = packets("unsub", N, K, first_pid=npkts + 1)
    with ONE_BURST:
        timed_burst(c, data, npkts, h.SUBACK, want_code=0)
        took = timed_burst(c, data2, npkts2, h.UNSUBACK, first_pid=npkts + 1)
    check(took < BURST_BOUND_S, "unsubscribing took %.2f s", took)
    pub = x.client(h.unique("pub"))
    for i in (0, 7, 54321, N - 1):
        pub.publish(filt(i).replace("+", "x"), b"gone", qos=1)
    c.no_msg(0.3)
    c.ping()


@t.case("resubscribing_replaces_the_qos")
def resub(x):
    c = x.client(h.unique("burst"))
    n = 20000
    data, npkts = packets("sub", n, K, qos=0)
    data2, npkts2 = packets("sub", n, K, qos=2, first_pid=npkts + 1)
    with ONE_BURST:
        timed_burst(c, data, npkts, h.SUBACK, want_code=0)
        timed_burst(c, data2, npkts2, h.SUBACK, first_pid=npkts + 1, want_code=2)
    pub = x.client(h.unique("pub"))
    pub.publish("burst/12/345/leaf", b"once", qos=2)
    m = c.recv_msg()
    eq((m.topic, m.qos, bytes(m.payload)), ("burst/12/345/leaf", 2, b"once"), "delivery")
    c.no_msg(0.3)        # one subscription per filter: no second copy


@t.case("joining_50000_shared_groups_of_one_filter")
def shared(x):
    c = x.client(h.unique("burst"))
    n = 50000
    data, npkts = packets("sub", n, K, name=lambda i: "$share/g%d/fleet/+" % i)
    data2, npkts2 = packets("unsub", n, K, first_pid=npkts + 1,
                            name=lambda i: "$share/g%d/fleet/+" % i)
    with ONE_BURST:
        took = timed_burst(c, data, npkts, h.SUBACK, want_code=0)
        took2 = timed_burst(c, data2, npkts2, h.UNSUBACK, first_pid=npkts + 1)
    check(took < BURST_BOUND_S, "%d shared groups took %.2f s", n, took)
    check(took2 < BURST_BOUND_S, "leaving them took %.2f s", took2)
    c.ping()


if __name__ == "__main__":
    t.main()
