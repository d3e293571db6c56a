#!/usr/bin/env bash
# perf/bench_subs.sh - a subscribe burst against shardmq and mosquitto, side by side.
#
# For each filter count, starts a fresh broker (shardmq at each shard count,
# then the Debian mosquitto) on a free loopback port, memory only, and runs
# $BUILD/perf/bench_subs once against it: one client subscribes to N filters
# in SUBSCRIBE packets of K, while a second client connects and disconnects
# every 2 ms (see perf/bench_subs.c). Prints a Markdown table of the median
# of BENCH_REPS runs: burst time, filters/s, and the CONNACK latency the
# second client saw (median and worst) while the burst was applied.
#
# Knobs (environment): BUILD (build), BENCH_SUBS_N ("20000 100000"),
# BENCH_SUBS_K (1000), BENCH_SUBS_SHARDS ("1 4"), BENCH_REPS (3),
# SHARDMQ_BIN, MOSQUITTO_BIN.
# Quick look: BENCH_REPS=1 BENCH_SUBS_N=100000 bash perf/bench_subs.sh
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

BUILD=${BUILD:-build}
NS=${BENCH_SUBS_N:-"20000 100000"}
K=${BENCH_SUBS_K:-1000}
SHARDS=${BENCH_SUBS_SHARDS:-"1 4"}
REPS=${BENCH_REPS:-3}
BENCH=$BUILD/perf/bench_subs
SHARDMQ=${SHARDMQ_BIN:-$BUILD/shardmq}
MOSQUITTO=${MOSQUITTO_BIN:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}
TMP=$(mktemp -d /tmp/shardmq-bench-subs.XXXXXX)
trap 'stop_broker shardmq; stop_broker mosquitto; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

[ -x "$BENCH" ] || { say "bench_subs: $BENCH is missing: make BUILD=$BUILD $BENCH"; exit 1; }

# start_broker NAME SHARDS PORT: 0 once it listens. The port comes from
# free_port (lib.sh): below the ephemeral range, where the prober's own
# connections would otherwise collide with the next broker's listener.
start_broker() {
	local name=$1 shards=$2 port=$3 cmd
	if [ "$name" = shardmq ]; then
		printf 'log_level warning\nsys_interval 0\n' > "$TMP/s.conf"
		cmd=("$SHARDMQ" -c "$TMP/s.conf" -p "$port" --bind 127.0.0.1 --shards "$shards")
	else
		printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" \
			> "$TMP/m.conf"
		cmd=("$MOSQUITTO" -c "$TMP/m.conf")
	fi
	start_cmd "$name" "$TMP/broker.log" "$port" -- "${cmd[@]}"
}

# field JSON KEY
field() { sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" <<<"$1"; }

# one NAME SHARDS N: a table row from the median of REPS runs, each on a fresh broker
one() {
	local name=$1 shards=$2 n=$3 port out r ms=() rate=() p50=() worst=()
	for r in $(seq "$REPS"); do
		port=$(free_port) && start_broker "$name" "$shards" "$port" || return
		out=$("$BENCH" -p "$port" -n "$n" -k "$K") || say "bench_subs: $name run failed: $out"
		stop_broker "$name"
		ms+=("$(field "$out" burst_ms)")
		rate+=("$(field "$out" filters_per_s)")
		p50+=("$(field "$out" connack_p50_ms)")
		worst+=("$(field "$out" connack_max_ms)")
	done
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" \
		"$([ "$name" = shardmq ] && echo "$shards" || echo 1)" "$n" \
		"$(printf '%s\n' "${ms[@]}" | median)" \
		"$(printf '%s\n' "${rate[@]}" | median)" \
		"$(printf '%s\n' "${p50[@]}" | median)" \
		"$(printf '%s\n' "${worst[@]}" | median)"
}

echo "Subscribe burst: $K filters per SUBSCRIBE, median of $REPS; CONNACK = another client"
echo "connecting every 2 ms meanwhile ($(nproc) CPUs, $(uname -r))"
echo
echo "| broker | shards | filters | burst ms | filters/s | CONNACK p50 ms | CONNACK max ms |"
echo "|---|---|---|---|---|---|---|"
for n in $NS; do
	for s in $SHARDS; do
		one shardmq "$s" "$n"
	done
	[ -x "$MOSQUITTO" ] && one mosquitto 1 "$n"
done
