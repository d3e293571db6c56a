#!/usr/bin/python3
"""06 keepalive: PINGREQ/PINGRESP, a silent client is closed after 1.5 x keepalive and its will
goes out, any traffic (not only PINGREQ) keeps a connection alive, keepalive 0 disables the timer.
Bounds are loose on purpose: machines are noisy, and these are behaviours, not speeds.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("06_keepalive")


@t.case("pingreq_gets_pingresp_exact_bytes")
def _(x):
    c = x.client(keepalive=10)
    for _ in range(3):
        c.send(h.PINGREQ_PACKET)
        p = c.expect(h.PINGRESP)
        eq((p.flags, p.body), (0, b""), "PINGRESP")          # [MQTT-3.12.4-1]


def silent_will_client(x, keepalive=1):
    """An observer on the will topic and a connected client that then goes silent."""
    obs = x.client()
    cid = h.unique()
    obs.subscribe([("ka/will/" + cid, 1)])
    c = x.raw()
    c.connect_ok(cid, keepalive=keepalive, will=("ka/will/" + cid, b"timeout", 1, False))
    return obs, c, cid


@t.case("silent_client_closed_and_will_sent")
def _(x):
    obs, c, cid = silent_will_client(x)
    c.wait_closed(timeout=8)           # loose: mosquitto checks only every ~5 s
    m = obs.recv_msg(timeout=3)
    eq((m.topic, m.payload, m.qos), ("ka/will/" + cid, b"timeout", 1), "will")


@t.case("silent_client_closed_after_1_5x_keepalive",
        spec_only="mosquitto 2.0.11 checks keepalives about every 5 s (keepalive 1 closes "
                  "after ~5.3 s)")
def _(x):
    obs, c, cid = silent_will_client(x)
    t0 = time.monotonic()
    c.wait_closed(timeout=5)
    dt = time.monotonic() - t0
    check(1.0 <= dt <= 3.5, "closed after %.2f s, want about 1.5 s", dt)   # [MQTT-3.1.2-24]
    eq(obs.recv_msg(timeout=3).payload, b"timeout", "will payload")


@t.case("pingreq_keeps_connection_alive")
def _(x):
    c = x.client(keepalive=1)
    for _ in range(6):
        time.sleep(0.5)
        c.ping()
    check(c.is_open(0.1), "closed although it sent PINGREQ every 0.5 s")


@t.case("publish_traffic_keeps_connection_alive")
def _(x):
    c = x.client(keepalive=1)
    for i in range(6):
        time.sleep(0.5)
        c.publish("ka/traffic", b"%d" % i, qos=1)
    check(c.is_open(0.1), "closed although it published every 0.5 s")


@t.case("keepalive_0_never_times_out")
def _(x):
    c = x.client(keepalive=0)
    check(c.is_open(3.0), "closed a keepalive-0 client after 3 s of silence")
    c.ping()


@t.case("keepalive_timeout_spares_other_clients")
def _(x):
    quiet = x.client(keepalive=1)
    busy = x.client(keepalive=1)
    deadline = time.monotonic() + 8
    while quiet.is_open(0.5):
        check(time.monotonic() < deadline, "the silent client was not closed within 8 s")
        busy.ping()
    busy.ping()
    check(busy.is_open(0.1), "the active client was closed too")


if __name__ == "__main__":
    t.main()
