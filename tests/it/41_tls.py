#!/usr/bin/python3
"""41 tls: TLS listeners driven by real clients (mosquitto_pub / mosquitto_sub, paho-mqtt,
Python's ssl module), with certificates made by openssl at run time (see 40_security.py).

What a user sees and this checks:
  - a client trusting the broker's CA gets in and messages flow; a client trusting another CA
    gives up on the handshake;
  - require_certificate: a client certificate from the CA gets in; none, an expired one, or one
    from another CA (with the same CN) is refused, each costing only that connection and a log
    line "TLS from ... failed: ...";
  - tls_version tlsv1.3 refuses TLS 1.2 clients; the default takes 1.2 and 1.3;
  - plaintext MQTT, garbage and stalled handshakes on the TLS port hurt no one else;
  - use_identity_as_username: the certificate's CN is the user name for the ACL, whatever the
    CONNECT says;
  - SIGHUP reads the certificate files again (a broken one leaves the old in force).
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

import shutil  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import time  # noqa: E402

h = sec.h
check, eq = sec.check, sec.eq
PKI, MOSQ = sec.PKI, sec.MOSQ
tls_ctx, refused, mosq_pub = sec.tls_ctx, sec.refused, sec.mosq_pub

t = sec.Suite("41_tls")

TLS = ("listener {p0} 127.0.0.1\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
       "allow_anonymous true\n")
MTLS = TLS + "cafile {pki}/ca.crt\nrequire_certificate true\n"


def tls_roundtrip(x, port, sub_cert=None, pub_cert=None):
    sec.roundtrip(x, port, port, sub_kw={"tls": tls_ctx(cert=sub_cert)},
                  pub_kw={"tls": tls_ctx(cert=pub_cert)})


def s_client(port, version_flag):
    """openssl s_client pinned to one TLS version: the version negotiated, or None."""
    rc, out = sec.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, version_flag,
                       "-CAfile", PKI.path("ca.crt"), "-verify_return_error",
                       "-verify_hostname", "localhost"])
    for line in out.splitlines():
        if line.startswith("New, ") and rc == 0 and "(NONE)" not in line:
            return line.split(",")[1].strip()
    return None


def failure_logged(b, since):
    if MOSQ:                      # mosquitto words it differently
        return
    check(b.wait_log("TLS from", since, 3.0) and "failed" in b.log()[since:],
          "no 'TLS from ... failed' log line; log: %s", b.log()[since:][-300:])


@t.case("mosquitto_clients_over_tls_with_cafile")
def _(x):
    b = x.broker(TLS)
    topic = "tls/" + h.unique()
    sub = x.mosq_sub(b.ports[0], topic, ca="ca")
    sub.wait_subscribed()
    rc, out = mosq_pub(b.ports[0], topic, "over tls", ca="ca")
    eq((rc, out), (0, ""), "mosquitto_pub --cafile (status, output)")
    eq(sub.result(), (0, ["over tls"]), "mosquitto_sub (status, messages)")


@t.case("client_trusting_another_ca_gives_up")
def _(x):
    b = x.broker(TLS)
    rc, out = mosq_pub(b.ports[0], ca="ca2")
    check(rc != 0, "mosquitto_pub --cafile ca2.crt got in (%s)", out)
    try:
        sec.Conn(b.ports[0], tls=tls_ctx("ca2")).close()
        raise AssertionError("Python ssl verified the broker's certificate against ca2")
    except ssl.SSLCertVerificationError:
        pass
    tls_roundtrip(x, b.ports[0])


@t.case("mtls_client_certificate_gets_in")
def _(x):
    b = x.broker(MTLS)
    topic = "mtls/" + h.unique()
    sub = x.mosq_sub(b.ports[0], topic, ca="ca", cert="alice")
    sub.wait_subscribed()
    rc, out = mosq_pub(b.ports[0], topic, "with a cert", ca="ca", cert="bob")
    eq((rc, out), (0, ""), "mosquitto_pub --cert bob (status, output)")
    eq(sub.result(), (0, ["with a cert"]), "mosquitto_sub (status, messages)")
    tls_roundtrip(x, b.ports[0], "alice", "bob")


def refused_cert(x, cert, what):
    """On an MTLS broker: cert (None = no certificate) is kept out, by mosquitto_pub and by
    Python; the failure is logged; a good client still gets through."""
    b = x.broker(MTLS)
    mark = b.log_mark()
    eq(refused(b.ports[0], tls=tls_ctx(cert=cert)), None, "CONNACK for a client with " + what)
    failure_logged(b, mark)
    rc, out = mosq_pub(b.ports[0], ca="ca", cert=cert)
    check(rc != 0, "mosquitto_pub with %s got in: %s", what, out)
    eq(refused(b.ports[0], v5=True, tls=tls_ctx(cert=cert)), None, "5.0 CONNACK, " + what)
    tls_roundtrip(x, b.ports[0], "alice", "alice")
    check(b.alive(), "broker died")


@t.case("mtls_without_certificate_refused")
def _(x):
    refused_cert(x, None, "no certificate")


@t.case("mtls_expired_certificate_refused")
def _(x):
    refused_cert(x, "expired", "an expired certificate")


@t.case("mtls_certificate_from_another_ca_refused")
def _(x):
    refused_cert(x, "mallory", "a certificate from an untrusted CA")


@t.case("tls13_listener_refuses_tls12_clients")
def _(x):
    b = x.broker(TLS + "tls_version tlsv1.3\n")
    # (mosquitto_pub --tls-version tlsv1.2 means "1.2 or later" and so gets in with 1.3)
    eq(s_client(b.ports[0], "-tls1_2"), None, "openssl s_client -tls1_2 negotiated")
    eq(refused(b.ports[0], tls=tls_ctx(maxv=ssl.TLSVersion.TLSv1_2)), None,
       "CONNACK to a TLS 1.2 Python client")
    rc, out = mosq_pub(b.ports[0], ca="ca", tls_ver="tlsv1.3")
    eq((rc, out), (0, ""), "mosquitto_pub --tls-version tlsv1.3")
    c = x.client(b.ports[0], tls=tls_ctx())
    eq(c.sock.version(), "TLSv1.3", "negotiated version")


@t.case("default_tls_listener_takes_tls12_and_tls13")
def _(x):
    b = x.broker(TLS)
    c12 = x.client(b.ports[0], tls=tls_ctx(maxv=ssl.TLSVersion.TLSv1_2))
    eq(c12.sock.version(), "TLSv1.2", "version with a client capped at 1.2")
    c13 = x.client(b.ports[0], tls=tls_ctx(minv=ssl.TLSVersion.TLSv1_3))
    eq(c13.sock.version(), "TLSv1.3", "version with a 1.3-only client")
    topic = "v/" + h.unique()
    c12.subscribe([(topic, 1)])
    c13.publish(topic, b"1.3 to 1.2", qos=1)
    eq(c12.recv_msg().payload, b"1.3 to 1.2", "payload")
    eq(s_client(b.ports[0], "-tls1_2"), "TLSv1.2", "openssl s_client -tls1_2 negotiated")
    eq(s_client(b.ports[0], "-tls1_3"), "TLSv1.3", "openssl s_client -tls1_3 negotiated")
    b2 = x.broker(TLS + "tls_version tlsv1.2\n")              # the lowest allowed
    eq(s_client(b2.ports[0], "-tls1_2"), "TLSv1.2", "tlsv1.2 listener, s_client -tls1_2")
    eq(s_client(b2.ports[0], "-tls1_3"), "TLSv1.3", "tlsv1.2 listener, s_client -tls1_3")


def paho_roundtrip(x, v5):
    b = x.broker(TLS)
    topic = "paho/" + h.unique()
    sub, pub = x.paho(b.ports[0], v5=v5), x.paho(b.ports[0], v5=v5)
    eq(sub.connect(), 0, "subscriber CONNACK")
    eq(sub.subscribe(topic, 1), [1], "granted")
    eq(pub.connect(), 0, "publisher CONNACK")
    for q in (0, 1, 2):
        pub.publish(topic, b"paho q%d" % q, q)
        m = sub.recv()
        eq((m.topic, m.payload, m.qos), (topic, b"paho q%d" % q, min(q, 1)), "message")


@t.case("paho_over_tls_v311")
def _(x):
    paho_roundtrip(x, False)


@t.case("paho_over_tls_v5")
def _(x):
    paho_roundtrip(x, True)


@t.case("paho_mtls_with_client_certificate")
def _(x):
    b = x.broker(MTLS)
    p = x.paho(b.ports[0], v5=True, cert="alice")
    eq(p.connect(), 0, "CONNACK")
    topic = "pm/" + h.unique()
    eq(p.subscribe(topic, 1), [1], "granted")
    p.publish(topic, b"mine", 1)
    eq(p.recv().payload, b"mine", "own message back")


@t.case("plaintext_and_garbage_on_the_tls_port_cost_one_connection")
def _(x):
    b = x.broker(TLS)
    keep = x.client(b.ports[0], tls=tls_ctx())           # connected before the noise
    mark = b.log_mark()
    check(sec.closed_without_connack(b.ports[0], h.connect_packet(h.unique())),
          "plaintext CONNECT on the TLS port: not closed within 3 s, or answered")
    failure_logged(b, mark)
    for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello" * 4,
                 bytes(range(256)) * 4):
        check(sec.closed_without_connack(b.ports[0], junk), "junk %r not closed", junk[:12])
    rc, out = mosq_pub(b.ports[0])                           # mosquitto_pub without TLS
    check(rc != 0, "plaintext mosquitto_pub to the TLS port succeeded: %s", out)
    keep.ping()
    tls_roundtrip(x, b.ports[0])


@t.case("stalled_handshakes_do_not_block_others")
def _(x):
    b = x.broker(TLS)
    stuck = []
    try:
        for _ in range(6):              # half a ClientHello each, then silence
            s = socket.create_connection(("127.0.0.1", b.ports[0]), timeout=3)
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            stuck.append(s)
        start = time.monotonic()
        tls_roundtrip(x, b.ports[0])
        took = time.monotonic() - start
        check(took < 2.0, "round trip took %.2f s next to stalled handshakes", took)
    finally:
        for s in stuck:
            s.close()


@t.case("identity_as_username_gives_the_acl_the_cn")
def _(x):
    # No password file and no allow_anonymous: the certificate alone lets clients in.
    b = x.broker(MTLS.replace("allow_anonymous true\n", "") +
                 "use_identity_as_username true\nacl_file {dir}/acl\n", files={
        "acl": "user alice\ntopic readwrite alice/#\nuser bob\ntopic read alice/#\n"
               "topic write bob/#\n"})
    port = b.ports[0]
    bob = x.client(port, tls=tls_ctx(cert="bob"), v5=True)       # no user name, no password
    eq(bob.subscribe5([("alice/#", 1)]), [1], "bob's SUBACK for alice/#")
    alice = x.client(port, tls=tls_ctx(cert="alice"), v5=True)
    eq(alice.publish5("alice/x", b"from alice"), 0, "alice's PUBACK for alice/x")
    eq(bob.recv5()[:2], ("alice/x", b"from alice"), "bob got")
    eq(bob.publish5("alice/y"), 0x87, "bob's PUBACK for alice/y")
    eq(alice.publish5("bob/y"), 0x87, "alice's PUBACK for bob/y")
    # The CONNECT user name does not override the certificate.
    fake = x.client(port, tls=tls_ctx(cert="alice"), v5=True, user="bob", password="x")
    eq(fake.publish5("bob/z"), 0x87, "PUBACK for bob/z, alice's cert claiming to be bob")
    eq(fake.publish5("alice/z", b"still alice"), 0, "PUBACK for alice/z, same client")
    eq(bob.recv5()[:2], ("alice/z", b"still alice"), "bob got")
    bob.no_msg(0.2)


@t.case("password_over_tls")
def _(x):
    b = x.broker(TLS.replace("allow_anonymous true", "password_file {pki}/passwd"))
    rc, out = mosq_pub(b.ports[0], ca="ca", user="alice", password="secret")
    eq((rc, out), (0, ""), "mosquitto_pub --cafile -u alice -P secret")
    rc, out = mosq_pub(b.ports[0], ca="ca", user="alice", password="guess")
    eq(rc, 5, "mosquitto_pub --cafile -u alice -P guess: exit status (%s)" % out)
    eq(refused(b.ports[0], tls=tls_ctx()), 5, "anonymous CONNACK over TLS")
    eq(refused(b.ports[0], tls=tls_ctx(), v5=True, user="bob", password="bobpw"), 0,
       "5.0 CONNACK for bob over TLS")


def cert_broker(x, extra=""):
    files = {"srv.crt": open(PKI.path("server.crt")).read(),
             "srv.key": open(PKI.path("server.key")).read()}
    return x.broker("listener {p0} 127.0.0.1\ncertfile {dir}/srv.crt\nkeyfile {dir}/srv.key\n"
                    "allow_anonymous true\n" + extra, files=files)


@t.case("sighup_reads_certificates_again")
def _(x):
    b = cert_broker(x)
    old = x.client(b.ports[0], tls=tls_ctx("ca"))
    shutil.copy(PKI.path("server2.crt"), b.path("srv.crt.new"))
    shutil.copy(PKI.path("server2.key"), b.path("srv.key.new"))
    os.replace(b.path("srv.key.new"), b.path("srv.key"))
    os.replace(b.path("srv.crt.new"), b.path("srv.crt"))
    b.hup()
    x.client(b.ports[0], tls=tls_ctx("ca2")).ping()            # the new certificate is served
    try:
        sec.Conn(b.ports[0], tls=tls_ctx("ca")).close()
        raise AssertionError("the old certificate is still served after SIGHUP")
    except ssl.SSLCertVerificationError:
        pass
    old.ping()                                                 # connections stay


@t.case("sighup_with_a_broken_certificate_keeps_the_old_one")
def _(x):
    b = cert_broker(x)
    old = x.client(b.ports[0], tls=tls_ctx())
    b.write("srv.crt", "-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                       "-----END CERTIFICATE-----\n")
    b.hup(ok=False)
    x.client(b.ports[0], tls=tls_ctx()).ping()
    old.ping()
    os.unlink(b.path("srv.key"))
    b.hup(ok=False)
    tls_roundtrip(x, b.ports[0])


if __name__ == "__main__":
    t.main()
