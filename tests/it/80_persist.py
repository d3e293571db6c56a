#!/usr/bin/python3
"""80 persist: nothing acknowledged is lost across a restart ("persistence true").

Every case starts a broker with its store in the case's temporary directory, builds some state
(retained messages, persistent sessions with subscriptions, queued and in-flight messages,
wills with a delay), restarts the broker on the same port - gracefully with SIGTERM, or as a
crash with SIGKILL - and checks what a client sees afterwards. The default sync mode is
"commit": an acknowledgement means the record is on disk, so a SIGKILL right after a PUBACK /
PUBREC / PUBCOMP must not lose what it acknowledged. State the broker changes without telling
the client when it is durable (a subscriber's PUBACK / PUBREC) gets a short settle time before a
SIGKILL (SETTLE_KILL).

Then the store's own failure modes: start-up refuses a damaged store, one locked by a running
broker and one from a newer format version, naming the path, and leaves the files as they were;
a full disk turns QoS 1/2 publishes that need storing into PUBACK 0x97 (5.0) or a closed
connection (3.1.1) while QoS 0 keeps flowing, and the broker recovers once space returns.

BROKER=mosquitto runs what mosquitto 2.0 persists (graceful restarts: it writes its store at
exit); the crash cases and shardmq's store checks are skipped with the reason.
"""
import hashlib
import os
import resource
import signal
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402
from mqtt5 import S, U16, U32, ack_reason, connect5, parse_props, props, pub5, sub5  # noqa: E402,F401,E501

t = h.Suite("80_persist")

P = {"persistence": True, "persistence_location": "{dir}"}
SETTLE = 0.3        # after a client's DISCONNECT / close, before acting on "it is offline"
SETTLE_KILL = 0.5   # after a subscriber's ack (no durable confirmation exists), before SIGKILL
CRASH = "mosquitto writes its store only at exit and on autosave: a SIGKILL loses what came since"
STORE = "shardmq's own store layout and start-up checks"


def conf(**kw):
    c = dict(P)
    c.update(kw)
    return c


# ---- MQTT 5.0 packets (raw) ----------------------------------------------------------------

def raw5(x, cid, clean=True, expiry=None, will=None, keepalive=60):
    """A raw 5.0 client; returns (client, session present)."""
    c = x.raw()
    prop = b"" if expiry is None else b"\x11" + U32(expiry)
    c.send(connect5(cid, clean, keepalive, prop, will))
    p = c.expect(h.CONNACK)
    eq(p.body[1], 0, "CONNACK reason")
    return c, bool(p.body[0] & 1)


class Msg5:
    def __init__(self, p):
        self.qos, self.retain, self.dup = (p.flags >> 1) & 3, bool(p.flags & 1), bool(p.flags & 8)
        n = struct.unpack(">H", p.body[:2])[0]
        self.topic, off, self.pid = p.body[2:2 + n].decode(), 2 + n, None
        if self.qos:
            self.pid, off = struct.unpack(">H", p.body[off:off + 2])[0], off + 2
        self.props, self.payload = parse_props(p.body[off:])

    def __repr__(self):
        return "<PUBLISH5 %s q%d r%d %r %s>" % (self.topic, self.qos, self.retain,
                                                self.payload[:20], self.props)


def recv5(c, timeout=None):
    """Next PUBLISH (5.0) as Msg5; QoS 1 acknowledged, QoS 2 PUBREC'd (PUBCOMP on PUBREL)."""
    m = Msg5(c.next((h.PUBLISH,), timeout))
    if m.qos == 1:
        c.send(h.ack_packet(h.PUBACK, m.pid))
    elif m.qos == 2:
        c.auto_rel.add(m.pid)
        c.send(h.ack_packet(h.PUBREC, m.pid))
    return m


def drain5(c, wait=0.5):
    got = []
    while True:
        try:
            got.append(recv5(c, wait))
        except AssertionError as e:
            if "timed out" not in str(e):
                raise
            return got


# ---- helpers -------------------------------------------------------------------------------

def restart(x, kill=False, down=0.0, shards=None):
    """Restart the broker (same port and store); the old connections are gone with it."""
    if kill and x.kind == "mosquitto":
        raise h.Skip(CRASH)
    b = x.broker
    rc = b.kill() if kill else b.stop()         # first: our sockets close only after the broker
    check(kill or rc == 0, "broker exit status %s on SIGTERM, want 0", rc)
    for c in x.clients:
        c.close()
    x.clients.clear()
    b.restart(down=down, shards=shards)


def retained(x, filt, wait=0.6):
    """{topic: payload} of the retained messages a fresh subscriber to filt gets."""
    c = x.client()
    c.subscribe([(filt, 1)])
    got = {m.topic: m.payload for m in c.drain(wait) if m.retain}
    c.disconnect()
    return got


def persistent(x, cid, subs, settle=SETTLE):
    """A 3.1.1 clean-session-0 session with subs, left offline with DISCONNECT."""
    c = x.raw()
    eq(c.connect(cid, clean=False), (False, 0), "first connect (session present, rc)")
    c.subscribe(subs)
    c.disconnect()
    time.sleep(settle)


def store_dir(x):
    return os.path.join(x.broker.dir, "shardmq.db")


def store_files(x):
    """{relative path: sha256} of every file of the store but the lock files."""
    out = {}
    for root, _, files in os.walk(store_dir(x)):
        for f in files:
            if f in ("lock", "lock.mdb"):         # the broker's pid file, LMDB's lock table
                continue
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, store_dir(x))] = hashlib.sha256(fh.read()).hexdigest()
    return out


def both_ways(name, **kw):
    """Register the case twice: graceful restart (SIGTERM) and crash (SIGKILL)."""
    def deco(fn):
        t.case(name + "_sigterm", **kw)(lambda x: fn(x, False))
        kw2 = dict(kw)
        kw2["spec_only"] = kw.get("spec_only") or CRASH
        t.case(name + "_sigkill", **kw2)(lambda x: fn(x, True))
        return fn
    return deco


# ---- control: without persistence a restart forgets ---------------------------------------

@t.case("control_without_persistence_a_restart_forgets")
def _(x):
    pub = x.client()
    pub.publish("ctl/r", b"kept?", qos=1, retain=True)
    eq(retained(x, "ctl/#"), {"ctl/r": b"kept?"}, "retained before the restart")
    restart(x)
    eq(retained(x, "ctl/#"), {}, "retained after a restart without persistence")


# ---- retained messages ---------------------------------------------------------------------

@both_ways("retained_set_and_cleared_survive", conf=P)
def _(x, kill):
    pub = x.client()
    for i in range(20):
        pub.publish("rt/%d" % i, b"v%d" % i, qos=1 + i % 2, retain=True)
    pub.publish("rt/3", b"", qos=1, retain=True)            # cleared
    pub.publish("rt/4", b"", qos=2, retain=True)            # cleared
    pub.publish("rt/5", b"new5", qos=1, retain=True)        # replaced
    want = {"rt/%d" % i: b"v%d" % i for i in range(20) if i not in (3, 4)}
    want["rt/5"] = b"new5"
    restart(x, kill)
    eq(retained(x, "rt/#"), want, "retained messages after the restart")
    pub = x.client()
    pub.publish("rt/6", b"", qos=1, retain=True)            # and they stay clearable
    want.pop("rt/6")
    restart(x, kill)
    eq(retained(x, "rt/#"), want, "retained messages after a second restart")


# ---- sessions and subscriptions ------------------------------------------------------------

@both_ways("session_311_subscriptions_survive", conf=P)
def _(x, kill):
    cid, clean_cid = h.unique(), h.unique()
    persistent(x, cid, [("s3/a", 1), ("s3/b/+", 2), ("s3/c", 0)])
    c = x.raw()
    c.connect_ok(clean_cid, clean=True)
    c.subscribe([("s3/#", 1)])
    c.disconnect()
    restart(x, kill)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "persistent session after restart")
    pub = x.client()
    pub.publish("s3/a", b"a", qos=2)
    pub.publish("s3/b/x", b"b", qos=2)
    pub.publish("s3/c", b"c", qos=2)
    got = sorted((m.topic, m.qos) for m in c.drain(0.6))
    eq(got, [("s3/a", 1), ("s3/b/x", 2), ("s3/c", 0)], "deliveries at the granted QoS")
    c2 = x.raw()
    eq(c2.connect(clean_cid, clean=False), (False, 0), "a clean session does not survive")


@both_ways("session_50_subscription_options_survive", conf=P)
def _(x, kill):
    cid = h.unique()
    pub = x.client()
    pub.publish("o5/rh", b"old", qos=1, retain=True)
    c, sp = raw5(x, cid, clean=False, expiry=300)
    eq(sub5(c, "o5/nl", 0x01 | 0x04, 1), [1], "No Local granted")
    eq(sub5(c, "o5/rap", 0x01 | 0x08, 2), [1], "Retain As Published granted")
    eq(sub5(c, "o5/rh", 0x01 | 0x10, 3), [1], "Retain Handling 1 granted")
    eq(recv5(c).payload, b"old", "retained on the new subscription")
    eq(sub5(c, "o5/sid/#", 0x01, 4, sid=7), [1], "with a Subscription Identifier")
    eq(sub5(c, "o5/q0", 0x00, 5), [0], "QoS 0 granted")
    if kill:
        time.sleep(SETTLE_KILL)
    restart(x, kill)
    c, sp = raw5(x, cid, clean=False, expiry=300)
    eq(sp, True, "session present after the restart")
    c.send(pub5("o5/nl", b"mine", 1, 9))                     # No Local: not back to us
    c.expect(h.PUBACK, 9)
    pub = x.client()
    pub.publish("o5/rap", b"rap", qos=1, retain=True)
    pub.publish("o5/sid/x", b"sid", qos=1)
    pub.publish("o5/q0", b"q0", qos=1)
    got = {m.topic: m for m in drain5(c, 0.6)}
    eq(sorted(got), ["o5/q0", "o5/rap", "o5/sid/x"], "topics delivered (No Local kept)")
    eq(got["o5/rap"].retain, True, "Retain As Published kept")
    eq(got["o5/sid/x"].props.get(0x0B), [7], "Subscription Identifier kept")
    eq(got["o5/q0"].qos, 0, "granted QoS 0 kept")
    eq(sub5(c, "o5/rh", 0x01 | 0x10, 6), [1], "re-subscribe")
    check(not drain5(c, 0.4), "Retain Handling 1: the subscription existed, no retained sent")


@both_ways("session_expiry_counts_the_time_the_broker_was_down", conf=P,
           spec_only="mosquitto 2.0.11 does not count the time it was down: the session with "
           "expiry 4 s is still there after 5 s down")
def _(x, kill):
    short, long_ = h.unique("short"), h.unique("long")
    for cid, exp in ((short, 4), (long_, 120)):
        c, _ = raw5(x, cid, clean=False, expiry=exp)
        sub5(c, "se/t", 1, 1)
        c.send(h.DISCONNECT_PACKET)
        c.close()
    time.sleep(SETTLE)
    restart(x, kill, down=5)
    c, sp = raw5(x, short, clean=False, expiry=4)
    eq(sp, False, "session with expiry 4 s after 5 s down")
    c, sp = raw5(x, long_, clean=False, expiry=120)
    eq(sp, True, "session with expiry 120 s after 5 s down")


# ---- queued messages -----------------------------------------------------------------------

@both_ways("offline_queue_survives_in_order", conf=P)
def _(x, kill):
    cid = h.unique()
    persistent(x, cid, [("oq/t", 2)])
    pub = x.client()
    for i in range(60):
        pub.publish("oq/t", b"%d" % i, qos=1 + i % 2)
    restart(x, kill)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    got = [(int(m.payload), m.qos) for m in c.drain(0.6)]
    eq(got, [(i, 1 + i % 2) for i in range(60)], "queued messages in order, at their QoS")
    c.disconnect()
    time.sleep(SETTLE_KILL if kill else SETTLE)
    restart(x, kill)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc) again")
    c.no_msg(0.5)                               # delivered and acknowledged: not again


@t.case("offline_queue_limit_kept_across_restart",
        conf=conf(max_queued_messages=5))
def _(x):
    cid = h.unique()
    persistent(x, cid, [("ql/t", 1)])
    pub = x.client()
    for i in range(10):
        pub.publish("ql/t", b"%d" % i, qos=1)
    restart(x)
    pub = x.client()
    for i in range(10, 15):
        pub.publish("ql/t", b"%d" % i, qos=1)   # the queue is still full
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    got = [int(m.payload) for m in c.drain(0.6)]
    eq(len(got), 5, "queued messages kept with max_queued_messages 5 (%s)" % got)
    eq(got, sorted(got), "order")


# ---- in-flight messages --------------------------------------------------------------------

@both_ways("inflight_qos1_resent_with_same_id_after_restart", conf=P)
def _(x, kill):
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("if1/t", 1)])
    x.client().publish("if1/t", b"again", qos=1)
    m1 = c.recv_msg(ack=False)
    if kill:
        time.sleep(SETTLE_KILL)
    restart(x, kill)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    m2 = c.recv_msg(ack=False)
    eq((m2.topic, m2.payload, m2.qos, m2.dup, m2.pid), ("if1/t", b"again", 1, True, m1.pid),
       "re-sent PUBLISH")
    c.send(h.ack_packet(h.PUBACK, m2.pid))
    c.no_msg(0.3)


@both_ways("inflight_qos2_pubrecd_resumes_with_pubrel", conf=P)
def _(x, kill):
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("if2/t", 2)])
    x.client().publish("if2/t", b"x2", qos=2)
    m = c.recv_msg(ack=False)
    c.send(h.ack_packet(h.PUBREC, m.pid))
    c.expect(h.PUBREL, m.pid)                   # and no PUBCOMP from us
    if kill:
        time.sleep(SETTLE_KILL)
    restart(x, kill)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    p = c.next(timeout=2)
    eq((h.TYPE_NAMES[p.type], p.pid), ("PUBREL", m.pid), "first packet after the restart")
    c.send(h.ack_packet(h.PUBCOMP, m.pid))
    c.no_msg(0.4)                               # never a new PUBLISH of x2
    c.disconnect()
    time.sleep(SETTLE)
    c = x.raw()
    c.connect_ok(cid, clean=False)
    c.no_msg(0.4)


@both_ways("inbound_qos2_pubrel_after_restart_completes_once", conf=P)
def _(x, kill):
    obs_id, pub_id = h.unique("obs"), h.unique("pub")
    obs = x.client(obs_id, clean=False)
    obs.subscribe([("in2/t", 2)])
    p = x.client(pub_id, clean=False)
    p.send(h.publish_packet("in2/t", b"once", qos=2, pid=7))
    p.expect(h.PUBREC, 7)                       # no PUBREL before the restart
    got = [m.payload for m in obs.drain(0.4)]
    if kill:
        time.sleep(SETTLE_KILL)
    restart(x, kill)
    obs = x.raw()
    obs.connect_ok(obs_id, clean=False)
    p = x.raw()
    eq(p.connect(pub_id, clean=False), (True, 0), "publisher (session present, rc)")
    p.send(h.ack_packet(h.PUBREL, 7))
    p.expect(h.PUBCOMP, 7)
    got += [m.payload for m in obs.drain(0.8)]
    eq(got, [b"once"], "deliveries of the QoS 2 message")


# The two crash windows of QoS 2 exactly-once, hit on purpose: no settle time before SIGKILL.

@t.case("qos2_completed_by_the_subscriber_is_not_resent_after_a_crash", conf=P, spec_only=CRASH)
def _(x):
    """PUBREL may only leave once the PUBREC is stored: else a crash after our PUBCOMP brings the
    PUBLISH back, and a receiver that completed the id takes it for a new message."""
    cid = h.unique()
    c = x.client(cid, clean=False)
    c.subscribe([("cq2/t", 2)])
    x.client().publish("cq2/t", b"once", qos=2)
    m = c.recv_msg(ack=False)
    c.send(h.ack_packet(h.PUBREC, m.pid))
    c.expect(h.PUBREL, m.pid)
    c.send(h.ack_packet(h.PUBCOMP, m.pid))
    restart(x, kill=True)
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    c.auto_rel.add(m.pid)                       # a re-sent PUBREL is fine: PUBCOMP again
    got = [(q.payload, q.dup, q.pid) for q in c.drain(0.6)]
    eq(got, [], "PUBLISH packets after the subscriber completed the QoS 2 exchange")


@t.case("qos2_resent_by_the_publisher_after_a_crash_is_delivered_once", conf=P, spec_only=CRASH)
def _(x):
    """A QoS 2 message delivered before its inbound id is stored: after a crash the publisher
    re-sends the PUBLISH (no PUBREC came) and the broker must not deliver it again."""
    obs_id, pub_id = h.unique("obs"), h.unique("pub")
    obs = x.client(obs_id, clean=False)
    obs.subscribe([("rq2/t", 2)])
    p = x.client(pub_id, clean=False)
    time.sleep(SETTLE_KILL)                     # both sessions stored (CONNACK does not wait)
    p.send(h.publish_packet("rq2/t", b"once", qos=2, pid=9))
    m = obs.recv_msg(ack=False)                 # delivered: crash now
    restart(x, kill=True)
    p = x.raw()
    eq(p.connect(pub_id, clean=False), (True, 0), "publisher (session present, rc)")
    p.send(h.publish_packet("rq2/t", b"once", qos=2, pid=9, dup=True))
    p.expect(h.PUBREC, 9)
    p.send(h.ack_packet(h.PUBREL, 9))
    p.expect(h.PUBCOMP, 9)
    obs = x.raw()
    obs.connect_ok(obs_id, clean=False)
    obs.auto_rel.add(m.pid)                     # the first delivery awaits our PUBREC still
    got = [(q.payload, q.pid, q.dup) for q in obs.drain(0.8)]
    fresh = [g for g in got if g[1] != m.pid]   # the same id again is the same delivery
    eq(fresh, [], "deliveries besides the first (id %d)" % m.pid)


# ---- wills ---------------------------------------------------------------------------------

def will_watch(x):
    """A persistent observer of wl/#; returns its client id."""
    cid = h.unique("obs")
    persistent(x, cid, [("wl/#", 1)])
    return cid


def wills_seen(x, obs_id, wait):
    c = x.raw()
    c.connect_ok(obs_id, clean=False)
    return [m.payload for m in c.drain(wait)]


@t.case("will_delay_of_offline_session_fires_after_restart", conf=P)
def _(x):
    obs = will_watch(x)
    c, _ = raw5(x, h.unique(), expiry=60, will=("wl/t", b"late", b"\x18" + U32(3), 1))
    c.close()                                   # the will is now waiting 3 s
    time.sleep(SETTLE)
    t0 = time.monotonic()
    restart(x)
    got = wills_seen(x, obs, 5.0)
    eq(got, [b"late"], "the pending will, once (%.1f s after the close)"
       % (time.monotonic() - t0))


@t.case("will_delay_of_offline_session_is_kept_across_restart", conf=P)
def _(x):
    # The stored session keeps its will's delay: after the restart the will still waits out
    # what was left of it, rather than firing as the store is read.
    obs = will_watch(x)
    c, _ = raw5(x, h.unique(), expiry=60, will=("wl/t", b"later", b"\x18" + U32(5), 1))
    c.close()                                   # the will is now waiting 5 s
    time.sleep(SETTLE)
    t0 = time.monotonic()
    restart(x)
    w = x.raw()
    w.connect_ok(obs, clean=False)
    early = [m.payload for m in w.drain(1.0)]
    eq(early, [], "wills %.1f s after the close, with a 5 s delay" % (time.monotonic() - t0))
    eq([m.payload for m in w.drain(6.0)], [b"later"], "the will once its delay ran out")


@t.case("will_of_connected_client_fires_after_crash", conf=P, spec_only=CRASH)
def _(x):
    obs = will_watch(x)
    raw5(x, h.unique(), expiry=60, will=("wl/t", b"crash", b"\x18" + U32(2), 1))
    time.sleep(SETTLE_KILL)                     # a CONNACK does not wait for the store
    restart(x, kill=True)
    t0 = time.monotonic()
    c = x.raw()
    c.connect_ok(obs, clean=False)
    m = c.recv_msg(timeout=6)
    took = time.monotonic() - t0
    eq(m.payload, b"crash", "will after the crash")
    check(1.5 <= took <= 4.0, "will delay 2 s fired %.2f s after the restart", took)
    c.no_msg(0.5)


@t.case("will_of_connected_client_cancelled_by_reconnect_after_crash", conf=P, spec_only=CRASH)
def _(x):
    obs = will_watch(x)
    cid = h.unique()
    raw5(x, cid, expiry=60, will=("wl/t", b"no", b"\x18" + U32(3), 1))
    time.sleep(SETTLE_KILL)                     # a CONNACK does not wait for the store
    restart(x, kill=True)
    c, sp = raw5(x, cid, clean=False, expiry=60)
    eq(sp, True, "session present")
    eq(wills_seen(x, obs, 4.0), [], "wills after the client came back")


@t.case("will_of_connected_client_not_fired_after_graceful_stop", conf=P,
        spec_only="mosquitto 2.0 stores the will of a client connected at shutdown and "
        "publishes it after the restart")
def _(x):
    obs = will_watch(x)
    raw5(x, h.unique(), expiry=60, will=("wl/t", b"no", b"\x18" + U32(2), 1))
    restart(x)
    eq(wills_seen(x, obs, 3.5), [], "wills after a graceful restart")


# ---- message expiry ------------------------------------------------------------------------

@t.case("message_expiry_counts_the_time_stored", conf=P)
def _(x):
    cid = h.unique()
    c, _ = raw5(x, cid, clean=False, expiry=300)
    sub5(c, "me/t", 1, 1)
    c.send(h.DISCONNECT_PACKET)
    c.close()
    time.sleep(SETTLE)
    p, _ = raw5(x, h.unique())
    p.send(pub5("me/t", b"short", 1, 1, prop=b"\x02" + U32(3)))
    p.send(pub5("me/t", b"long", 1, 2, prop=b"\x02" + U32(100)))
    p.send(pub5("me/r", b"gone", 1, 3, retain=True, prop=b"\x02" + U32(3)))
    for i in (1, 2, 3):                         # 0x10: no subscriber for me/r
        check(ack_reason(p.expect(h.PUBACK, i)) in (0, 0x10), "PUBACK reason for %d", i)
    restart(x, down=4)
    c, sp = raw5(x, cid, clean=False, expiry=300)
    eq(sp, True, "session present")
    got = drain5(c, 0.6)
    eq([m.payload for m in got], [b"long"], "messages left after 4 s stored")
    left = got[0].props.get(0x02, [None])[0]
    check(left is not None and left <= 96, "remaining Message Expiry Interval %s, want <= 96",
          left)
    eq(retained(x, "me/#"), {}, "retained message with expiry 3 s after 4 s stored")


# ---- shard count changes -------------------------------------------------------------------

@t.case("sessions_find_their_home_shard_when_the_shard_count_changes", conf=P,
        spec_only="mosquitto has no shards")
def _(x):
    first = x.shards
    other = 4 if first == 1 else 3
    ids = [h.unique("sc") for _ in range(12)]
    for cid in ids:
        persistent(x, cid, [("sc/" + cid, 1)], settle=0)
    time.sleep(SETTLE)
    pub = x.client()
    for cid in ids:
        pub.publish("sc/" + cid, b"one", qos=1)
        pub.publish("scr/" + cid, cid.encode(), qos=1, retain=True)
    for n, payload in ((other, b"one"), (first, b"two")):
        restart(x, shards=n)
        for cid in ids:
            c = x.raw()
            eq(c.connect(cid, clean=False), (True, 0), "%s on %d shards" % (cid, n))
            got = [m.payload for m in c.drain(0.15)]
            eq(got, [payload], "%s queued on %d shards" % (cid, n))
            c.disconnect()
        time.sleep(SETTLE)
        pub = x.client()
        for cid in ids:
            pub.publish("sc/" + cid, b"two", qos=1)
        eq(retained(x, "scr/#"), {"scr/" + c: c.encode() for c in ids},
           "retained on %d shards" % n)


# ---- store location and sync settings ------------------------------------------------------

@t.case("default_store_is_shardmq_db_in_the_working_directory", conf={"persistence": True},
        spec_only=STORE)
def _(x):
    x.broker.cwd = x.broker.dir
    restart(x)                                  # now running in its own directory
    x.client().publish("loc/t", b"here", qos=1, retain=True)
    restart(x)
    eq(retained(x, "loc/#"), {"loc/t": b"here"}, "retained after restart")
    check(os.path.isdir(os.path.join(x.broker.dir, "shardmq.db", "shard-0")),
          "no shardmq.db/shard-0 in the working directory: %s", os.listdir(x.broker.dir))


@t.case("persistence_file_names_the_store", conf=conf(persistence_file="other.db"),
        spec_only=STORE)
def _(x):
    x.client().publish("pf/t", b"v", qos=1, retain=True)
    restart(x)
    eq(retained(x, "pf/#"), {"pf/t": b"v"}, "retained after restart")
    check(os.path.isdir(os.path.join(x.broker.dir, "other.db", "shard-0")),
          "no other.db/shard-0: %s", os.listdir(x.broker.dir))


@t.case("autosave_interval_with_sync_commit_refuses_start", conf=P, spec_only=STORE,
        shards=[1])
def _(x):
    b = x.broker
    b.conf.update(persistence_sync="commit", autosave_interval=10)
    rc, out = b.run_to_exit(5)
    check(rc not in (None, 0), "broker status %s, want a refusal; output: %s", rc, out[-300:])
    check("autosave_interval" in out, "the refusal names autosave_interval: %s", out[-300:])


def syncs_during(x, action, wait=0.5):
    """Run action() with strace on the broker; returns the fsync-family calls it made."""
    out = os.path.join(x.broker.dir, "strace.txt")
    st = subprocess.Popen(["strace", "-f", "-qq", "-p", str(x.broker.proc.pid), "-o", out,
                           "-e", "trace=fsync,fdatasync,msync,sync_file_range,syncfs"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)                             # attached to every thread
    if st.poll() is not None:
        raise h.Skip("strace cannot attach: %s" % st.stderr.read().decode()[:100])
    action()
    time.sleep(wait)
    st.send_signal(signal.SIGINT)
    st.wait(5)
    with open(out) as f:
        return [ln for ln in f.read().splitlines() if "sync" in ln and "resumed" not in ln]


@t.case("sync_commit_flushes_as_publishes_are_stored", conf=P, spec_only=STORE, shards=[1])
def _(x):
    pub = x.client()
    calls = syncs_during(x, lambda: [pub.publish("sy/t", b"v", qos=1, retain=True)
                                     for _ in range(3)])
    check(calls, "no fsync/fdatasync/msync for 3 retained QoS 1 publishes in commit mode")


@t.case("sync_periodic_flushes_on_sigusr1_only", spec_only=STORE, shards=[1],
        conf=conf(autosave_interval=3600))
def _(x):
    pub = x.client()
    calls = syncs_during(x, lambda: [pub.publish("sy/t", b"v", qos=1, retain=True)
                                     for _ in range(3)])
    eq(calls, [], "flushes in periodic mode before autosave_interval")
    calls = syncs_during(x, lambda: x.broker.proc.send_signal(signal.SIGUSR1))
    check(calls, "no flush after SIGUSR1")
    check(x.broker.alive(), "broker died on SIGUSR1")
    restart(x, kill=True)
    eq(retained(x, "sy/#"), {"sy/t": b"v"}, "retained after SIGUSR1 and SIGKILL")


# ---- a store start-up must refuse ----------------------------------------------------------

def refused(x, what, words):
    """Start a broker on the same store; it must exit non-zero naming the path and the fault."""
    before = store_files(x)
    rc, out = x.broker.run_to_exit(8)
    check(rc not in (None, 0), "%s: broker status %s, want a refusal; output: %s",
          what, rc, out[-400:])
    check(store_dir(x) in out or "shardmq.db" in out, "%s: the message names the store path: %s",
          what, out[-400:])
    check(any(w in out.lower() for w in words), "%s: the message says what is wrong (%s): %s",
          what, "/".join(words), out[-400:])
    eq(store_files(x), before, "%s: store files after the refused start" % what)
    return out


@t.case("damaged_store_refuses_start_and_is_left_alone", conf=P, spec_only=STORE)
def _(x):
    pub = x.client()
    for i in range(50):
        pub.publish("dm/%d" % i, b"v" * 100, qos=1, retain=True)
    x.stop_broker()
    data = os.path.join(store_dir(x), "shard-0", "data.mdb")
    with open(data, "r+b") as f:                # both LMDB meta pages
        f.write(b"\xa5" * 8192)
    refused(x, "damaged", ("corrupt", "damaged", "invalid", "not an lmdb", "bad"))


@t.case("store_locked_by_a_running_broker_refuses_start", conf=P, spec_only=STORE)
def _(x):
    x.client().publish("lk/t", b"mine", qos=1, retain=True)
    refused(x, "locked", ("lock", "in use", "another", "running"))
    eq(retained(x, "lk/#"), {"lk/t": b"mine"}, "the running broker's store after the attempt")


@t.case("store_from_a_newer_version_refuses_start", conf=P, spec_only=STORE)
def _(x):
    x.client().publish("nv/t", b"v", qos=1, retain=True)
    x.stop_broker()
    bump_version(os.path.join(store_dir(x), "shard-0"))
    refused(x, "newer version", ("version", "newer"))


def bump_version(env):
    """Raise the format version in the store's version record by one, with mdb_dump / mdb_load.
    The record (core/persist.h): key 'V', value 0x00 (unmapped key) "SMQS" u32 format."""
    dump = subprocess.run(["mdb_dump", env], capture_output=True, text=True, check=True).stdout
    lines = dump.splitlines()
    header = lines[:lines.index("HEADER=END") + 1]
    for i, ln in enumerate(lines):
        if ln.strip() == b"V".hex() and i + 1 < len(lines):
            val = bytes.fromhex(lines[i + 1].strip())
            break
    else:
        raise h.Skip("no version record (key 'V') in %s" % env)
    check(len(val) == 9 and val[1:5] == b"SMQS", "version record %r", val)
    val = val[:5] + (int.from_bytes(val[5:], "big") + 1).to_bytes(4, "big")
    load = "\n".join(header + [" " + b"V".hex(), " " + val.hex(), "DATA=END"]) + "\n"
    subprocess.run(["mdb_load", env], input=load, text=True, check=True, capture_output=True)


# ---- a full disk ---------------------------------------------------------------------------

class Space:
    """The store on a small tmpfs (mount), or else the broker under RLIMIT_FSIZE (prlimit
    lifts it again). fill() takes the space away, free() gives it back."""

    def __init__(self, x):
        self.x, self.mnt, self.filler = x, None, None
        mnt = os.path.join(x.broker.dir, "small")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", mnt],
                           capture_output=True)
        if r.returncode == 0:
            self.mnt = mnt
            x.broker.conf["persistence_location"] = mnt
        else:
            x.broker.preexec = lambda: resource.setrlimit(
                resource.RLIMIT_FSIZE, (1 << 40, resource.RLIM_INFINITY))
        restart(x)

    def fill(self):
        if self.mnt:
            self.filler = os.path.join(self.mnt, "filler")
            subprocess.run(["dd", "if=/dev/zero", "of=" + self.filler, "bs=64k"],
                           capture_output=True)
        else:
            size = sum(os.path.getsize(os.path.join(r, f))
                       for r, _, fs in os.walk(store_dir(self.x)) for f in fs)
            resource.prlimit(self.x.broker.proc.pid, resource.RLIMIT_FSIZE,
                             (size, resource.RLIM_INFINITY))

    def free(self):
        if self.mnt:
            os.unlink(self.filler)
        else:
            resource.prlimit(self.x.broker.proc.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    def close(self):
        if self.mnt:
            subprocess.run(["umount", "-l", self.mnt], capture_output=True)


@t.case("disk_full_refuses_qos1_qos2_keeps_qos0_and_recovers", conf=P, spec_only=STORE)
def _(x):
    sp = Space(x)
    try:
        disk_full(x, sp)
    finally:
        sp.close()


def disk_full(x, sp):
    cid = h.unique()
    persistent(x, cid, [("df/q", 1)])          # publishes to df/q must be stored
    live = x.client()
    live.subscribe([("df/live", 0)])
    p, _ = raw5(x, h.unique())
    sp.fill()
    big, reasons, pid = b"z" * 60000, [], 0
    for pid in range(1, 400):
        p.send(pub5("df/q", big, 1 if pid % 2 else 2, pid))
        if pid % 2:
            r = ack_reason(p.expect(h.PUBACK, pid))
        else:
            r = ack_reason(p.expect(h.PUBREC, pid))
            p.send(h.ack_packet(h.PUBREL, pid))
            p.expect(h.PUBCOMP, pid)
        reasons.append(r)
        if r:
            break
    eq(reasons[-1], 0x97, "reason once the disk is full (after %d publishes)" % pid)
    p.send(pub5("df/q", big, 1, 1000))         # still refused, not taken
    eq(ack_reason(p.expect(h.PUBACK, 1000)), 0x97, "QoS 1 while full")
    p.send(pub5("df/q", big, 2, 1001))
    eq(ack_reason(p.expect(h.PUBREC, 1001)), 0x97, "QoS 2 PUBREC while full")
    old = x.raw()
    old.connect_ok(h.unique())
    old.send(h.publish_packet("df/q", big, qos=1, pid=5))
    got = old.wait_closed(3)
    check(not any(q.type == h.PUBACK for q in got), "3.1.1 publish acknowledged while full")
    p.send(pub5("df/live", b"q0", 0))
    eq(live.recv_msg().payload, b"q0", "QoS 0 while full")
    log = x.broker.log_since_start().lower()
    check(any(w in log for w in ("space", "full", "enospc", "quota", "too large")),
          "no log line about the full disk: %s", log[-300:])
    sp.free()
    ok = h.wait_until(lambda: retry_qos1(p), 15, step=0.5)
    check(ok, "QoS 1 still refused 15 s after space returned")
    c = x.raw()
    eq(c.connect(cid, clean=False), (True, 0), "(session present, rc)")
    got = c.drain(1.0)
    check(got and got[-1].payload == b"after", "the message stored after recovery: %s",
          [m.payload[:10] for m in got][-3:])


def retry_qos1(p):
    pid = p.next_pid() + 2000
    p.send(pub5("df/q", b"after", 1, pid))
    return ack_reason(p.expect(h.PUBACK, pid)) == 0


if __name__ == "__main__":
    t.main()
