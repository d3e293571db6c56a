"""Raw MQTT 5.0 packets for the end-to-end scripts that speak 5.0 without a client library
(50_mqtt5.py, 80_persist.py): builders, the property parser and the reason of an ack."""
import struct

import harness as h

S = h.mqtt_str


def U16(v):
    return struct.pack(">H", v)


def U32(v):
    return struct.pack(">I", v)


def props(*items):
    b = b"".join(items)
    return h.varint(len(b)) + b


def connect5(cid, clean=True, keepalive=60, prop=b"", will=None):
    """5.0 CONNECT. will = (topic, payload, will-properties bytes[, will QoS])."""
    flags = 0x02 if clean else 0
    payload = S(cid)
    if will:
        flags |= 0x04 | ((will[3] if len(will) > 3 else 0) << 3)
        payload += props(will[2]) + S(will[0]) + S(will[1])
    var = S("MQTT") + bytes([5, flags]) + U16(keepalive) + props(prop)
    return h.packet(0x10, var + payload)


def pub5(topic, payload=b"", qos=0, pid=None, retain=False, prop=b""):
    var = S(topic) + (U16(pid) if qos else b"") + props(prop)
    return h.packet(0x30 | (qos << 1) | (1 if retain else 0), var + payload)


def sub5(c, filt, opts, pid=1, sid=None):
    """SUBSCRIBE one filter with the options byte (QoS | NL 4 | RAP 8 | RH << 4), optionally
    with a subscription identifier; returns the SUBACK's reason codes."""
    pr = props(b"\x0b" + h.varint(sid)) if sid else props()
    c.send(h.packet(0x82, U16(pid) + pr + S(filt) + bytes([opts])))
    p = c.expect(h.SUBACK, pid)
    return list(p.body[3:])


def _varint(b, i):
    n, mult = 0, 1
    while True:
        n += (b[i] & 0x7F) * mult
        mult *= 128
        i += 1
        if not b[i - 1] & 0x80:
            return n, i


def parse_props(b):
    """(dict id -> list of values, rest): integers decoded, user properties as (key, value),
    everything else as raw bytes."""
    n, i = _varint(b, 0)
    body, rest, out, j = b[i:i + n], b[i + n:], {}, 0
    while j < len(body):
        pid = body[j]
        j += 1
        if pid in (0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A):
            v, j = body[j], j + 1
        elif pid in (0x13, 0x21, 0x22, 0x23):
            v, j = struct.unpack(">H", body[j:j + 2])[0], j + 2
        elif pid in (0x02, 0x11, 0x18, 0x27):
            v, j = struct.unpack(">I", body[j:j + 4])[0], j + 4
        elif pid == 0x0B:
            v, j = _varint(body, j)
        elif pid == 0x26:
            k = struct.unpack(">H", body[j:j + 2])[0]
            key = body[j + 2:j + 2 + k]
            j += 2 + k
            k = struct.unpack(">H", body[j:j + 2])[0]
            v = (key, body[j + 2:j + 2 + k])
            j += 2 + k
        else:
            k = struct.unpack(">H", body[j:j + 2])[0]
            v, j = body[j + 2:j + 2 + k], j + 2 + k
        out.setdefault(pid, []).append(v)
    return out, rest


def ack_reason(p):
    return p.body[2] if len(p.body) > 2 else 0
