#!/usr/bin/python3
"""16 metrics: the Prometheus endpoint (metrics_listener). The exposition parses with the official
client's parser and its values move as the broker works (a client connects, publishes, a message is
dropped with its kind); the HTTP side is strict and bounded (bad request line, huge headers, unknown
path, other methods, other versions, idle and slowloris connections closed, pipelining, keep-alive)
and a bad request costs its own connection only; every PromQL expression of the Grafana dashboard
(cmd/dist/grafana-shardmq.json) names only metrics and labels the endpoint exports.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import harness as h  # noqa: E402
from harness import eq, check  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:     # Debian python3-prometheus-client, for /usr/bin/python3
    text_string_to_metric_families = None

t = h.Suite("16_metrics")
CONF = {"metrics_listener": 0}
ONLY = "shardmq's own endpoint (mosquitto has none)"
CTYPE = "text/plain; version=0.0.4; charset=utf-8"
IDLE_S = 5.0            # SMQ_METRICS_IDLE_MS
DASHBOARD = os.path.join(h.ROOT, "cmd", "dist", "grafana-shardmq.json")


def need_parser():
    if text_string_to_metric_families is None:
        raise h.Skip("python3-prometheus-client is not installed")


def mport(x):
    """The metrics port, from the broker's log line (metrics_listener 0: the kernel chose)."""
    pat = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
    m = h.wait_until(lambda: pat.search(x.broker.log_text(200)), 3.0)
    check(m, "no 'metrics on http://...' line in the log")
    return int(m.group(1))


def hconn(x, timeout=3.0):
    s = socket.create_connection((h.HOST, mport(x)), timeout=timeout)
    s.settimeout(timeout)
    return s


class Reader:
    """HTTP/1.1 responses off one socket, in order; a buffer keeps what follows one."""

    def __init__(self, sock):
        self.s, self.buf = sock, b""

    def _more(self):
        d = self.s.recv(65536)
        if not d:
            raise h.Closed("connection closed")
        self.buf += d

    def response(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
        check(m, "bad status line %r", lines[0])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = 0 if head_only else int(hdrs["content-length"])
        while len(self.buf) < n:
            self._more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(m.group(1)), hdrs, body

    def closed(self, wait=3.0):
        """True once the peer closed (EOF or reset) within wait seconds, with nothing more sent."""
        self.s.settimeout(wait)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        check(not d, "unexpected bytes %r", d[:80])
        return True


def get(path="/metrics", method="GET", extra=""):
    return ("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, path, extra)).encode()


def scrape(x):
    """{(sample name, frozenset(labels)): value}, and the families, from one GET /metrics."""
    need_parser()
    s = hconn(x)
    try:
        s.sendall(get())
        status, hdrs, body = Reader(s).response()
    finally:
        s.close()
    eq(status, 200, "status")
    eq(hdrs.get("content-type"), CTYPE, "content type")
    fams = list(text_string_to_metric_families(body.decode()))
    samples = {}
    for f in fams:
        for sm in f.samples:
            samples[(sm.name, frozenset(sm.labels.items()))] = sm.value
    return samples, fams


def total(samples, name, **labels):
    """The sum of every sample called name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def wait_total(x, name, pred, what, timeout=5.0, **labels):
    last = [None]

    def ok():
        last[0] = total(scrape(x)[0], name, **labels)
        return pred(last[0])
    check(h.wait_until(ok, timeout, 0.1), "%s: %s is %r", what, name, last[0])
    return last[0]


# ---- the exposition ---------------------------------------------------------------------------

@t.case("exposition_parses_with_every_family", conf=CONF, spec_only=ONLY)
def _(x):
    samples, fams = scrape(x)
    kinds = {f.name: f.type for f in fams}
    for name, typ in [("shardmq_build_info", "gauge"), ("shardmq_uptime_seconds", "gauge"),
                      ("shardmq_connections", "gauge"), ("shardmq_sessions", "gauge"),
                      ("shardmq_subscriptions", "gauge"), ("shardmq_retained_messages", "gauge"),
                      ("shardmq_messages_received", "counter"),
                      ("shardmq_messages_sent", "counter"), ("shardmq_received_bytes", "counter"),
                      ("shardmq_sent_bytes", "counter"), ("shardmq_messages_dropped", "counter"),
                      ("shardmq_loop_turns", "counter"), ("shardmq_loop_sleeps", "counter"),
                      ("shardmq_socket_sends", "counter"), ("shardmq_recv_out_of_buffers", "counter"),
                      ("shardmq_tls_failures", "counter"), ("shardmq_loop_turn_seconds", "histogram"),
                      ("shardmq_publish_latency_seconds", "histogram"),
                      ("shardmq_inbox_depth", "gauge")]:
        eq(kinds.get(name), typ, "type of " + name)
    check(any(n == "shardmq_build_info" and dict(ls).get("version") for n, ls in samples),
          "build_info has no version label")
    # every shard reports, labelled shard="N"
    shards = {dict(ls)["shard"] for n, ls in samples if n == "shardmq_loop_turns_total"}
    eq(shards, {str(i) for i in range(x.shards)}, "shard labels")
    kinds_seen = {dict(ls)["kind"] for n, ls in samples if n == "shardmq_messages_dropped_total"}
    for k in ("qos0", "queue_full", "too_large", "bad_payload", "expired", "sys", "no_member",
              "nomem", "acl_publish", "acl_read"):
        check(k in kinds_seen, "no drop kind %s (have %s)", k, sorted(kinds_seen))
    # the histogram is cumulative and its count is the +Inf bucket
    for sh in shards:
        b = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in samples.items()
                    if n == "shardmq_loop_turn_seconds_bucket" and dict(ls)["shard"] == sh))
        check(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)), "buckets not cumulative")
        eq(b[-1][0], float("inf"), "last bucket")
        eq(b[-1][1], total(samples, "shardmq_loop_turn_seconds_count", shard=sh), "count")
        check(b[-1][1] > 0, "no loop turn counted on shard %s", sh)
    check(total(samples, "shardmq_uptime_seconds") >= 0, "uptime")


@t.case("connections_gauge_follows_clients", conf=CONF, spec_only=ONLY)
def _(x):
    base = total(scrape(x)[0], "shardmq_connections")
    cs = [x.client(h.unique()) for _ in range(3)]
    wait_total(x, "shardmq_connections", lambda v: v == base + 3, "after 3 connects")
    check(total(scrape(x)[0], "shardmq_connects_total") >= 3, "connects_total")
    for c in cs:
        c.disconnect()
    wait_total(x, "shardmq_connections", lambda v: v == base, "after the disconnects")
    check(total(scrape(x)[0], "shardmq_disconnects_total") >= 3, "disconnects_total")


@t.case("publish_counters_grow", conf=CONF, spec_only=ONLY)
def _(x):
    topic = h.unique("t")
    sub = x.client(h.unique())
    sub.subscribe([(topic, 0)])
    before, _ = scrape(x)
    pub = x.client(h.unique())
    for i in range(5):
        pub.publish(topic, b"m%d" % i)
    sub.recv_msgs(5)
    r0 = total(before, "shardmq_messages_received_total")
    s0 = total(before, "shardmq_messages_sent_total")
    wait_total(x, "shardmq_messages_received_total", lambda v: v >= r0 + 5, "received")
    wait_total(x, "shardmq_messages_sent_total", lambda v: v >= s0 + 5, "sent")
    after, _ = scrape(x)
    check(total(after, "shardmq_received_bytes_total") > total(before, "shardmq_received_bytes_total"),
          "received bytes did not grow")
    check(total(after, "shardmq_sent_bytes_total") > total(before, "shardmq_sent_bytes_total"),
          "sent bytes did not grow")
    # each delivery is one publish-to-send latency, and it is short on an idle loopback
    c0 = total(before, "shardmq_publish_latency_seconds_count")
    c1 = total(after, "shardmq_publish_latency_seconds_count")
    check(c1 >= c0 + 5, "publish latency count %s -> %s, want 5 more", c0, c1)
    lat = (total(after, "shardmq_publish_latency_seconds_sum") -
           total(before, "shardmq_publish_latency_seconds_sum")) / max(c1 - c0, 1)
    check(0 <= lat < 0.5, "mean publish latency %.6f s", lat)
    wait_total(x, "shardmq_inbox_depth", lambda v: v == 0, "an idle broker's inboxes")


@t.case("a_flood_is_handled_in_slices_and_in_order", conf=dict(CONF, max_queued_messages=0,
                                                                 max_queued_bytes=0),
        spec_only=ONLY, shards=[1])
def _(x):
    # One client writes 4 MB of PUBLISHes at once: past its share of a loop turn the rest
    # waits for later turns (shardmq_input_deferred_total counts it), and nothing is lost or
    # reordered by the wait. Twenty offline persistent sessions queue every message too, so
    # that each one costs the shard enough for a turn's share (1 ms past the first 16 KiB)
    # to run out however fast the machine is.
    topic, n = h.unique("fl"), 20000
    for _ in range(20):
        off = h.Raw(x.broker)
        off.connect_ok(h.unique(), clean=False)
        off.subscribe([(topic, 1)])
        off.disconnect()
    sub = h.Raw(x.broker)
    sub.connect_ok(h.unique(), clean=False)
    sub.subscribe([(topic, 1)])
    before, _ = scrape(x)
    # a quiet shard has given the kernel 64 receive buffers (512 KiB), not all 1,024
    eq(total(before, "shardmq_recv_buffers"), 64, "receive buffers before the flood")
    pub = h.Raw(x.broker)
    pub.connect_ok()
    pub.send(b"".join(h.publish_packet(topic, b"%08d" % i + b"." * 192, qos=1, pid=i % 65535 + 1)
                      for i in range(n)))
    got = [int(sub.recv_msg(ack=True, timeout=10).payload[:8]) for _ in range(n)]
    eq(got, list(range(n)), "deliveries in order")
    d0 = total(before, "shardmq_input_deferred_total")
    wait_total(x, "shardmq_input_deferred_total", lambda v: v > d0, "a 4 MB flood")
    # 4 MB arriving faster than the shard takes it ran the 64 out: it got more
    after, _ = scrape(x)
    check(total(after, "shardmq_recv_out_of_buffers_total") > 0, "no recv ran out of buffers")
    check(total(after, "shardmq_recv_buffers") > 64, "receive buffers after the flood: %r",
          total(after, "shardmq_recv_buffers"))
    pub.close()


@t.case("drop_counted_with_its_kind", conf=CONF, spec_only=ONLY)
def _(x):
    before, _ = scrape(x)
    c = x.client(h.unique())
    c.publish("$SYS/broker/fake", b"x")         # accepted and dropped: kind="sys"
    c.ping()
    sys0 = total(before, "shardmq_messages_dropped_total", kind="sys")
    wait_total(x, "shardmq_messages_dropped_total", lambda v: v == sys0 + 1, "kind sys",
               kind="sys")
    after, _ = scrape(x)
    for k in ("qos0", "queue_full", "too_large", "expired", "acl_publish"):
        eq(total(after, "shardmq_messages_dropped_total", kind=k),
           total(before, "shardmq_messages_dropped_total", kind=k), "kind " + k)


# ---- HTTP ---------------------------------------------------------------------------------------

@t.case("index_404_405_505_and_head", conf=CONF, spec_only=ONLY, shards=[1])
def _(x):
    s = hconn(x)
    r = Reader(s)
    s.sendall(get("/"))
    st, hd, body = r.response()
    eq(st, 200, "GET /")
    check(b"/metrics" in body, "the index does not name /metrics: %r", body)
    s.sendall(get("/nope"))
    eq(r.response()[0], 404, "unknown path")
    s.sendall(get("/metrics", "POST", "Content-Length: 0\r\n"))
    st, hd, _ = r.response()
    eq(st, 405, "POST")
    eq(hd.get("allow"), "GET, HEAD", "Allow")
    s.sendall(get("/metrics", "HEAD"))
    st, hd, _ = r.response(head_only=True)
    eq(st, 200, "HEAD")
    check(int(hd["content-length"]) > 1000, "HEAD content-length %s", hd["content-length"])
    s.sendall(get("/", extra="Connection: close\r\n"))     # keep-alive held until now
    st, hd, _ = r.response()
    eq((st, hd.get("connection")), (200, "close"), "Connection: close answered")
    check(r.closed(), "not closed after Connection: close")
    s.close()
    s = hconn(x)
    s.sendall(b"GET / HTTP/2.0\r\n\r\n")
    eq(Reader(s).response()[0], 505, "HTTP/2.0")
    s.close()


@t.case("http10_closes_unless_keep_alive", conf=CONF, spec_only=ONLY, shards=[1])
def _(x):
    s = hconn(x)
    r = Reader(s)
    s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    st, hd, _ = r.response()
    eq((st, hd.get("connection")), (200, "keep-alive"), "1.0 keep-alive")
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    eq(r.response()[0], 200, "second 1.0 request")
    check(r.closed(), "HTTP/1.0 without keep-alive not closed")
    s.close()


BAD = [("bad_request_line", b"GET  /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
       ("bare_lf", b"GET /metrics HTTP/1.1\nHost: x\n\n", 400),
       ("no_host", b"GET /metrics HTTP/1.1\r\n\r\n", 400),
       ("mqtt_connect", h.connect_packet("c") + b"\r\n\r\n", 400),
       ("huge_headers", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431)]


@t.case("bad_requests_cost_their_connection_only", conf=CONF, spec_only=ONLY)
def _(x):
    good = hconn(x)
    gr = Reader(good)
    good.sendall(get("/"))
    eq(gr.response()[0], 200, "the good connection's first request")
    mqtt = x.client(h.unique())
    for name, req, want in BAD:
        s = hconn(x)
        s.sendall(req)
        r = Reader(s)
        st, hd, _ = r.response()
        eq(st, want, name)
        eq(hd.get("connection"), "close", name + ": Connection")
        check(r.closed(), "%s: connection left open", name)
        s.close()
    good.sendall(get())                         # the keep-alive connection still serves
    eq(gr.response()[0], 200, "the good connection after the bad ones")
    mqtt.ping()
    check(x.broker.alive(), "broker died")


@t.case("pipelined_requests_answered_in_order", conf=CONF, spec_only=ONLY, shards=[1])
def _(x):
    s = hconn(x)
    r = Reader(s)
    s.sendall(get("/") + get("/metrics") + get("/nope") + get("/", "HEAD") +
              get("/", extra="Connection: close\r\n") + get("/"))     # the last one is ignored
    eq(r.response()[0], 200, "1st")
    st, hd, body = r.response()
    eq((st, hd["content-type"]), (200, CTYPE), "2nd")
    check(b"shardmq_build_info" in body, "2nd is not the exposition")
    eq(r.response()[0], 404, "3rd")
    eq(r.response(head_only=True)[0], 200, "4th (HEAD)")
    st, hd, _ = r.response()
    eq((st, hd.get("connection")), (200, "close"), "5th")
    check(r.closed(), "open after Connection: close")
    eq(r.buf, b"", "bytes after the last response")
    s.close()


@t.case("idle_and_slowloris_closed", conf=CONF, spec_only=ONLY, shards=[1])
def _(x):
    idle, slow = hconn(x), hconn(x)
    start = time.monotonic()
    part = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
    slow.sendall(part[:10])
    sent, got = 10, None
    slow.settimeout(0.5)
    while time.monotonic() - start < IDLE_S + 3 and got is None:
        if sent < len(part):                    # a byte every half second: never a whole head
            slow.sendall(part[sent:sent + 1])
            sent += 1
        try:
            got = slow.recv(4096)
        except socket.timeout:
            pass
    took = time.monotonic() - start
    check(got is not None and got.startswith(b"HTTP/1.1 408 "), "slowloris got %r", got)
    check(IDLE_S - 0.5 <= took <= IDLE_S + 2.5, "slowloris answered after %.1f s", took)
    check(Reader(idle).closed(wait=IDLE_S + 3 - took), "idle connection still open")
    took = time.monotonic() - start
    check(took <= IDLE_S + 3, "idle connection closed after %.1f s", took)
    idle.close()
    slow.close()


@t.case("keep_alive_survives_within_the_idle_time", conf=CONF, spec_only=ONLY, shards=[1])
def _(x):
    s = hconn(x)
    r = Reader(s)
    for _ in range(3):                          # each request moves the deadline
        s.sendall(get("/"))
        eq(r.response()[0], 200, "request")
        time.sleep(IDLE_S * 0.6)
    s.sendall(get("/"))
    eq(r.response()[0], 200, "after %.0f s of keep-alive" % (IDLE_S * 1.8))
    s.close()


@t.case("connection_limit", conf=CONF, spec_only=ONLY, shards=[1])
def _(x):
    held = [hconn(x) for _ in range(64)]        # SMQ_METRICS_MAX_CONNS
    s = hconn(x)
    check(Reader(s).closed(wait=2.0), "65th connection not closed at once")
    held.pop().close()
    time.sleep(0.2)
    s = hconn(x)
    s.sendall(get("/"))
    eq(Reader(s).response()[0], 200, "after one closed")
    for c in held + [s]:
        c.close()


# ---- configuration ----------------------------------------------------------------------------

def run_conf(text):
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(text)
    try:
        p = subprocess.run([h.SHARDMQ_BIN, "-c", f.name, "-p", str(h.free_port())],
                           capture_output=True, text=True, timeout=10)
    finally:
        os.unlink(f.name)
    return p.returncode, p.stderr


@t.case("second_metrics_listener_refused", spec_only=ONLY, shards=[1])
def _(x):
    rc, err = run_conf("metrics_listener %d\nmetrics_listener %d\n" % (h.free_port(), h.free_port()))
    check(rc != 0, "started with two metrics listeners")
    check("metrics_listener: given twice" in err, "no clear error: %r", err[-300:])
    rc, err = run_conf("metrics_listener 99999\n")
    check(rc != 0 and "metrics_listener: expected PORT" in err, "bad port: %r", err[-300:])


@t.case("default_address_is_loopback", conf={"metrics_listener": 0}, spec_only=ONLY, shards=[1])
def _(x):
    mport(x)        # the log line names 127.0.0.1, and nothing listens elsewhere
    check("metrics on http://127.0.0.1:" in x.broker.log_text(200), "not on loopback")


# ---- the Grafana dashboard --------------------------------------------------------------------

FUNCS = {"sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg", "count",
         "by", "without", "label_values", "topk", "bottomk", "on", "ignoring", "group_left",
         "group_right", "and", "or", "unless", "offset", "delta", "deriv", "abs", "clamp_min"}


def exprs(node):
    """Every PromQL string in the dashboard: targets' expr, query variables' query/definition."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                yield v
            elif k == "query" and isinstance(v, dict) and isinstance(v.get("query"), str):
                yield v["query"]
            else:
                yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)


def names_and_labels(e):
    """The metric names an expression selects, and the label names it groups or matches by."""
    body = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)            # no string contents
    body = re.sub(r"\[[^\]]*\]", "", body)                  # no range selectors
    labels = set()
    for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", body):
        labels |= {g.strip() for g in grp.split(",") if g.strip()}
    for sel in re.findall(r"\{([^}]*)\}", body):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", sel))
    body = re.sub(r"\{[^}]*\}", "", body)
    body = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", body)
    m = re.search(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)", body)
    if m:       # label_values(metric, label): the second is a label
        labels.add(m.group(2))
        body = body[:m.start()] + m.group(1) + body[m.end():]
    names = {w for w in re.findall(r"\b([a-zA-Z_:][\w:]*)\b(?!\s*\()", body)
             if w not in FUNCS and not re.fullmatch(r"[0-9.e]+", w)}
    return names, labels


@t.case("grafana_dashboard_names_only_exported_metrics", conf=CONF, spec_only=ONLY)
def _(x):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    check(dash.get("panels"), "no panels")
    c = x.client(h.unique())                    # so that every family has a sample
    c.ping()
    samples, fams = scrape(x)
    # jemalloc's heap gauge is absent from sanitizer builds (they bring their own allocator)
    exported = {n for n, _ in samples} | {"shardmq_heap_allocated_bytes"}
    labels = {k for _, ls in samples for k, _ in ls} | {"instance", "job"}   # added by Prometheus
    es = list(exprs(dash))
    check(len(es) >= 10, "only %d expressions", len(es))
    used = set()
    for e in es:
        names, ls = names_and_labels(e)
        check(names, "expression names no metric: %r", e)
        for n in names:
            check(n in exported, "%r names %s, which /metrics does not export", e, n)
        for lb in ls:
            check(lb in labels, "%r uses label %s, which no series has", e, lb)
        used |= names
    for want in ("shardmq_connections", "shardmq_messages_received_total",
                 "shardmq_messages_sent_total", "shardmq_messages_dropped_total",
                 "shardmq_received_bytes_total", "shardmq_loop_turn_seconds_bucket"):
        check(want in used, "the dashboard has no panel on %s", want)
    titles = " ".join(p.get("title", "") for p in dash["panels"]).lower()
    for word in ("connections", "drops", "bytes", "p99", "by shard"):
        check(word in titles, "no panel titled with %r", word)


if __name__ == "__main__":
    t.main()
