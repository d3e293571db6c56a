#!/usr/bin/python3
"""09 takeover: a second connection with the same client id closes the first [MQTT-3.1.4-2],
and the session (persistent or not) continues on the new connection as its clean flag says.
With --shards 4 the two connections usually arrive on different shards.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

t = h.Suite("09_takeover")


@t.case("second_connection_closes_first")
def _(x):
    cid = h.unique()
    a = x.client(cid)
    b = x.raw()
    eq(b.connect(cid), (False, 0), "new connection (session present, rc)")
    eq(a.wait_closed(), [], "packets to the old connection before EOF")
    b.ping()


@t.case("takeover_continues_persistent_session")
def _(x):
    cid = h.unique()
    a = x.client(cid, clean=False)
    a.subscribe([("tk/t", 1)])
    b = x.raw()
    eq(b.connect(cid, clean=False), (True, 0), "(session present, rc)")
    a.wait_closed()
    x.client().publish("tk/t", b"x", qos=1)
    eq(b.recv_msg().payload, b"x", "message on the new connection")


@t.case("takeover_with_clean_session_starts_fresh")
def _(x):
    cid = h.unique()
    a = x.client(cid, clean=False)
    a.subscribe([("tkc/t", 1)])
    b = x.raw()
    eq(b.connect(cid, clean=True), (False, 0), "(session present, rc)")
    a.wait_closed()
    x.client().publish("tkc/t", b"x", qos=1)
    b.no_msg(0.4)


@t.case("takeover_resends_inflight_to_new_connection")
def _(x):
    cid = h.unique()
    a = x.client(cid, clean=False)
    a.subscribe([("tki/t", 1)])
    x.client().publish("tki/t", b"inflight", qos=1)
    m1 = a.recv_msg(ack=False)
    b = x.raw()
    eq(b.connect(cid, clean=False), (True, 0), "(session present, rc)")
    m2 = b.recv_msg()
    eq((m2.payload, m2.dup, m2.pid), (b"inflight", True, m1.pid), "re-sent PUBLISH")
    a.wait_closed()


@t.case("takeover_chain_of_ten")
def _(x):
    cid = h.unique()
    conns = []
    for i in range(10):
        c = x.raw()
        c.connect_ok(cid, clean=(i % 2 == 0))
        if conns:
            conns[-1].wait_closed()
        conns.append(c)
    conns[-1].ping()


@t.case("simultaneous_connects_leave_exactly_one")
def _(x):
    cid = h.unique()
    conns = [x.raw() for _ in range(8)]
    for c in conns:
        c.send(h.connect_packet(cid, clean=False))
    time.sleep(0.5)
    alive = [c for c in conns if c.is_open(0.3)]
    eq(len(alive), 1, "connections left open")
    survivor = alive[0]
    survivor.expect(h.CONNACK)
    survivor.ping()
    x.client().ping()


@t.case("takeover_between_protocol_versions")
def _(x):
    cid = h.unique()
    a = x.client(cid, proto="MQIsdp", level=3)
    b = x.client(cid)
    a.wait_closed()
    c = x.raw()
    c.connect_ok(cid, proto="MQIsdp", level=3)
    b.wait_closed()
    c.ping()


@t.case("paho_client_taken_over_sees_connection_lost")
def _(x):
    cid = h.unique("pt")
    p = x.paho(cid=cid)
    p.connect_ok()
    x.client(cid)
    check(h.wait_until(lambda: p.lost is not None, 3), "paho client still connected")


if __name__ == "__main__":
    t.main()
