#!/usr/bin/python3
"""32 push-back: publishers go at the pace of their subscribers.

With the default limits (20 in flight, 1,000 queued per session) a QoS 1 publisher that is
acknowledged as fast as the broker reads outruns a subscriber that takes 1,000 messages a
second: its queue passes 1,000 and acknowledged messages are dropped. With push-back the broker
stops reading the publisher while the subscriber's queue is over half its limit, so:
  - a slow subscriber gets every one of 1,500 acknowledged messages, in order, none dropped;
  - a subscriber that takes nothing at all holds publishers back for about 1 s only: then it
    stops counting (logged), everyone else goes on, and its own queue drops what overflows;
  - a held-back publisher that also subscribes still gets its own deliveries: once it falls
    behind itself it is read again (its acknowledgements are what drains that backlog).
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import check, eq  # noqa: E402

t = h.Suite("32_pushback")

N = 1500
WINDOW = 100


def publish_all(x, topic, n, window=WINDOW, timeout=30):
    """QoS 1 publishes with up to window unacknowledged; returns the seconds it took."""
    p = h.Raw(x.broker, timeout=timeout)
    p.connect_ok()
    t0, acked = time.monotonic(), 0
    for i in range(n):
        if i - acked >= window:
            p.expect(h.PUBACK, acked % 65535 + 1)
            acked += 1
        p.send(h.publish_packet(topic, b"%06d" % i, qos=1, pid=i % 65535 + 1))
    while acked < n:
        p.expect(h.PUBACK, acked % 65535 + 1)
        acked += 1
    took = time.monotonic() - t0
    p.close()
    return took


def slow_reader(x, topic, got, per_msg_s, ready):
    s = h.Raw(x.broker, rcvbuf=8192, timeout=20)
    s.connect_ok()
    s.subscribe([(topic, 1)])
    ready.set()
    try:
        while len(got) < N:
            got.append(int(s.recv_msg(ack=True).payload))
            time.sleep(per_msg_s)
    finally:
        s.close()


@t.case("slow_subscriber_gets_everything_with_default_limits", spec_only=True)
def _(x):
    topic, got, ready = h.unique("pb"), [], threading.Event()
    th = threading.Thread(target=slow_reader, args=(x, topic, got, 0.001, ready), daemon=True)
    th.start()
    check(ready.wait(5), "subscriber did not subscribe")
    publish_all(x, topic, N)
    th.join(30)
    eq(len(got), N, "messages the slow subscriber got")
    eq(got, list(range(N)), "in order, none missing")
    log = x.broker.log_since_start()
    check("session queue full" not in log, "acknowledged messages were dropped: %s",
          [ln for ln in log.splitlines() if "queue full" in ln][:2])


@t.case("a_subscriber_that_takes_nothing_holds_publishers_back_only_briefly",
        spec_only=True)
def _(x):
    topic = h.unique("pbs")
    dead = h.Raw(x.broker, rcvbuf=4096)
    dead.connect_ok()
    dead.subscribe([(topic, 1)])               # and never reads again
    got, ready = [], threading.Event()
    th = threading.Thread(target=slow_reader, args=(x, topic, got, 0, ready), daemon=True)
    th.start()
    check(ready.wait(5), "subscriber did not subscribe")
    took = publish_all(x, topic, N)
    th.join(20)
    eq(len(got), N, "messages the live subscriber got")
    check(took < 15, "the publisher took %.1f s: held back for good by a dead subscriber", took)
    log = x.broker.log_since_start()
    check("took nothing for" in log, "no log line about the stalled subscriber")
    dead.close()


@t.case("a_held_back_publisher_that_also_subscribes_gets_its_messages", spec_only=True)
def _(x):
    # c publishes to a slow subscriber and is held back for it; meanwhile it subscribes to
    # another topic with its own publisher. Not reading c would also leave its PUBACKs for
    # those deliveries unread: once c falls behind itself, it is read again (it is then a
    # backlogged subscriber), so nothing stalls and nothing is dropped on either side.
    topic, other = h.unique("pbc"), h.unique("pbo")
    got, ready = [], threading.Event()
    th = threading.Thread(target=slow_reader, args=(x, topic, got, 0.001, ready), daemon=True)
    th.start()
    check(ready.wait(5), "subscriber did not subscribe")
    c = x.paho(h.unique(), max_inflight=WINDOW)
    c.connect_ok()
    c.subscribe([(other, 1)])
    feeder = threading.Thread(target=publish_all, args=(x, other, N // 3), daemon=True)
    feeder.start()
    infos = [c.publish(topic, b"%06d" % i, qos=1, wait=False) for i in range(N)]
    for i in infos:
        i.wait_for_publish(30)
        check(i.is_published(), "a publish was never acknowledged")
    mine = [int(m.payload) for m in c.recv_n(N // 3, timeout=30)]
    eq(mine, list(range(N // 3)), "what c subscribed to, in order")
    feeder.join(10)
    th.join(30)
    eq(got, list(range(N)), "the slow subscriber's messages, none missing")


if __name__ == "__main__":
    t.main()
