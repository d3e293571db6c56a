#!/usr/bin/env bash
# perf/bench.sh - shardmq against mosquitto, side by side (what `make bench` runs).
#
# Starts build/shardmq and the Debian mosquitto on free loopback ports (memory
# only, queue limits lifted so that neither drops), and FlashMQ as a third
# broker when FLASHMQ names its binary; runs every preset of build/perf/loadgen
# at QoS 0, 1 and 2 against each, alternating the order between repetitions,
# and prints Markdown tables of the medians:
#   1. throughput per preset and QoS, with the ratios shardmq/mosquitto,
#      shardmq/flashmq and shardmq/relay. The relay (perf/relay.c, built with
#      the rest) is no broker but the ceiling: a minimal MQTT relay that only
#      copies PUBLISH bytes to the subscribers, so shardmq/relay says how
#      close to the machine's limit shardmq gets;
#   2. idle connections: connect rate and broker memory per connection;
#   3. shardmq scaling at 1, 2, ... shards;
#   4. latency at a fixed rate (1to1 at 5,000 msgs/s, fanout at 10,000
#      deliveries/s).
# The relay runs in the throughput table only; FlashMQ in tables 1, 2 and 4,
# with a config written here (listener on 127.0.0.1, queue and write-buffer
# limits lifted as far as FlashMQ allows, like perf/mosquitto-bench.conf).
# The tables also go to $BUILD/bench-results.md, the raw JSON lines to
# $BUILD/bench-raw.jsonl.
#
# Knobs (environment): BUILD (build), BENCH_SECONDS (5), BENCH_WARMUP (1),
# BENCH_REPS (3), BENCH_PRESETS ("1to1 fanin fanout mesh"), BENCH_QOS ("0 1 2"),
# BENCH_SIZE (64), BENCH_CONNECTIONS (10000), BENCH_SCALE_QOS (0),
# BENCH_LAT_QOS ("0 1"), BENCH_DRAIN (3), BENCH_THREADS (loadgen threads,
# default: online CPUs), SHARDMQ_BIN, MOSQUITTO_BIN, RELAY_BIN ($BUILD/perf/relay),
# FLASHMQ (path of a flashmq binary; unset: no FlashMQ column).
# Quick look: BENCH_SECONDS=1 BENCH_WARMUP=0.5 BENCH_REPS=1 bash perf/bench.sh
# With FlashMQ: FLASHMQ=/path/to/flashmq make bench
#
# A broker that is missing (FLASHMQ not an executable file too), does not
# start or dies is reported as "failed" in its cells; the others' numbers are
# still measured.
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=${BUILD:-build}
SECS=${BENCH_SECONDS:-5}
WARM=${BENCH_WARMUP:-1}
REPS=${BENCH_REPS:-3}
PRESETS=${BENCH_PRESETS:-"1to1 fanin fanout mesh"}
QOSES=${BENCH_QOS:-"0 1 2"}
SIZE=${BENCH_SIZE:-64}
CONNS=${BENCH_CONNECTIONS:-10000}
SCALE_QOS=${BENCH_SCALE_QOS:-0}
LAT_QOS=${BENCH_LAT_QOS:-"0 1"}
DRAIN=${BENCH_DRAIN:-3}
NCPU=$(getconf _NPROCESSORS_ONLN)
THREADS=${BENCH_THREADS:-$NCPU}
LOADGEN=$BUILD/perf/loadgen
SHARDMQ=${SHARDMQ_BIN:-$BUILD/shardmq}
MOSQUITTO=${MOSQUITTO_BIN:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
RELAY=${RELAY_BIN:-$BUILD/perf/relay}
FLASHMQ=${FLASHMQ:-}
# The brokers of every table; the relay joins them in the throughput table.
BROKERS="shardmq mosquitto${FLASHMQ:+ flashmq}"
HERE=$(cd "$(dirname "$0")" && pwd)
RAW=$BUILD/bench-raw.jsonl
OUT=$BUILD/bench-results.md

TMP=$(mktemp -d /tmp/shardmq-bench.XXXXXX)
declare -A CONF MISSING
trap 'for b in $BROKERS relay; do stop_broker $b; done; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

if [ ! -x "$LOADGEN" ]; then
	say "bench: $LOADGEN is missing: run 'make' (or 'make BUILD=$BUILD all') first"
	exit 1
fi
# 10,000 clients need as many descriptors in the brokers and in loadgen.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

# A free port for each broker and the relay, no two the same (lib.sh).
pick_ports() {
	local b
	for b in $BROKERS relay; do
		PORT[$b]=$(free_port) || return 1
	done
}

# shardmq runs with a shard per CPU; the others are tagged 1 in the results.
shards_of() { [ "$1" = shardmq ] && echo "$NCPU" || echo 1; }

write_configs() {
	CONF[mosquitto]=$TMP/mosquitto.conf
	{ cat "$HERE/mosquitto-bench.conf"; echo "listener ${PORT[mosquitto]} 127.0.0.1"; } \
		> "${CONF[mosquitto]}"
	CONF[shardmq]=$TMP/shardmq.conf
	# the same limits as mosquitto-bench.conf: nothing is dropped for a burst
	cat > "${CONF[shardmq]}" <<-EOF
	max_inflight_messages 100
	max_queued_messages 100000000
	max_queued_bytes 0
	sys_interval 0
	client_max_write_buffer 4g
	max_connections -1
	log_level warning
	EOF
	[ -n "$FLASHMQ" ] && write_flashmq_config
	return 0
}

# FlashMQ's nearest to mosquitto-bench.conf: memory only (no storage_dir),
# the per-client QoS queue at its maximum (65535 messages), the byte limits
# (queued QoS bytes, write buffer) at 2 GiB, so that it drops nothing for a
# burst; quiet logs. Its listener option tcp_nodelay is left out: older
# versions refuse unknown keys.
write_flashmq_config() {
	local nofile
	nofile=$(ulimit -Hn)
	[ "$nofile" = unlimited ] && nofile=1000000
	CONF[flashmq]=$TMP/flashmq.conf
	cat > "${CONF[flashmq]}" <<-EOF
	allow_anonymous true
	log_file $TMP/flashmq.log
	quiet true
	max_qos_msg_pending_per_client 65535
	max_qos_bytes_pending_per_client 2147483647
	client_max_write_buffer_size 2147483647
	rlimit_nofile $nofile
	listen {
	protocol mqtt
	inet_protocol ip4
	inet4_bind_address 127.0.0.1
	port ${PORT[flashmq]}
	}
	EOF
}

# missing NAME WHY: say WHY the first time only (run() retries every run), fail.
missing() {
	[ -n "${MISSING[$1]:-}" ] || say "bench: $2"
	MISSING[$1]=1
	return 1
}

# start_broker NAME [SHARDS]: 0 when it listens within 5 s.
start_broker() {
	local name=$1 shards=${2:-$NCPU} cmd
	case $name in
	shardmq)
		[ -x "$SHARDMQ" ] || { missing shardmq "$SHARDMQ is missing"; return; }
		cmd=("$SHARDMQ" -c "${CONF[shardmq]}" -p "${PORT[shardmq]}" --shards "$shards")
		;;
	mosquitto)
		cmd=("$MOSQUITTO" -c "${CONF[mosquitto]}")
		;;
	relay)
		[ -x "$RELAY" ] || { missing relay "$RELAY is missing"; return; }
		cmd=("$RELAY" -p "${PORT[relay]}")
		;;
	flashmq)
		if [ ! -f "$FLASHMQ" ] || [ ! -x "$FLASHMQ" ]; then
			missing flashmq "FLASHMQ=$FLASHMQ is not an executable file"
			return
		fi
		cmd=("$FLASHMQ" -c "${CONF[flashmq]}")
		;;
	esac
	start_cmd "$name" "$TMP/$name.log" "${PORT[$name]}" -- "${cmd[@]}"
}

# run TABLE BROKER SHARDS LOADGEN-ARGS...: one loadgen run, one JSON line
# (tagged with table, broker and shards) appended to $RAW.
run() {
	local table=$1 broker=$2 shards=$3 line tag
	shift 3
	tag="\"table\":\"$table\",\"broker\":\"$broker\",\"shards\":$shards"
	if ! alive "$broker" && ! start_broker "$broker" "$shards"; then
		echo "{$tag,\"failed\":true,$(args_json "$@")}" >> "$RAW"
		return
	fi
	line=$(timeout $((30 + ${SECS%.*} * 3)) "$LOADGEN" --port "${PORT[$broker]}" \
		--broker-pid "${PID[$broker]}" --threads "$THREADS" --size "$SIZE" \
		--drain "$DRAIN" --json "$@" | tail -1)
	if [ "${line:0:1}" != "{" ] || ! alive "$broker"; then
		alive "$broker" || say "bench: $broker died during: loadgen $*"
		echo "{$tag,\"failed\":true,$(args_json "$@")}" >> "$RAW"
		return
	fi
	echo "{$tag,${line:1}" >> "$RAW"
	say "  $(printf '%-9s' "$broker") $* -> $(summary "$line")"
}

# The preset and QoS of a run, for the "failed" line.
args_json() {
	local preset=x qos=0 rate=0
	while [ $# -gt 1 ]; do
		case $1 in
		--preset) preset=$2 ;;
		--qos) qos=$2 ;;
		--rate) rate=$2 ;;
		esac
		shift
	done
	echo "\"preset\":\"$preset\",\"qos\":$qos,\"rate\":$rate"
}

summary() {
	echo "$1" | sed -E 's/.*"delivered_rate":([0-9.]+).*"lat_p99_us":([0-9.]+).*"lost":([0-9]+),"backlog":([0-9]+).*"cpu_loadgen_pct":([0-9.]+).*/\1 msgs\/s delivered, p99 \2 us, lost \3, backlog \4, loadgen cpu \5%/; s/.*"connect_rate":([0-9.]+).*"bytes_per_conn":(-?[0-9]+).*/\1 conn\/s, \2 B\/conn/'
}

# each TABLE "BROKER..." LOADGEN-ARGS...: every broker once per repetition,
# the order reversed every other repetition so that drift in the machine's
# load does not favour one of them.
each() {
	local table=$1 brokers=$2 rep b order
	shift 2
	for rep in $(seq "$REPS"); do
		order=$brokers
		[ $((rep % 2)) = 0 ] && order=$(echo "$brokers" | tr ' ' '\n' | tac)
		for b in $order; do
			run "$table" "$b" "$(shards_of "$b")" "$@"
		done
	done
}

main_table() {
	local p q
	for p in $PRESETS; do
		for q in $QOSES; do
			each main "$BROKERS relay" --preset "$p" --qos "$q" --duration "$SECS" \
				--warmup "$WARM"
		done
	done
	stop_broker relay	# the throughput table is the only one it is in
}

# Memory per connection needs a broker that has not been used yet: restart.
connections_table() {
	local rep b
	for rep in $(seq "$REPS"); do
		for b in $BROKERS; do
			start_broker "$b" "$NCPU" || true
			run connections "$b" "$(shards_of "$b")" \
				--preset connections --clients "$CONNS"
		done
	done
	for b in $BROKERS; do
		start_broker "$b" "$NCPU" || true
	done
}

scale_table() {
	local s p q rep
	stop_broker mosquitto
	stop_broker flashmq
	for s in $(shard_counts); do
		[ "$s" = "$NCPU" ] && continue	# measured in the main table
		start_broker shardmq "$s" || true
		for p in $PRESETS; do
			for q in $SCALE_QOS; do
				for rep in $(seq "$REPS"); do
					run scale shardmq "$s" --preset "$p" --qos "$q" \
						--duration "$SECS" --warmup "$WARM"
				done
			done
		done
	done
	start_broker shardmq "$NCPU" || true
	start_broker mosquitto || true
	[ -z "$FLASHMQ" ] || start_broker flashmq || true
}

# 1, 2, 3 ... up to 8, then powers of two, and the CPU count.
shard_counts() {
	local s=1
	while [ "$s" -le "$NCPU" ]; do
		echo "$s"
		if [ "$s" -lt 8 ]; then s=$((s + 1)); else s=$((s * 2)); fi
	done
	[ "$NCPU" -gt 8 ] && [ $((NCPU & (NCPU - 1))) != 0 ] && echo "$NCPU"
	return 0
}

latency_table() {
	local q
	for q in $LAT_QOS; do
		each latency "$BROKERS" --preset 1to1 --qos "$q" --rate 5000 --duration "$SECS" \
			--warmup "$WARM"
		# 1 publisher x 20 subscribers x 500 msgs/s = 10,000 deliveries/s
		each latency "$BROKERS" --preset fanout --qos "$q" --rate 500 --duration "$SECS" \
			--warmup "$WARM"
	done
}

machine() {
	echo "- command: \`make bench\` (BUILD=$BUILD BENCH_SECONDS=$SECS BENCH_WARMUP=$WARM" \
		"BENCH_REPS=$REPS BENCH_SIZE=$SIZE), $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- machine: $(machine_facts)," "load average before the run: $(load_average)"
	echo "- shardmq $(shardmq_rev)" \
		"with $NCPU shards; $("$MOSQUITTO" -h 2>/dev/null | head -1)" \
		"(perf/mosquitto-bench.conf);$(flashmq_version)" \
		"the relay: perf/relay.c, one thread; loadgen with $THREADS threads" \
		"on the same cores as the brokers"
}

# " FlashMQ <its --version line> (...);" when FLASHMQ is set, else nothing.
flashmq_version() {
	local v=
	[ -n "$FLASHMQ" ] || return 0
	[ -f "$FLASHMQ" ] && [ -x "$FLASHMQ" ] && v=$("$FLASHMQ" --version 2>/dev/null | head -1)
	echo " FlashMQ $FLASHMQ: ${v:-version unknown} (config written by bench.sh);"
}

main() {
	local t0=$SECONDS b ports
	: > "$RAW"
	pick_ports || {
		say "bench: no free port"
		exit 1
	}
	write_configs
	for b in $BROKERS relay; do
		start_broker "$b" "$NCPU" || say "bench: $b rows will say 'failed'"
	done
	machine > "$TMP/machine.md"
	ports=$(for b in $BROKERS relay; do printf '%s on port %s, ' "$b" "${PORT[$b]}"; done)
	say "bench: ${ports%, };" "$REPS repetitions of ${SECS}s (+${WARM}s warm-up)"
	say "== throughput"
	main_table
	say "== connections"
	connections_table
	say "== scaling"
	scale_table
	say "== fixed-rate latency"
	latency_table
	echo "- load average after the run: $(load_average)" \
		"(other work on the machine skews every number; compare rows of one run)" \
		>> "$TMP/machine.md"
	tables > "$OUT"
	cat "$OUT"
	say "bench: done in $((SECONDS - t0)) s; tables in $OUT, raw results in $RAW"
}

# Tabulate $RAW: medians over repetitions, Markdown out.
tables() {
	"$PYTHON" - "$RAW" "$TMP/machine.md" "$NCPU" <<'PYEOF'
import json, statistics, sys
from collections import defaultdict

raw, machine, ncpu = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = defaultdict(list)
for line in open(raw):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    key = (r["table"], r["broker"], r["shards"], r.get("preset"), r.get("qos", 0),
           float(r.get("rate", 0)))
    runs[key].append(r)

def ok(rs):
    return [r for r in rs if not r.get("failed")]

def med(rs, f):
    v = [r[f] for r in ok(rs) if f in r]
    return statistics.median(v) if v else None

def total(rs, f):
    v = [r[f] for r in ok(rs) if f in r]
    return sum(v) if v else None

def rate(v):
    if v is None:
        return "failed"
    if v >= 1e6:
        return "%.2fM" % (v / 1e6)
    if v >= 1e3:
        return "%.1fk" % (v / 1e3)
    return "%.0f" % v

def ms(us):
    if us is None:
        return "-"
    v = us / 1000.0
    return "%.3g" % v if v < 100 else "%.0f" % v

def ratio(a, b):
    if not a or not b:
        return "-"
    return "%.2fx" % (a / b)

def cpu(v):
    return "-" if v is None or v < 0 else "%.0f" % v

def errs(rs):
    if not ok(rs):
        return "failed"
    queued = total(rs, "backlog") or 0
    return "%d%s / %d / %d" % (total(rs, "lost"),
                               " (+%s queued)" % rate(queued) if queued else "",
                               total(rs, "duplicated"), total(rs, "reordered"))

def get(table, broker, shards, preset, qos, rt=0.0):
    return runs.get((table, broker, shards, preset, qos, rt), [])

# Columns in this order, for the brokers a table has rows of (a broker that
# failed to start still has them, marked failed). The relay is the ceiling.
SHORT = {"shardmq": "smq", "mosquitto": "mosq", "flashmq": "fmq", "relay": "relay"}

def brokers(table):
    present = {k[1] for k in runs if k[0] == table}
    return [b for b in SHORT if b in present]

def shards_of(b):
    return ncpu if b == "shardmq" else 1

def slash(vals):
    return " / ".join(vals)

def short(bs):
    return slash(SHORT[b] for b in bs)

def order(table):
    seen = []
    for k in runs:
        if k[0] == table and (k[3], k[4], k[5]) not in seen:
            seen.append((k[3], k[4], k[5]))
    return seen

print("## Broker benchmarks\n")
print(open(machine).read().rstrip() + "\n")
n = max([len(v) for v in runs.values()] or [0])
print("Throughput, median of %d runs per cell (msgs/s; \"sent\" is what publishers got "
      "accepted, \"delivered\" what subscribers received, inside the measured window). "
      "Latency is publish-to-delivery under saturation, so it mostly shows queueing. "
      "lost / dup / reord are totals over all runs: lost counts what never arrived once the "
      "broker went quiet after publishing stopped; \"queued\" what was still on its way when "
      "the drain time ran out (a backlog the broker had accepted but not yet delivered). CPU is percent of one core over the window; "
      "%d cores = %d%%." % (n, ncpu, ncpu * 100))
if "relay" in brokers("main"):
    print("The relay (perf/relay.c) is the ceiling, not a broker: one thread that copies each "
          "PUBLISH unchanged to the matching subscribers, writes once per loop turn and stops "
          "reading a publisher while a subscriber is backed up; shardmq / relay is the share "
          "of that ceiling shardmq reaches.")
print()
# Each row: every broker's rates, then shardmq's delivered rate as a ratio
# to each other broker and to the relay (the ceiling), then the details.
bs = brokers("main")
others = [b for b in bs if b != "shardmq"]
cols = (["preset", "QoS"] + ["%s sent / delivered" % b for b in bs] +
        ["shardmq / %s (delivered)" % b for b in others] +
        ["%s p50 / p99 ms" % b for b in bs] + ["%s lost / dup / reord" % b for b in bs] +
        ["loadgen CPU %% (%s)" % short(bs), "broker CPU %% (%s)" % short(bs)])
print("| " + " | ".join(cols) + " |")
print("|" + "---|" * len(cols))
cell = lambda rs: ("failed" if not ok(rs) else
                   "%s / %s" % (rate(med(rs, "sent_rate")), rate(med(rs, "delivered_rate"))))
lat = lambda rs: ("-" if not ok(rs) else
                  "%s / %s" % (ms(med(rs, "lat_p50_us")), ms(med(rs, "lat_p99_us"))))
for preset, qos, rt in order("main"):
    r = {b: get("main", b, shards_of(b), preset, qos) for b in bs}
    smq = med(r.get("shardmq", []), "delivered_rate")
    row = ([preset, "%d" % qos] + [cell(r[b]) for b in bs] +
           [ratio(smq, med(r[b], "delivered_rate")) for b in others] +
           [lat(r[b]) for b in bs] + [errs(r[b]) for b in bs] +
           [slash(cpu(med(r[b], "cpu_loadgen_pct")) for b in bs),
            slash(cpu(med(r[b], "cpu_broker_pct")) for b in bs)])
    print("| " + " | ".join(row) + " |")

conn = [k for k in runs if k[0] == "connections"]
if conn:
    print("\nIdle connections (keepalive 60), median of %d: connect rate, and the broker's "
          "resident memory growth divided by the connections (a fresh broker each run).\n" % n)
    print("| broker | clients | connect rate (conn/s) | bytes per connection | loadgen CPU % |")
    print("|---|---|---|---|---|")
    vals = {}
    for b in brokers("connections"):
        rs = get("connections", b, shards_of(b), "connections", 0)
        vals[b] = (med(rs, "connect_rate"), med(rs, "bytes_per_conn"))
        clients = med(rs, "clients")
        print("| %s | %s | %s | %s | %s |" % (
            b, "%d" % clients if clients else "-", rate(vals[b][0]),
            "failed" if vals[b][1] is None else "%.0f" % vals[b][1],
            cpu(med(rs, "cpu_loadgen_pct"))))
    smq = vals.get("shardmq", (None, None))
    for b in vals:
        if b != "shardmq":
            print("| shardmq / %s | | %s | %s | |" % (
                b, ratio(smq[0], vals[b][0]), ratio(smq[1], vals[b][1])))

shards = sorted({k[2] for k in runs if k[0] == "scale"} | {ncpu})
scale_rows = [(p, q) for p, q, _ in order("scale")]
if scale_rows:
    print("\nshardmq scaling: delivered msgs/s (median) by shard count; the %d-shard column "
          "is the throughput table's. The load generator shares the same %d cores.\n"
          % (ncpu, ncpu))
    print("| preset | QoS | " + " | ".join("%d shard%s" % (s, "" if s == 1 else "s")
                                          for s in shards) + " | %d vs 1 |" % ncpu)
    print("|---|---|" + "---|" * (len(shards) + 1))
    for p, q in scale_rows:
        cells = []
        for s in shards:
            rs = get("main", "shardmq", s, p, q) if s == ncpu else get("scale", "shardmq", s, p, q)
            cells.append(rate(med(rs, "delivered_rate")) if ok(rs) else "failed")
        one = get("scale", "shardmq", 1, p, q)
        top = get("main", "shardmq", ncpu, p, q)
        print("| %s | %d | %s | %s |" % (p, q, " | ".join(cells),
              ratio(med(top, "delivered_rate"), med(one, "delivered_rate"))))

lat_rows = order("latency")
if lat_rows:
    print("\nLatency at a fixed publish rate (1to1: 5,000 msgs/s; fanout: 500 msgs/s to 20 "
          "subscribers = 10,000 deliveries/s), median of %d, in ms.\n" % n)
    bs = brokers("latency")
    others = [b for b in bs if b != "shardmq"]
    cols = (["preset", "QoS", "delivered msgs/s (%s)" % short(bs)] +
            ["%s p50 / p99 / p99.9" % b for b in bs] +
            ["p99 ratio (smq / %s)" % SHORT[b] for b in others] +
            ["lost / dup / reord (%s)" % "; ".join(SHORT[b] for b in bs)])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    pct = lambda rs: ("failed" if not ok(rs) else "%s / %s / %s" % (
        ms(med(rs, "lat_p50_us")), ms(med(rs, "lat_p99_us")), ms(med(rs, "lat_p999_us"))))
    for p, q, rt in lat_rows:
        r = {b: get("latency", b, shards_of(b), p, q, rt) for b in bs}
        smq = med(r.get("shardmq", []), "lat_p99_us")
        row = ([p, "%d" % q, slash(rate(med(r[b], "delivered_rate")) for b in bs)] +
               [pct(r[b]) for b in bs] +
               [ratio(smq, med(r[b], "lat_p99_us")) for b in others] +
               ["; ".join(errs(r[b]) for b in bs)])
        print("| " + " | ".join(row) + " |")
PYEOF
}

main "$@"
