#!/usr/bin/python3
"""30 stress: 50 paho publishers and 50 paho subscribers (one network thread each) on a 4-shard
broker, at QoS 1 and at QoS 2. Publisher p sends M sequence-numbered messages to stress/<p>/seq.
Subscribers cover every publisher ('stress/#') or five of them (exact topics and 'stress/<p>/+').
Checked per subscriber and publisher: nothing lost, order kept, and at QoS 2 nothing duplicated
(at QoS 1 a duplicate is allowed but must not reorder what came first).
"""
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import check  # noqa: E402

t = h.Suite("30_stress")

PUBS, SUBS, M = 50, 50, 40
DEADLINE = 20
# A 'stress/#' subscriber gets PUBS * M = 2000 messages in a burst: the per-client queue bound
# (mosquitto's default is 1000) must not drop any of them.
CONF = {"max_queued_messages": 10000}


def plan():
    """Subscriber j -> (filters, the publishers they cover)."""
    out = []
    for j in range(SUBS):
        if j % 5 == 0:
            out.append(([("stress/#", 2)], set(range(PUBS))))
            continue
        ps = [(j + 10 * k) % PUBS for k in range(5)]
        filters = [("stress/%d/%s" % (p, "+" if k % 2 else "seq"), 2) for k, p in enumerate(ps)]
        out.append((filters, set(ps)))
    return out


def connect_all(x, n, prefix):
    cs = [x.paho(cid=h.unique(prefix), keepalive=60) for _ in range(n)]
    for c in cs:
        c.connect_ok(timeout=10)
    return cs


def publish_all(pubs, qos, errors):
    def run(p, c):
        try:
            infos = [c.publish("stress/%d/seq" % p, b"%d:%d" % (p, i), qos=qos, wait=False)
                     for i in range(M)]
            for i in infos:
                i.wait_for_publish(DEADLINE)
                check(i.is_published(), "publisher %d: message %d not acknowledged", p, i.mid)
        except Exception as e:
            errors.append("publisher %d: %s" % (p, e))
    ths = [threading.Thread(target=run, args=(p, c), daemon=True) for p, c in enumerate(pubs)]
    for th in ths:
        th.start()
    return ths


def check_subscriber(j, c, covered, qos):
    """Per publisher, the sequence numbers in arrival order must be 0..M-1."""
    seqs = {}
    for m in list(c.msgs):
        p, i = (int(v) for v in m.payload.split(b":"))
        check(p in covered, "subscriber %d got publisher %d it did not subscribe to", j, p)
        check(m.qos == qos, "subscriber %d got QoS %d, want %d", j, m.qos, qos)
        seqs.setdefault(p, []).append(i)
    for p in covered:
        got = seqs.get(p, [])
        if qos == 1:                         # drop repeats of numbers already seen
            seen = set()
            got = [i for i in got if not (i in seen or seen.add(i))]
        check(got == list(range(M)), "subscriber %d, publisher %d: %d messages, first "
              "problem at index %d", j, p, len(got),
              next((k for k, i in enumerate(got) if i != k), len(got)))


def run_stress(x, qos):
    subs = connect_all(x, SUBS, "ss")
    layout = plan()
    for c, (filters, _) in zip(subs, layout):
        c.subscribe(filters, timeout=10)
    pubs = connect_all(x, PUBS, "sp")
    errors = []
    t0 = time.monotonic()
    ths = publish_all(pubs, qos, errors)
    want = [M * len(covered) for _, covered in layout]
    done = h.wait_until(lambda: all(len(c.msgs) >= n for c, n in zip(subs, want)), DEADLINE,
                        step=0.1)
    for th in ths:
        th.join(max(0.1, DEADLINE - (time.monotonic() - t0)))
    check(not errors, "%s", "; ".join(errors[:3]))
    if not done:
        short = [(j, len(c.msgs), n) for j, (c, n) in enumerate(zip(subs, want))
                 if len(c.msgs) < n]
        raise AssertionError("%d subscribers short after %d s, e.g. (sub, got, want) %s"
                             % (len(short), DEADLINE, short[:4]))
    time.sleep(0.5)                           # room for duplicates to show up
    for j, (c, (_, covered)) in enumerate(zip(subs, layout)):
        check(c.lost is None, "subscriber %d lost its connection", j)
        check_subscriber(j, c, covered, qos)
    for c in subs + pubs:
        c.disconnect()


@t.case("qos1_50_publishers_50_subscribers", shards=[4], conf=CONF)
def _(x):
    run_stress(x, 1)


@t.case("qos2_50_publishers_50_subscribers", shards=[4], conf=CONF)
def _(x):
    run_stress(x, 2)


if __name__ == "__main__":
    t.main()
