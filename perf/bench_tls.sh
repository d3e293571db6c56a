#!/usr/bin/env bash
# perf/bench_tls.sh - shardmq against mosquitto over TLS, side by side.
#
# Makes a throw-away CA and a server certificate for 127.0.0.1 with openssl
# in a temporary directory (deleted on exit; no key ever lands in the tree),
# then starts $BUILD/shardmq (--shards 2) and the Debian mosquitto on free
# loopback ports, each with three listeners on the same certificate:
#   plain   no TLS (only for the plaintext connect-rate baseline)
#   default TLS, the suites each broker prefers (shardmq: ChaCha20-Poly1305
#           first where wolfSSL has no hardware AES, as on Debian 12;
#           mosquitto's OpenSSL: TLS13-AES256-GCM-SHA384)
#   chacha  TLS, ciphers_tls1.3 limited to ChaCha20-Poly1305 (Debian's
#           wolfSSL has no AES-NI, so AES-GCM costs more there than ChaCha)
# and runs $BUILD/perf/loadgen (--cafile: every connection is TLS and the
# chain is verified) against both, alternating the order every repetition:
#   1. delivered msgs/s for each preset x QoS x payload size x cipher, with
#      the shardmq/mosquitto ratio, lost/duplicated/reordered and CPU;
#   2. connects/s with the churn preset (connect, TLS handshake, CONNECT,
#      CONNACK, DISCONNECT, the broker closes, again), TLS and plaintext.
# Tables of medians go to stdout and $BUILD/bench-tls-results.md, raw JSON
# lines to $BUILD/bench-tls-raw.jsonl.
#
# Knobs (environment): BUILD (build), BENCH_SECONDS (4), BENCH_WARMUP (1),
# BENCH_REPS (3), BENCH_PRESETS ("1to1 fanout"), BENCH_QOS ("0 1"),
# BENCH_SIZES ("16 1024"), BENCH_CIPHERS ("default chacha"), BENCH_SHARDS (2),
# BENCH_CHURN_CLIENTS (64), BENCH_TLS_KEY (ec: P-256; rsa: RSA 2048),
# BENCH_DRAIN (3), BENCH_THREADS (loadgen threads, default: online CPUs),
# SHARDMQ_BIN, MOSQUITTO_BIN.
# Quick look: BENCH_SECONDS=1 BENCH_WARMUP=0.5 BENCH_REPS=1 bash perf/bench_tls.sh
#
# A broker that does not start or dies is reported as "failed" in its cells
# (and said on stderr with the loadgen arguments that were running); the
# other broker's numbers are still measured.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=${BUILD:-build}
SECS=${BENCH_SECONDS:-4}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
PRESETS=${BENCH_PRESETS:-"1to1 fanout"}
QOSES=${BENCH_QOS:-"0 1"}
SIZES=${BENCH_SIZES:-"16 1024"}
CIPHERS=${BENCH_CIPHERS:-"default chacha"}
SHARDS=${BENCH_SHARDS:-2}
CHURN=${BENCH_CHURN_CLIENTS:-64}
KEYTYPE=${BENCH_TLS_KEY:-ec}
DRAIN=${BENCH_DRAIN:-3}
NCPU=$(getconf _NPROCESSORS_ONLN)
THREADS=${BENCH_THREADS:-$NCPU}
LOADGEN=$BUILD/perf/loadgen
SHARDMQ=${SHARDMQ_BIN:-$BUILD/shardmq}
MOSQUITTO=${MOSQUITTO_BIN:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
HERE=$(cd "$(dirname "$0")" && pwd)
RAW=$BUILD/bench-tls-raw.jsonl
OUT=$BUILD/bench-tls-results.md
LISTENERS="plain default chacha"

TMP=$(mktemp -d /tmp/shardmq-bench-tls.XXXXXX)
trap 'stop_broker shardmq; stop_broker mosquitto; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

if [ ! -x "$LOADGEN" ]; then
	say "bench_tls: $LOADGEN is missing: run 'make BUILD=$BUILD $LOADGEN $SHARDMQ' first"
	exit 1
fi
command -v openssl >/dev/null || { say "bench_tls: openssl is needed for the certificates"; exit 1; }

# A CA and a server certificate for 127.0.0.1 / localhost, signed by it.
make_certs() {
	local key=(ecparam -name prime256v1 -genkey -noout)
	[ "$KEYTYPE" = rsa ] && key=(genrsa 2048)
	(
		set -e
		cd "$TMP"
		umask 077
		openssl "${key[@]}" -out ca.key 2>/dev/null
		openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=shardmq bench CA" \
			-out ca.pem
		openssl "${key[@]}" -out server.key 2>/dev/null
		openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
		printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
			"keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > ext.cnf
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-sha256 -extfile ext.cnf -out server.pem 2>/dev/null
	)
}

# The same limits as perf/bench.sh (nothing is dropped for a burst), one
# listener block per entry of $LISTENERS.
write_configs() {
	local l
	{
		cat "$HERE/mosquitto-bench.conf"
		# as root mosquitto would switch to the mosquitto user, who cannot
		# read the key in our private temporary directory
		[ "$(id -u)" = 0 ] && echo "user root"
		for l in $LISTENERS; do
			echo "listener ${PORT[mosquitto.$l]} 127.0.0.1"
			[ "$l" = plain ] && continue
			echo "certfile $TMP/server.pem"
			echo "keyfile $TMP/server.key"
			[ "$l" = chacha ] && echo "ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256"
		done
	} > "$TMP/mosquitto.conf"
	{
		printf '%s\n' "max_inflight_messages 100" "max_queued_messages 100000000" \
			"max_queued_bytes 0" "client_max_write_buffer 4g" "max_connections -1" \
			"log_level warning" "allow_anonymous true"
		for l in $LISTENERS; do
			echo "listener ${PORT[shardmq.$l]} 127.0.0.1"
			[ "$l" = plain ] && continue
			echo "certfile $TMP/server.pem"
			echo "keyfile $TMP/server.key"
			[ "$l" = chacha ] && echo "ciphers_tls1.3 TLS13-CHACHA20-POLY1305-SHA256"
		done
	} > "$TMP/shardmq.conf"
}

# start_broker NAME: 0 once all its listeners listen (within 5 s).
start_broker() {
	local name=$1 cmd ports=() l
	case $name in
	shardmq)
		[ -x "$SHARDMQ" ] || { say "bench_tls: $SHARDMQ is missing"; return 1; }
		cmd=("$SHARDMQ" -c "$TMP/shardmq.conf" --shards "$SHARDS")
		;;
	mosquitto)
		cmd=("$MOSQUITTO" -c "$TMP/mosquitto.conf")
		;;
	esac
	for l in $LISTENERS; do
		ports+=("${PORT[$name.$l]}")
	done
	start_cmd "$name" "$TMP/$name.log" "${ports[@]}" -- "${cmd[@]}"
}

# run TABLE BROKER LISTENER LOADGEN-ARGS...: one loadgen run, one JSON line
# (tagged with table, broker and listener) appended to $RAW.
run() {
	local table=$1 broker=$2 lst=$3 line tag tls=()
	shift 3
	tag="\"table\":\"$table\",\"broker\":\"$broker\",\"listener\":\"$lst\""
	[ "$lst" = plain ] || tls=(--cafile "$TMP/ca.pem")
	if ! alive "$broker" && ! start_broker "$broker"; then
		echo "{$tag,\"failed\":true,$(args_json "$@")}" >> "$RAW"
		return
	fi
	line=$(timeout $((30 + ${SECS%.*} * 3)) "$LOADGEN" --port "${PORT[$broker.$lst]}" \
		--broker-pid "${PID[$broker]}" --threads "$THREADS" --drain "$DRAIN" \
		"${tls[@]}" --json "$@" 2>>"$TMP/loadgen.err" | tail -1)
	if [ "${line:0:1}" != "{" ] || ! alive "$broker"; then
		if alive "$broker"; then
			say "bench_tls: loadgen failed against $broker/$lst: $*"
			tail -3 "$TMP/loadgen.err" >&2
		else
			say "bench_tls: $broker DIED during: loadgen $* (listener $lst); its log:"
			tail -5 "$TMP/$broker.log" >&2
		fi
		echo "{$tag,\"failed\":true,$(args_json "$@")}" >> "$RAW"
		return
	fi
	echo "{$tag,${line:1}" >> "$RAW"
	say "  $(printf '%-9s %-7s' "$broker" "$lst") $* -> $(summary "$line")"
}

args_json() {
	local preset=x qos=0 size=0
	while [ $# -gt 1 ]; do
		case $1 in
		--preset) preset=$2 ;;
		--qos) qos=$2 ;;
		--size) size=$2 ;;
		esac
		shift
	done
	echo "\"preset\":\"$preset\",\"qos\":$qos,\"size\":$size"
}

summary() {
	echo "$1" | sed -E 's/.*"delivered_rate":([0-9.]+).*"lost":([0-9]+),"backlog":([0-9]+),"duplicated":([0-9]+),"reordered":([0-9]+).*"cpu_loadgen_pct":([0-9.]+),"cpu_broker_pct":([-0-9.]+).*/\1 msgs\/s delivered, lost \2 (+\3 queued), dup \4, reord \5, cpu loadgen \6% broker \7%/; s/.*"connect_rate":([0-9.]+),"lat_p50_us":([0-9.]+).*"conn_errors":([0-9]+),"cpu_loadgen_pct":([0-9.]+),"cpu_broker_pct":([-0-9.]+).*/\1 conn\/s, p50 \2 us, errors \3, cpu loadgen \4% broker \5%/; s/,?"tls":"([^"]*)"\}$//'
}

# Both brokers, the order flipped every repetition.
both() {
	local table=$1 lst=$2 rep
	shift 2
	for rep in $(seq "$REPS"); do
		if [ $((rep % 2)) = 1 ]; then
			run "$table" shardmq "$lst" "$@"
			run "$table" mosquitto "$lst" "$@"
		else
			run "$table" mosquitto "$lst" "$@"
			run "$table" shardmq "$lst" "$@"
		fi
	done
}

throughput_table() {
	local p q s c
	for p in $PRESETS; do
		for q in $QOSES; do
			for s in $SIZES; do
				for c in $CIPHERS; do
					both main "$c" --preset "$p" --qos "$q" --size "$s" \
						--duration "$SECS" --warmup "$WARM"
				done
			done
		done
	done
}

connect_table() {
	local c
	for c in $CIPHERS plain; do
		both churn "$c" --preset churn --clients "$CHURN" --duration "$SECS" \
			--warmup "$WARM"
	done
}

machine() {
	echo "- command: \`bash perf/bench_tls.sh\` (BUILD=$BUILD BENCH_SECONDS=$SECS" \
		"BENCH_WARMUP=$WARM BENCH_REPS=$REPS BENCH_TLS_KEY=$KEYTYPE" \
		"BENCH_CHURN_CLIENTS=$CHURN), $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(machine_facts)," "load average before the run: $(load_average)"
	echo "- shardmq $(shardmq_rev)" \
		"with $SHARDS shards, wolfSSL $(dpkg-query -W -f='${Version}' 'libwolfssl3*' \
		2>/dev/null | head -c 20 || echo '?'); $("$MOSQUITTO" -h 2>/dev/null | head -1)" \
		"with $(openssl version | cut -d' ' -f1-2); loadgen (wolfSSL client) with" \
		"$THREADS threads on the same cores; certificate: $KEYTYPE" \
		"$([ "$KEYTYPE" = rsa ] && echo 'RSA 2048' || echo 'P-256'), signed by a CA of the" \
		"same kind, verified by loadgen"
}

main() {
	local t0=$SECONDS b l
	mkdir -p "$BUILD"
	: > "$RAW"
	make_certs || { say "bench_tls: openssl could not make the certificates"; exit 1; }
	for b in shardmq mosquitto; do
		for l in $LISTENERS; do
			PORT[$b.$l]=$(free_port) || { say "bench_tls: no free port"; exit 1; }
		done
	done
	write_configs
	start_broker shardmq || say "bench_tls: shardmq rows will say 'failed'"
	start_broker mosquitto || say "bench_tls: mosquitto rows will say 'failed'"
	machine > "$TMP/machine.md"
	say "bench_tls: ports (plain/default/chacha): shardmq" \
		"${PORT[shardmq.plain]}/${PORT[shardmq.default]}/${PORT[shardmq.chacha]}, mosquitto" \
		"${PORT[mosquitto.plain]}/${PORT[mosquitto.default]}/${PORT[mosquitto.chacha]};" \
		"$REPS repetitions of ${SECS}s (+${WARM}s warm-up)"
	say "== TLS throughput"
	throughput_table
	say "== connect rate"
	connect_table
	echo "- load average after the run: $(load_average)" \
		"(other work on the machine skews every number; compare rows of one run)" \
		>> "$TMP/machine.md"
	tables > "$OUT"
	cat "$OUT"
	say "bench_tls: done in $((SECONDS - t0)) s; tables in $OUT, raw results in $RAW"
}

# Tabulate $RAW: medians over repetitions, Markdown out.
tables() {
	"$PYTHON" - "$RAW" "$TMP/machine.md" "$NCPU" <<'PYEOF'
import json, statistics, sys
from collections import defaultdict

raw, machine, ncpu = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = defaultdict(list)
order = []
for line in open(raw):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    key = (r["table"], r["preset"], r.get("qos", 0), r.get("size", 0), r["listener"])
    if key not in order:
        order.append(key)
    runs[key + (r["broker"],)].append(r)

def ok(rs):
    return [r for r in rs if not r.get("failed")]

def med(rs, f):
    v = [r[f] for r in ok(rs) if f in r]
    return statistics.median(v) if v else None

def total(rs, f):
    v = [r[f] for r in ok(rs) if f in r]
    return sum(v) if v else 0

def rate(v):
    if v is None:
        return "failed"
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e3:
        return "%.1fk" % (v / 1e3)
    return "%.0f" % v

def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"

def cpu(v):
    return "-" if v is None or v < 0 else "%.0f" % v

def ms(us):
    return "-" if us is None else "%.3g" % (us / 1000.0)

def errs(rs):
    if not ok(rs):
        return "failed"
    q = total(rs, "backlog")
    return "%d%s / %d / %d" % (total(rs, "lost"), " (+%s queued)" % rate(q) if q else "",
                               total(rs, "duplicated"), total(rs, "reordered"))

def failures(rs):
    n = len(rs) - len(ok(rs))
    return " (%d of %d runs failed)" % (n, len(rs)) if n else ""

def suite(rs):
    s = sorted({r.get("tls", "plaintext").split(" ")[-1] for r in ok(rs)})
    return ", ".join(x.replace("TLS13-", "") for x in s) or "-"

def get(*k):
    return runs.get(k, [])

print("## TLS benchmarks\n")
print(open(machine).read().rstrip() + "\n")
n = max([len(v) for v in runs.values()] or [0])
main = [k for k in order if k[0] == "main"]
if main:
    print("Delivered msgs/s over TLS, median of %d runs per cell; ratio = shardmq / mosquitto "
          "on the same cipher. lost / dup / reord are totals over all runs (\"queued\": still "
          "on its way when the drain time ran out). CPU is percent of one core over the "
          "window; %d cores = %d%%.\n" % (n, ncpu, ncpu * 100))
    print("| preset | QoS | payload | cipher (smq; mosq) | shardmq delivered | mosquitto "
          "delivered | ratio | shardmq lost / dup / reord | mosquitto lost / dup / reord | "
          "loadgen CPU % (smq / mosq) | broker CPU % (smq / mosq) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for k in main:
        s, m = get(*k, "shardmq"), get(*k, "mosquitto")
        print("| %s | %d | %d B | %s; %s | %s%s | %s%s | %s | %s | %s | %s / %s | %s / %s |" % (
            k[1], k[2], k[3], suite(s), suite(m), rate(med(s, "delivered_rate")), failures(s),
            rate(med(m, "delivered_rate")), failures(m),
            ratio(med(s, "delivered_rate"), med(m, "delivered_rate")), errs(s), errs(m),
            cpu(med(s, "cpu_loadgen_pct")), cpu(med(m, "cpu_loadgen_pct")),
            cpu(med(s, "cpu_broker_pct")), cpu(med(m, "cpu_broker_pct"))))
    ciphers = sorted({k[4] for k in main})
    if "default" in ciphers and "chacha" in ciphers:
        print("\nChaCha20-Poly1305 against each library's default suite (AES-GCM): delivered "
              "msgs/s, chacha / default, per broker.\n")
        print("| preset | QoS | payload | shardmq default -> chacha | mosquitto default -> "
              "chacha |")
        print("|---|---|---|---|---|")
        for k in main:
            if k[4] != "default":
                continue
            c = (k[0], k[1], k[2], k[3], "chacha")
            cells = []
            for b in ("shardmq", "mosquitto"):
                d, h = med(get(*k, b), "delivered_rate"), med(get(*c, b), "delivered_rate")
                cells.append("%s -> %s (%s)" % (rate(d), rate(h), ratio(h, d)))
            print("| %s | %d | %d B | %s | %s |" % (k[1], k[2], k[3], cells[0], cells[1]))

churn = [k for k in order if k[0] == "churn"]
if churn:
    print("\nConnect rate, median of %d: clients each connect, complete the TLS handshake "
          "(full, no resumption), send CONNECT, get CONNACK, send DISCONNECT, wait for the "
          "broker to close, and start over (loadgen --preset churn). Connect latency is "
          "connect() to CONNACK.\n" % n)
    print("| listener | shardmq conn/s | mosquitto conn/s | ratio | shardmq p50 / p99 ms | "
          "mosquitto p50 / p99 ms | errors (smq / mosq) | loadgen CPU % (smq / mosq) | "
          "broker CPU % (smq / mosq) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for k in churn:
        s, m = get(*k, "shardmq"), get(*k, "mosquitto")
        lat = lambda rs: "-" if not ok(rs) else "%s / %s" % (ms(med(rs, "lat_p50_us")),
                                                             ms(med(rs, "lat_p99_us")))
        name = k[4] if k[4] == "plain" else "%s (%s; %s)" % (k[4], suite(s), suite(m))
        print("| %s | %s%s | %s%s | %s | %s | %s | %d / %d | %s / %s | %s / %s |" % (
            name, rate(med(s, "connect_rate")), failures(s), rate(med(m, "connect_rate")),
            failures(m), ratio(med(s, "connect_rate"), med(m, "connect_rate")), lat(s), lat(m),
            total(s, "conn_errors"), total(m, "conn_errors"),
            cpu(med(s, "cpu_loadgen_pct")), cpu(med(m, "cpu_loadgen_pct")),
            cpu(med(s, "cpu_broker_pct")), cpu(med(m, "cpu_broker_pct"))))
PYEOF
}

main "$@"
