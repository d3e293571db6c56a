#!/usr/bin/python3
"""42 acl: mosquitto-format ACL files (acl_file) as clients see them, over a plain listener with
a password file (see 40_security.py for the broker and client helpers).

What a user sees and this checks:
  - a PUBLISH the client may not write: 3.1.1 gets its PUBACK / PUBREC as usual and the message
    goes nowhere; 5.0 gets PUBACK / PUBREC reason 0x87; the connection stays;
  - SUBSCRIBE to a filter no read rule can match, or that a deny rule covers: SUBACK 0x80
    (3.1.1) / 0x87 (5.0), per filter;
  - delivery checks read access message by message: wildcard subscriptions, retained messages
    and wills all skip the topics the receiver may not read; deny beats readwrite;
  - "topic" lines before any "user" line are the rules of anonymous clients; a user without a
    section may do nothing; "pattern" lines with %u and %c apply to everyone;
  - a will the client may not publish refuses the CONNECT (5 / 0x87);
  - 5.0 PUBLISH to $SYS/... gets 0x87;
  - SIGHUP applies a changed ACL file to connected clients; a broken file leaves the old rules.
"""
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sec = importlib.import_module("40_security")
if __name__ == "__main__":
    sec.reexec_with_paho()

h = sec.h
check, eq = sec.check, sec.eq
PKI, refused = sec.PKI, sec.refused

t = sec.Suite("42_acl")

BASE = "listener {p0} 127.0.0.1\npassword_file {pki}/passwd\nacl_file {dir}/acl\n"

SUB_SPEC = ("mosquitto 2.0.11 grants every SUBSCRIBE and only filters deliveries; shardmq "
            "refuses filters that can never deliver")


def acl_broker(x, acl, extra=""):
    return x.broker(BASE + extra, files={"acl": acl})


def login(x, b, user, v5=False, **kw):
    return x.client(b.ports[0], v5=v5, user=user, password=PKI.USERS[user], **kw)


def topics(c):
    """Topics of every message c gets until none comes for a while (3.1.1)."""
    return [m.topic for m in c.drain(0.4)]


PUB_ACL = "user alice\ntopic readwrite a/#\nuser carol\ntopic read #\n"


@t.case("publish_denied_in_v311_is_acked_and_dropped")
def _(x):
    b = acl_broker(x, PUB_ACL)
    carol = login(x, b, "carol")
    eq(carol.subscribe([("#", 2)]), [2], "carol's SUBACK for #")
    alice = login(x, b, "alice")
    alice.publish("b/x", b"q1", qos=1)            # waits for the PUBACK
    alice.publish("b/y", b"q2", qos=2)            # PUBREC, PUBREL, PUBCOMP
    alice.publish("b/z", b"q0", qos=0)
    alice.publish("a/ok", b"fine", qos=1)
    eq(topics(carol), ["a/ok"], "topics carol got")
    alice.ping()                                  # still connected


@t.case("publish_denied_in_v5_gets_0x87")
def _(x):
    b = acl_broker(x, PUB_ACL)
    carol = login(x, b, "carol")
    carol.subscribe([("#", 2)])
    alice = login(x, b, "alice", v5=True)
    eq(alice.publish5("b/x", b"q1", qos=1), 0x87, "PUBACK reason for b/x")
    eq(alice.publish5("b/y", b"q2", qos=2), 0x87, "PUBREC reason for b/y")
    eq(alice.publish5("b/r", b"kept?", qos=1, retain=True), 0x87, "PUBACK reason for b/r")
    eq(alice.publish5("a/ok", b"fine", qos=1), 0, "PUBACK reason for a/ok")
    eq(topics(carol), ["a/ok"], "topics carol got")
    alice.ping()
    late = login(x, b, "carol")
    late.subscribe([("b/#", 1)])
    late.no_msg(0.3)                              # the refused retained message was not kept


SUB_ACL = "user alice\ntopic read a/#\ntopic deny a/secret/#\ntopic write w/#\n"


@t.case("subscribe_denied_gets_0x80_in_v311", spec_only=SUB_SPEC)
def _(x):
    b = acl_broker(x, SUB_ACL)
    alice = login(x, b, "alice")
    for f in ("b/#", "a/secret/#", "a/secret/x/+", "a/secret", "w/x", "b/+/c"):
        eq(alice.subscribe([(f, 1)]), [0x80], "SUBACK for %s" % f)
    eq(alice.subscribe([("a/x", 1), ("b/x", 2), ("a/+/y", 2), ("#", 0)]), [1, 0x80, 2, 0],
       "SUBACK for a/x, b/x, a/+/y, #")
    alice.ping()


@t.case("subscribe_denied_gets_0x87_in_v5", spec_only=SUB_SPEC)
def _(x):
    b = acl_broker(x, SUB_ACL)
    alice = login(x, b, "alice", v5=True)
    eq(alice.subscribe5([("b/#", 1), ("a/secret/#", 1), ("a/x", 1)]), [0x87, 0x87, 1],
       "SUBACK for b/#, a/secret/#, a/x")
    alice.ping()


@t.case("read_checked_per_message_and_deny_wins")
def _(x):
    b = acl_broker(x, "user alice\ntopic write #\nuser bob\ntopic readwrite a/#\n"
                      "topic deny a/secret/#\n")
    bob = login(x, b, "bob")
    eq(bob.subscribe([("#", 1)]), [1], "bob's SUBACK for #")
    alice = login(x, b, "alice")
    for topic in ("a/open", "a/secret/x", "b/x", "a/secret", "c", "a/last"):
        alice.publish(topic, b"m", qos=1)
    eq(topics(bob), ["a/open", "a/last"], "topics bob got")
    bob.publish("a/secret/y", b"m", qos=1)                # deny covers writing too
    bob.no_msg(0.3)


@t.case("shared_subscriptions_checked_for_read")
def _(x):
    b = acl_broker(x, "user alice\ntopic write #\nuser bob\ntopic read a/#\n")
    bob = login(x, b, "bob")
    eq(bob.subscribe([("$share/g/#", 1)]), [1], "bob's SUBACK for $share/g/#")
    alice = login(x, b, "alice")
    for topic in ("b/x", "a/open", "c/y", "a/last"):
        alice.publish(topic, b"m", qos=1)
    eq(topics(bob), ["a/open", "a/last"], "topics bob got")


@t.case("shared_subscription_denied_in_v5", spec_only=SUB_SPEC)
def _(x):
    b = acl_broker(x, SUB_ACL)
    alice = login(x, b, "alice", v5=True)
    eq(alice.subscribe5([("$share/g/b/#", 1), ("$share/g/a/secret/#", 1), ("$share/g/a/+", 1)]),
       [0x87, 0x87, 1], "SUBACK for $share/g/b/#, $share/g/a/secret/#, $share/g/a/+")


@t.case("retained_messages_checked_for_read")
def _(x):
    b = acl_broker(x, "user alice\ntopic write r/#\nuser bob\ntopic read r/open\n"
                      "topic read r/+/pub\n")
    alice = login(x, b, "alice")
    for topic in ("r/open", "r/secret", "r/x/pub", "r/x/priv"):
        alice.publish(topic, b"kept", qos=1, retain=True)
    bob = login(x, b, "bob")
    eq(bob.subscribe([("r/#", 1)]), [1], "bob's SUBACK for r/#")
    got = bob.drain(0.4)
    eq(sorted((m.topic, m.retain) for m in got), [("r/open", True), ("r/x/pub", True)],
       "retained messages bob got")


@t.case("wills_checked_for_read")
def _(x):
    b = acl_broker(x, "user alice\ntopic write will/#\nuser bob\ntopic read will/#\n"
                      "user carol\ntopic read will/public\n")
    bob, carol = login(x, b, "bob"), login(x, b, "carol")
    eq(bob.subscribe([("will/+", 1)]), [1], "bob's SUBACK")
    eq(carol.subscribe([("will/+", 1)]), [1], "carol's SUBACK")
    alice = login(x, b, "alice", will=("will/alice", b"gone", 1, False))
    alice.close()                                         # no DISCONNECT: the will goes out
    eq(bob.recv_msg().topic, "will/alice", "will bob got")
    carol.no_msg(0.3)
    login(x, b, "alice").publish("will/public", b"hi", qos=1)
    eq(topics(carol), ["will/public"], "topics carol got")


@t.case("will_the_client_may_not_publish_refuses_connect",
        spec_only="mosquitto 2.0.11 lets the CONNECT in and drops the will when it fires")
def _(x):
    b = acl_broker(x, "user alice\ntopic write a/#\n")
    pw = PKI.USERS["alice"]
    eq(refused(b.ports[0], user="alice", password=pw, will=("x/no", b"w", 0, False)), 5,
       "3.1.1 CONNACK with a will on x/no")
    eq(refused(b.ports[0], v5=True, user="alice", password=pw, will=("x/no", b"w", 1, True)),
       0x87, "5.0 CONNACK with a will on x/no")
    eq(refused(b.ports[0], user="alice", password=pw, will=("a/yes", b"w", 0, False)), 0,
       "CONNACK with a will on a/yes")


@t.case("publish_to_sys_refused_in_v5")
def _(x):
    b = x.broker("listener {p0} 127.0.0.1\nallow_anonymous true\n")
    obs = x.client(b.ports[0])
    obs.subscribe([("$SYS/test/#", 1)])
    c = x.client(b.ports[0], v5=True)
    eq(c.publish5("$SYS/test/x", b"fake", qos=1), 0x87, "PUBACK reason for $SYS/test/x")
    eq(c.publish5("$SYS/test/y", b"fake", qos=2), 0x87, "PUBREC reason for $SYS/test/y")
    x.client(b.ports[0]).publish("$SYS/test/z", b"fake", qos=1)      # 3.1.1: acked, dropped
    obs.no_msg(0.4)
    c.ping()


@t.case("patterns_with_user_name_and_client_id")
def _(x):
    b = acl_broker(x, "pattern readwrite users/%u/#\npattern write clients/%c/#\n"
                      "user carol\ntopic read #\n")
    carol = login(x, b, "carol")
    carol.subscribe([("users/#", 1), ("clients/#", 1)])
    bob = login(x, b, "bob")
    eq(bob.subscribe([("users/#", 1)]), [1], "bob's SUBACK for users/#")
    alice = login(x, b, "alice", v5=True, cid="dev1")
    eq(alice.subscribe5([("users/#", 1)]), [1], "alice's SUBACK for users/#")
    for topic, want in (("users/alice/x", 0), ("users/bob/x", 0x87), ("clients/dev1/t", 0),
                        ("clients/dev2/t", 0x87), ("users/%u/x", 0x87)):
        eq(alice.publish5(topic, b"p", qos=1), want, "PUBACK reason for " + topic)
    eq(sorted(topics(carol)), ["clients/dev1/t", "users/alice/x"], "topics carol got")
    eq(alice.recv5()[0], "users/alice/x", "alice reads her own users/ level")
    bob.no_msg(0.3)                                  # but bob may not read it


@t.case("pattern_values_with_slash_or_wildcards_match_nothing",
        spec_only="mosquitto 2.0.11 substitutes a client id containing '/' into %c")
def _(x):
    b = acl_broker(x, "pattern write clients/%c/#\n")
    c = login(x, b, "alice", v5=True, cid="dev1/x")
    eq(c.publish5("clients/dev1/x/t", b"p", qos=1), 0x87, "id dev1/x writing clients/dev1/x/t")
    c2 = login(x, b, "bob", v5=True, cid="+")
    eq(c2.publish5("clients/x/t", b"p", qos=1), 0x87, "id + writing clients/x/t")


@t.case("anonymous_section_and_users_without_a_section")
def _(x):
    b = acl_broker(x, "topic read public/#\nuser alice\ntopic readwrite public/#\n",
                   "allow_anonymous true\n")
    anon = x.client(b.ports[0])
    eq(anon.subscribe([("public/#", 1)]), [1], "anonymous SUBACK for public/#")
    alice = login(x, b, "alice")
    alice.subscribe([("public/#", 1)])
    anon.publish("public/x", b"from anon", qos=1)          # read only: acked and dropped
    bob = login(x, b, "bob", v5=True)                       # a user without a section
    eq(bob.publish5("public/y", b"from bob", qos=1), 0x87, "bob's PUBACK reason")
    alice.publish("public/z", b"from alice", qos=1)
    eq(topics(anon), ["public/z"], "topics anonymous got")
    eq(topics(alice), ["public/z"], "topics alice got")


@t.case("sighup_applies_a_new_acl_and_keeps_it_when_the_next_is_broken",
        spec_only="mosquitto 2.0.11 runs without any ACL after a SIGHUP with a broken file")
def _(x):
    b = acl_broker(x, "user alice\ntopic write a/#\nuser carol\ntopic read #\n")
    carol = login(x, b, "carol")
    carol.subscribe([("#", 1)])
    alice = login(x, b, "alice", v5=True)
    eq(alice.publish5("b/x", qos=1), 0x87, "b/x before the reload")
    b.write("acl", "user alice\ntopic write a/#\ntopic write b/#\nuser carol\ntopic read #\n")
    b.hup()
    eq(alice.publish5("b/x", b"1", qos=1), 0, "b/x after the reload, same connection")
    eq(login(x, b, "alice", v5=True).publish5("b/x", b"2", qos=1), 0, "b/x, new connection")
    # Broken: would drop b/# if it were applied partly.
    b.write("acl", "user alice\ntopic write a/#\ntopic write a/#/b\nuser carol\ntopic read #\n")
    b.hup(ok=False)
    eq(alice.publish5("b/x", b"3", qos=1), 0, "b/x after a failed reload")
    eq(alice.publish5("c/x", qos=1), 0x87, "c/x after a failed reload")
    eq([m.payload for m in carol.drain(0.4)], [b"1", b"2", b"3"], "payloads carol got")


if __name__ == "__main__":
    t.main()
