#!/usr/bin/env bash
# perf/bench_persist.sh - what persistence costs: shardmq with persistence off,
# periodic and commit, beside mosquitto with persistence true, in one run.
#
# Four brokers on free loopback ports, each with a store of its own in a
# temporary directory (deleted on exit):
#   off        shardmq, persistence false
#   periodic   shardmq, persistence_sync periodic (acks after the commit to
#              the OS; a flush every autosave_interval, 1800 s)
#   commit     shardmq, persistence_sync commit (acks after the flush)
#   mosquitto  the Debian mosquitto, persistence true (it writes its whole
#              store at autosave_interval and at exit; nothing per message)
# and $BUILD/perf/loadgen --persistent (every client a persistent session, so
# that what is queued and in flight must be stored) against each, the order
# of the brokers rotated every repetition:
#   1. QoS 1 throughput, presets 1to1 and fanin (delivered msgs/s, median);
#   2. QoS 1 latency at a fixed rate (1to1, BENCH_LAT_RATE msgs/s): p50 / p99 /
#      p99.9 publish-to-delivery (loadgen; delivery does not wait for the store),
#      and publish-to-PUBACK, which is where commit waits: one publisher, one
#      message in flight, BENCH_ACK_RATE msgs/s to a topic an offline persistent
#      session subscribes to (so each message must be stored), BENCH_ACK_COUNT
#      messages (a Python probe: its own overhead, ~0.05 ms, is in every row);
#   3. load time: a store filled with BENCH_FILL_SESSIONS persistent sessions
#      (one subscription each) and BENCH_FILL_RETAINED retained messages, the
#      broker stopped with SIGTERM, then the time from exec to the first CONNACK
#      (median of BENCH_LOAD_REPS starts); for shardmq (periodic while filling,
#      commit when loading: the store is the same) and mosquitto.
# Tables in Markdown on stdout and in $BUILD/bench-persist-results.md, raw JSON
# lines in $BUILD/bench-persist-raw.jsonl.
#
# Knobs (environment): BUILD (build), BENCH_SECONDS (4), BENCH_WARMUP (1),
# BENCH_REPS (2), BENCH_SHARDS (online CPUs), BENCH_SIZE (64), BENCH_DRAIN (3),
# BENCH_LAT_RATE (2000), BENCH_FILL_SESSIONS (100000), BENCH_FILL_RETAINED
# (1000000), BENCH_LOAD_REPS (3), BENCH_ACK_RATE (500), BENCH_ACK_COUNT (2000),
# BENCH_SKIP ("" or any of: throughput latency ack load), BENCH_THREADS (loadgen
# threads, default: online CPUs), SHARDMQ_BIN, MOSQUITTO_BIN.
# Quick look: BENCH_SECONDS=1 BENCH_WARMUP=0.5 BENCH_REPS=1 BENCH_FILL_SESSIONS=2000 \
#   BENCH_FILL_RETAINED=20000 bash perf/bench_persist.sh
#
# The broker start/stop helpers are perf/lib.sh's, with a longer wait (60 s: a
# big store takes a while to load and to write). A broker that does not start
# or dies is "failed" in its cells; the others are still measured.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"
BROKER_WAIT=600

BUILD=${BUILD:-build}
SECS=${BENCH_SECONDS:-4}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-2}
NCPU=$(getconf _NPROCESSORS_ONLN)
SHARDS=${BENCH_SHARDS:-$NCPU}
SIZE=${BENCH_SIZE:-64}
DRAIN=${BENCH_DRAIN:-3}
LAT_RATE=${BENCH_LAT_RATE:-2000}
FILL_SESSIONS=${BENCH_FILL_SESSIONS:-100000}
FILL_RETAINED=${BENCH_FILL_RETAINED:-1000000}
LOAD_REPS=${BENCH_LOAD_REPS:-3}
ACK_RATE=${BENCH_ACK_RATE:-500}
ACK_COUNT=${BENCH_ACK_COUNT:-2000}
SKIP=${BENCH_SKIP:-}
THREADS=${BENCH_THREADS:-$NCPU}
LOADGEN=$BUILD/perf/loadgen
SHARDMQ=${SHARDMQ_BIN:-$BUILD/shardmq}
MOSQUITTO=${MOSQUITTO_BIN:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
HERE=$(cd "$(dirname "$0")" && pwd)
RAW=$BUILD/bench-persist-raw.jsonl
OUT=$BUILD/bench-persist-results.md
BROKERS="off periodic commit mosquitto"

TMP=$(mktemp -d /tmp/shardmq-bench-persist.XXXXXX)
trap 'for b in $BROKERS load-shardmq load-mosquitto; do stop_broker $b; done; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

if [ ! -x "$LOADGEN" ]; then
	say "bench_persist: $LOADGEN is missing: run 'make BUILD=$BUILD $LOADGEN $SHARDMQ' first"
	exit 1
fi
if ! "$LOADGEN" --help | grep -q -- --persistent; then
	say "bench_persist: $LOADGEN has no --persistent: rebuild it"
	exit 1
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

# The configuration of broker NAME in $TMP/NAME.conf, its store in $TMP/NAME.store.
write_config() {
	local name=$1 conf=$TMP/$1.conf store=$TMP/$1.store
	mkdir -p "$store"
	case $name in
	mosquitto | load-mosquitto)
		{
			cat "$HERE/mosquitto-bench.conf" | sed 's/^persistence false/persistence true/'
			echo "persistence_location $store/"
			[ "$(id -u)" = 0 ] && echo "user root"
			echo "listener ${PORT[$name]} 127.0.0.1"
		} > "$conf"
		;;
	*)
		# the limits of perf/bench.sh: nothing is dropped for a burst
		printf '%s\n' "max_inflight_messages 100" "max_queued_messages 100000000" \
			"max_queued_bytes 0" "sys_interval 0" "client_max_write_buffer 4g" \
			"max_connections -1" "log_level warning" > "$conf"
		case $name in
		off) echo "persistence false" ;;
		periodic) printf '%s\n' "persistence true" "persistence_location $store" \
			"persistence_sync periodic" ;;
		commit | load-shardmq) printf '%s\n' "persistence true" \
			"persistence_location $store" "persistence_sync commit" ;;
		esac >> "$conf"
		;;
	esac
}

# start_broker NAME: 0 when it listens within 60 s (a big store takes a while).
# stop_broker (lib.sh) gives it 60 s to write its store before SIGKILL.
start_broker() {
	local name=$1 cmd
	case $name in
	mosquitto | load-mosquitto)
		cmd=("$MOSQUITTO" -c "$TMP/$name.conf")
		;;
	*)
		[ -x "$SHARDMQ" ] || { say "bench_persist: $SHARDMQ is missing"; return 1; }
		cmd=("$SHARDMQ" -c "$TMP/$name.conf" -p "${PORT[$name]}" --bind 127.0.0.1
			--shards "$SHARDS")
		;;
	esac
	start_cmd "$name" "$TMP/$name.log" "${PORT[$name]}" -- "${cmd[@]}"
}

# run TABLE BROKER LOADGEN-ARGS...: one loadgen run, one tagged JSON line in $RAW.
run() {
	local table=$1 broker=$2 line tag
	shift 2
	tag="\"table\":\"$table\",\"broker\":\"$broker\""
	if ! alive "$broker" && ! start_broker "$broker"; then
		echo "{$tag,\"failed\":true,$(args_json "$@")}" >> "$RAW"
		return
	fi
	line=$(timeout $((30 + ${SECS%.*} * 3)) "$LOADGEN" --port "${PORT[$broker]}" \
		--broker-pid "${PID[$broker]}" --threads "$THREADS" --size "$SIZE" \
		--drain "$DRAIN" --persistent --json "$@" 2>>"$TMP/loadgen.err" | tail -1)
	if [ "${line:0:1}" != "{" ] || ! alive "$broker"; then
		alive "$broker" || { say "bench_persist: $broker DIED during: loadgen $*"; \
			tail -5 "$TMP/$broker.log" >&2; }
		echo "{$tag,\"failed\":true,$(args_json "$@")}" >> "$RAW"
		return
	fi
	echo "{$tag,${line:1}" >> "$RAW"
	say "  $(printf '%-9s' "$broker") $* -> $(summary "$line")"
}

args_json() {
	local preset=x rate=0
	while [ $# -gt 1 ]; do
		case $1 in
		--preset) preset=$2 ;;
		--rate) rate=$2 ;;
		esac
		shift
	done
	echo "\"preset\":\"$preset\",\"rate\":$rate"
}

summary() {
	echo "$1" | sed -E 's/.*"delivered_rate":([0-9.]+).*"lat_p50_us":([0-9.]+),"lat_p99_us":([0-9.]+).*"lost":([0-9]+),"backlog":([0-9]+).*"cpu_broker_pct":([-0-9.]+).*/\1 msgs\/s delivered, p50 \2 us, p99 \3 us, lost \4 (+\5 queued), broker cpu \6%/'
}

# Every broker once per repetition, the order rotated each time.
all_brokers() {
	local table=$1 rep list b
	shift
	list=($BROKERS)
	for rep in $(seq "$REPS"); do
		for b in "${list[@]}"; do
			run "$table" "$b" "$@"
		done
		list=("${list[@]:1}" "${list[0]}")
	done
}

throughput_table() {
	local p
	for p in 1to1 fanin; do
		all_brokers throughput --preset "$p" --qos 1 --duration "$SECS" --warmup "$WARM"
	done
}

latency_table() {
	all_brokers latency --preset 1to1 --qos 1 --rate "$LAT_RATE" --duration "$SECS" \
		--warmup "$WARM"
}

# publish -> PUBACK latency, BROKERS in rotated order, REPS times.
ack_table() {
	local rep b list line
	list=($BROKERS)
	for rep in $(seq "$REPS"); do
		for b in "${list[@]}"; do
			if ! alive "$b" && ! start_broker "$b"; then
				echo "{\"table\":\"ack\",\"broker\":\"$b\",\"failed\":true}" >> "$RAW"
				continue
			fi
			line=$("$PYTHON" - ack "${PORT[$b]}" "$ACK_RATE" "$ACK_COUNT" <<<"$PYHELPER")
			echo "{\"table\":\"ack\",\"broker\":\"$b\",$line}" >> "$RAW"
			say "  $(printf '%-9s' "$b") publish -> PUBACK: $line"
		done
		list=("${list[@]:1}" "${list[0]}")
	done
}

# load_table BROKER: fill a fresh store, stop, time LOAD_REPS starts to CONNACK.
load_one() {
	local b=$1 kind=$2 t0 line
	PORT[$b]=$(free_port)
	write_config "$b"
	if [ "$kind" = shardmq ]; then	# fill in periodic mode (the store is the same)
		sed -i 's/^persistence_sync commit/persistence_sync periodic/' "$TMP/$b.conf"
	fi
	start_broker "$b" || { echo "{\"table\":\"load\",\"broker\":\"$kind\",\"failed\":true}" \
		>> "$RAW"; return; }
	say "  $kind: filling $FILL_SESSIONS sessions and $FILL_RETAINED retained messages"
	line=$("$PYTHON" - fill "${PORT[$b]}" "$FILL_SESSIONS" "$FILL_RETAINED" <<<"$PYHELPER")
	t0=$(date +%s.%N)
	stop_broker "$b"
	line="$line,\"stop_s\":$(awk "BEGIN { print $(date +%s.%N) - $t0 }")"
	line="$line,\"store_bytes\":$(du -sb "$TMP/$b.store" | cut -f1)"
	[ "$kind" = shardmq ] && sed -i 's/^persistence_sync periodic/persistence_sync commit/' \
		"$TMP/$b.conf"
	local vals=""
	for _ in $(seq "$LOAD_REPS"); do
		local cmd
		if [ "$kind" = shardmq ]; then
			cmd="$SHARDMQ -c $TMP/$b.conf -p ${PORT[$b]} --bind 127.0.0.1 --shards $SHARDS"
		else
			cmd="$MOSQUITTO -c $TMP/$b.conf"
		fi
		vals="$vals${vals:+,}$("$PYTHON" - start "${PORT[$b]}" "$TMP/$b.log" $cmd \
			<<<"$PYHELPER")"
	done
	line="$line,\"load_s_all\":[$vals]"
	echo "{\"table\":\"load\",\"broker\":\"$kind\",\"shards\":$SHARDS,$line}" >> "$RAW"
	say "  $kind: $line"
}

load_table() {
	load_one load-shardmq shardmq
	load_one load-mosquitto mosquitto
}

# Python helpers: "fill PORT SESSIONS RETAINED" prints JSON fields; "start PORT LOG CMD..."
# runs CMD, times exec -> first CONNACK, stops it with SIGTERM, prints the seconds (or null).
PYHELPER=$(cat <<'PYEOF'
import json, os, selectors, signal, socket, struct, subprocess, sys, time

def s_(x):
    b = x.encode()
    return struct.pack(">H", len(b)) + b

def pkt(first, body):
    n, v = len(body), bytearray()
    while True:
        d, n = n % 128, n // 128
        v.append(d | (0x80 if n else 0))
        if not n:
            return bytes([first]) + bytes(v) + body

def connect(cid, clean):
    var = s_("MQTT") + bytes([4, 0x02 if clean else 0]) + struct.pack(">H", 60)
    return pkt(0x10, var + s_(cid))

def sock(port, src):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s

def fill_sessions(port, n, par=200):
    """n persistent sessions fill-I, each subscribed to fill/s/I at QoS 1, then DISCONNECT.
    Sources spread over 127.0.0.2-254 so that ports do not run out."""
    sel, nxt, done = selectors.DefaultSelector(), 0, 0
    def open_one(i):
        s = sock(port, "127.0.0.%d" % (2 + i % 253))
        s.sendall(connect("fill-%d" % i, False) +
                  pkt(0x82, struct.pack(">H", 1) + s_("fill/s/%d" % i) + b"\x01"))
        sel.register(s, selectors.EVENT_READ, [i, b""])
    while nxt < min(par, n):
        open_one(nxt); nxt += 1
    while done < n:
        ev = sel.select(30)
        if not ev:
            sys.exit("fill: the broker stopped answering after %d sessions" % done)
        for key, _ in ev:
            s, st = key.fileobj, key.data
            d = s.recv(4096)
            st[1] += d
            if not d or len(st[1]) >= 4 + 5:      # CONNACK + SUBACK
                if d:
                    s.sendall(b"\xe0\x00")
                sel.unregister(s); s.close(); done += 1
                if nxt < n:
                    open_one(nxt); nxt += 1

def fill_retained(port, n, conns=8):
    """n retained QoS 0 messages fill/r/I (16-byte payloads) over conns connections, each
    closed by a QoS 1 publish whose PUBACK says the ones before it were taken."""
    socks = []
    for k in range(conns):
        s = sock(port, "127.0.0.1")
        s.sendall(connect("fillr-%d" % k, True))
        s.recv(4)
        socks.append(s)
    per = (n + conns - 1) // conns
    for k, s in enumerate(socks):
        lo, hi = k * per, min(n, (k + 1) * per)
        for a in range(lo, hi, 5000):
            s.sendall(b"".join(pkt(0x31, s_("fill/r/%d" % i) + b"r%015d" % i)
                               for i in range(a, min(hi, a + 5000))))
    for s in socks:
        s.sendall(pkt(0x32, s_("fill/end") + struct.pack(">H", 1) + b"x"))
    for s in socks:
        s.settimeout(120)
        buf = b""
        while b"\x40\x02\x00\x01" not in buf:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        s.sendall(b"\xe0\x00")
        s.close()

def ack_latency(port, rate, count):
    """QoS 1 publish -> PUBACK times (one in flight, at rate) to a topic an offline persistent
    session subscribes to; prints JSON fields."""
    tag = "ack-%d-%d" % (os.getpid(), int(time.time()))
    s = sock(port, "127.0.0.1")
    s.sendall(connect(tag + "-sub", False) +
              pkt(0x82, struct.pack(">H", 1) + s_("bench/ack/" + tag) + b"\x01"))
    s.settimeout(5)
    buf = b""
    while len(buf) < 9:
        buf += s.recv(64)
    s.sendall(b"\xe0\x00")
    s.close()
    p = sock(port, "127.0.0.1")
    p.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    p.sendall(connect(tag + "-pub", True))
    p.settimeout(5)
    p.recv(4)
    lat, t_next = [], time.monotonic()
    for i in range(count):
        pid = i % 65535 + 1
        t_next += 1.0 / rate
        delay = t_next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        p.sendall(pkt(0x32, s_("bench/ack/" + tag) + struct.pack(">H", pid) + b"x" * 64))
        want, buf = b"\x40\x02" + struct.pack(">H", pid), b""
        while not buf.endswith(want):
            buf += p.recv(64)
        lat.append(time.monotonic() - t0)
    p.sendall(b"\xe0\x00")
    p.close()
    lat.sort()
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1e6  # noqa: E731
    print('"count":%d,"ack_rate":%s,"ack_p50_us":%.1f,"ack_p99_us":%.1f,"ack_p999_us":%.1f,'
          '"ack_max_us":%.1f' % (count, rate, q(0.5), q(0.99), q(0.999), lat[-1] * 1e6))

def connack(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except OSError:
        return False
    try:
        s.sendall(connect("probe-%d" % os.getpid(), True))
        ok = s.recv(4)[:1] == b"\x20"
        s.sendall(b"\xe0\x00")
        return ok
    except OSError:
        return False
    finally:
        s.close()

mode, port = sys.argv[1], int(sys.argv[2])
if mode == "ack":
    ack_latency(port, float(sys.argv[3]), int(sys.argv[4]))
elif mode == "fill":
    t0 = time.monotonic()
    fill_sessions(port, int(sys.argv[3]))
    t1 = time.monotonic()
    fill_retained(port, int(sys.argv[4]))
    t2 = time.monotonic()
    print('"sessions":%d,"retained":%d,"fill_sessions_s":%.2f,"fill_retained_s":%.2f'
          % (int(sys.argv[3]), int(sys.argv[4]), t1 - t0, t2 - t1))
else:
    log = open(sys.argv[3], "ab")
    t0 = time.monotonic()
    p = subprocess.Popen(sys.argv[4:], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    while not connack(port):
        if p.poll() is not None or time.monotonic() - t0 > 300:
            print("null")
            sys.exit(0)
        time.sleep(0.005)
    took = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    p.wait(120)
    print("%.3f" % took)
PYEOF
)

machine() {
	echo "- command: \`bash perf/bench_persist.sh\` (BUILD=$BUILD BENCH_SECONDS=$SECS" \
		"BENCH_WARMUP=$WARM BENCH_REPS=$REPS BENCH_SIZE=$SIZE BENCH_LAT_RATE=$LAT_RATE" \
		"BENCH_FILL_SESSIONS=$FILL_SESSIONS BENCH_FILL_RETAINED=$FILL_RETAINED)," \
		"$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(machine_facts)," \
		"store on $(df -T "$TMP" | awk 'NR==2 {print $2}') ($TMP)," \
		"load average before: $(load_average)"
	echo "- shardmq $(shardmq_rev)" \
		"with $SHARDS shards; $("$MOSQUITTO" -h 2>/dev/null | head -1); loadgen --persistent" \
		"with $THREADS threads on the same cores"
}

main() {
	local t0=$SECONDS b
	: > "$RAW"
	for b in $BROKERS; do
		PORT[$b]=$(free_port) || { say "bench_persist: no free port"; exit 1; }
		write_config "$b"
	done
	machine > "$TMP/machine.md"
	case " $SKIP " in *" throughput "*) ;; *) say "== QoS 1 throughput"; throughput_table ;; esac
	case " $SKIP " in *" latency "*) ;; *) say "== QoS 1 latency at $LAT_RATE msgs/s"
		latency_table ;; esac
	case " $SKIP " in *" ack "*) ;; *) say "== publish -> PUBACK at $ACK_RATE msgs/s"
		ack_table ;; esac
	for b in $BROKERS; do stop_broker "$b"; done
	case " $SKIP " in *" load "*) ;; *) say "== load time"; load_table ;; esac
	echo "- load average after: $(load_average)" >> "$TMP/machine.md"
	tables > "$OUT"
	cat "$OUT"
	say "bench_persist: done in $((SECONDS - t0)) s; tables in $OUT, raw results in $RAW"
}

tables() {
	"$PYTHON" - "$RAW" "$TMP/machine.md" "$BROKERS" "$LAT_RATE" "$ACK_RATE" <<'PYEOF'
import json, statistics, sys
from collections import defaultdict

raw, machine, brokers, lat_rate = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
ack_rate = sys.argv[5]
runs, loads, acks = defaultdict(list), [], defaultdict(list)
for line in open(raw):
    if line.strip():
        r = json.loads(line)
        if r["table"] == "load":
            loads.append(r)
        elif r["table"] == "ack":
            acks[r["broker"]].append(r)
        else:
            runs[(r["table"], r["broker"], r.get("preset"))].append(r)

def med(rs, f):
    v = [r[f] for r in rs if not r.get("failed") and r.get(f) is not None]
    return statistics.median(v) if v else None

def rate(v):
    return "failed" if v is None else "%.1fk" % (v / 1e3) if v >= 1e3 else "%.0f" % v

def ms(us):
    return "-" if us is None else "%.3g" % (us / 1000.0)

def sms(us):
    return "%+.3g" % (us / 1000.0)

def errs(rs):
    ok = [r for r in rs if not r.get("failed")]
    if not ok:
        return "failed"
    return "%d / %d / %d" % tuple(sum(r.get(f, 0) for r in ok)
                                  for f in ("lost", "duplicated", "reordered"))

names = {"off": "shardmq off", "periodic": "shardmq periodic", "commit": "shardmq commit",
         "mosquitto": "mosquitto (persistence true)"}
print("## Persistence benchmarks\n")
print(open(machine).read().rstrip() + "\n")
if any(k[0] == "throughput" for k in runs):
    n = max(len(v) for k, v in runs.items() if k[0] == "throughput")
    print("QoS 1 throughput with persistent sessions (loadgen --persistent), delivered msgs/s, "
          "median of %d; lost / dup / reord are totals over the runs.\n" % n)
    print("| preset | " + " | ".join(names[b] for b in brokers) + " | commit / off |")
    print("|---|" + "---|" * (len(brokers) + 1))
    for p in ("1to1", "fanin"):
        cells = [med(runs[("throughput", b, p)], "delivered_rate") for b in brokers]
        off, com = (med(runs[("throughput", b, p)], "delivered_rate") for b in ("off", "commit"))
        print("| %s | %s | %s |" % (p, " | ".join(rate(c) for c in cells),
                                    "%.2fx" % (com / off) if off and com else "-"))
    print("\n| preset | " + " | ".join("%s lost / dup / reord" % names[b] for b in brokers)
          + " |")
    print("|---|" + "---|" * len(brokers))
    for p in ("1to1", "fanin"):
        print("| %s | %s |" % (p, " | ".join(errs(runs[("throughput", b, p)])
                                            for b in brokers)))
if any(k[0] == "latency" for k in runs):
    print("\nQoS 1 publish-to-delivery latency at a fixed %s msgs/s (1to1, persistent "
          "sessions), ms, median over the runs.\n" % lat_rate)
    print("| broker | delivered msgs/s | p50 | p99 | p99.9 | p50 / p99 added over off |")
    print("|---|---|---|---|---|---|")
    base = runs[("latency", "off", "1to1")]
    for b in brokers:
        rs = runs[("latency", b, "1to1")]
        add = "-"
        if b != "off" and med(rs, "lat_p50_us") is not None and med(base, "lat_p50_us"):
            add = "%s / %s" % (sms(med(rs, "lat_p50_us") - med(base, "lat_p50_us")),
                               sms(med(rs, "lat_p99_us") - med(base, "lat_p99_us")))
        print("| %s | %s | %s | %s | %s | %s |" % (
            names[b], rate(med(rs, "delivered_rate")), ms(med(rs, "lat_p50_us")),
            ms(med(rs, "lat_p99_us")), ms(med(rs, "lat_p999_us")), add))
if acks:
    print("\nQoS 1 publish -> PUBACK at %s msgs/s, one message in flight, each stored for an "
          "offline persistent session (Python probe), ms, median over the runs. This is the "
          "wait commit adds.\n" % ack_rate)
    print("| broker | p50 | p99 | p99.9 | max | p50 / p99 added over off |")
    print("|---|---|---|---|---|---|")
    for b in brokers:
        rs, base = acks.get(b, []), acks.get("off", [])
        add = "-"
        if b != "off" and med(rs, "ack_p50_us") is not None and med(base, "ack_p50_us"):
            add = "%s / %s" % (sms(med(rs, "ack_p50_us") - med(base, "ack_p50_us")),
                               sms(med(rs, "ack_p99_us") - med(base, "ack_p99_us")))
        print("| %s | %s | %s | %s | %s | %s |" % (
            names[b], ms(med(rs, "ack_p50_us")), ms(med(rs, "ack_p99_us")),
            ms(med(rs, "ack_p999_us")), ms(med(rs, "ack_max_us")), add))
if loads:
    print("\nLoad time: a store filled with persistent sessions (one subscription each) and "
          "retained messages, the broker stopped with SIGTERM (stop = time to exit, which "
          "includes writing the store for mosquitto), then started again: seconds from exec "
          "to the first CONNACK (median, min-max of the starts).\n")
    print("| broker | sessions | retained | fill sessions / retained s | stop s | store MB | "
          "start to CONNACK s |")
    print("|---|---|---|---|---|---|---|")
    for r in loads:
        if r.get("failed"):
            print("| %s | failed | | | | | |" % r["broker"])
            continue
        ts = [t for t in r.get("load_s_all", []) if t is not None]
        print("| %s | %d | %d | %.1f / %.1f | %.2f | %.1f | %s |" % (
            r["broker"] + (" (%d shards)" % r["shards"] if r["broker"] == "shardmq" else ""),
            r["sessions"], r["retained"], r["fill_sessions_s"], r["fill_retained_s"],
            r["stop_s"], r["store_bytes"] / 1e6,
            "%.2f (%.2f-%.2f)" % (statistics.median(ts), min(ts), max(ts)) if ts else "failed"))
PYEOF
}

main "$@"
