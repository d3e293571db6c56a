#!/usr/bin/python3
"""07 will: the will message goes out, with its QoS and retain flag, when the connection ends
without DISCONNECT (socket closed, protocol error, takeover; keepalive timeout is in
06_keepalive.py), and not after a DISCONNECT.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq  # noqa: E402

t = h.Suite("07_will")


def setup(x, qos=1, retain=False, sub_qos=2, cid=None, **kw):
    """An observer subscribed to the will topic and a connected client with a will."""
    cid = cid or h.unique()
    topic = "will/" + cid
    obs = x.client()
    obs.subscribe([(topic, sub_qos)])
    c = x.raw()
    c.connect_ok(cid, will=(topic, b"gone:" + cid.encode(), qos, retain), **kw)
    return obs, c, topic


@t.case("will_on_socket_close_with_qos_1_and_retain")
def _(x):
    obs, c, topic = setup(x, qos=1, retain=True)
    c.close()
    m = obs.recv_msg()
    # [MQTT-3.1.2-8] published; existing subscribers see RETAIN=0 [MQTT-3.3.1-9]
    eq((m.topic, m.qos, m.retain), (topic, 1, False), "will (topic, QoS, retain)")
    late = x.client()
    late.subscribe([(topic, 2)])
    m = late.recv_msg()
    eq((m.topic, m.qos, m.retain), (topic, 1, True), "retained will")   # [MQTT-3.1.2-17]


@t.case("will_qos_2_not_retained")
def _(x):
    obs, c, topic = setup(x, qos=2, retain=False)
    c.close()
    m = obs.recv_msg()
    eq((m.topic, m.qos, m.retain), (topic, 2, False), "will (topic, QoS, retain)")
    late = x.client()
    late.subscribe([(topic, 2)])
    late.no_msg(0.4)                               # [MQTT-3.1.2-16] not retained


@t.case("will_qos_capped_by_subscription")
def _(x):
    obs, c, topic = setup(x, qos=2, sub_qos=0)
    c.close()
    eq(obs.recv_msg().qos, 0, "will QoS")


@t.case("will_on_protocol_error")
def _(x):
    obs, c, topic = setup(x, qos=1)
    c.send(h.publish_packet("bad/#", b"wildcard in a topic name", qos=0))   # [MQTT-3.3.2-2]
    c.wait_closed()
    eq(obs.recv_msg().topic, topic, "will topic")


@t.case("will_on_takeover")
def _(x):
    cid = h.unique()
    obs, c, topic = setup(x, qos=1, cid=cid)
    new = x.raw()
    new.connect_ok(cid)                            # [MQTT-3.1.4-2] the old one is closed...
    c.wait_closed()
    eq(obs.recv_msg().payload, b"gone:" + cid.encode(), "will payload")   # ...without DISCONNECT


@t.case("no_will_after_disconnect")
def _(x):
    obs, c, topic = setup(x, qos=1, retain=True)
    c.disconnect()                                 # [MQTT-3.1.2-10] will discarded
    obs.no_msg(0.6)
    late = x.client()
    late.subscribe([(topic, 1)])
    late.no_msg(0.3)


@t.case("will_of_v31_client")
def _(x):
    obs, c, topic = setup(x, qos=1, proto="MQIsdp", level=3)
    c.close()
    eq(obs.recv_msg().topic, topic, "will topic")


@t.case("will_of_persistent_session")
def _(x):
    obs, c, topic = setup(x, qos=1, clean=False)
    c.close()
    eq(obs.recv_msg().topic, topic, "will topic")


@t.case("will_with_empty_payload")
def _(x):
    cid = h.unique()
    obs = x.client()
    obs.subscribe([("will/" + cid, 1)])
    c = x.client(cid, will=("will/" + cid, b"", 1, False))
    c.close()
    m = obs.recv_msg()
    eq((m.topic, m.payload), ("will/" + cid, b""), "will")


@t.case("paho_will_on_connection_loss")
def _(x):
    cid = h.unique("pw")
    obs = x.client()
    obs.subscribe([("pwill/#", 1)])
    c = x.paho(cid=cid, will=("pwill/" + cid, b"bye", 1, False))
    c.connect_ok()
    c.close()
    m = obs.recv_msg()
    eq((m.topic, m.payload), ("pwill/" + cid, b"bye"), "will")


if __name__ == "__main__":
    t.main()
