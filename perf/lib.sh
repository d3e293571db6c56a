# perf/lib.sh - what the perf/*.sh benchmark scripts share; sourced, never run:
#	. "$(dirname "$0")/lib.sh"
#
# Picking free loopback ports, starting a broker in the background and waiting
# until it listens, stopping it, the median of numbers, and the machine facts
# every result table is printed with. One copy, so that a fix (a port range, a
# longer wait) reaches every script. Each script keeps what is its own: the
# broker command lines, the configs, the load generator runs, the tables.
#
# Brokers are known by a NAME the script chooses ("shardmq", "off", ...):
#   PID[NAME]   its process, set by start_cmd, cleared by stop_broker
#   PORT[NAME]  the port(s) the script gave it (any keys: "shardmq.plain" too);
#               free_port never hands out one of them again
# Messages go to stderr, prefixed with the script's name ("bench_tls: ...").
# BROKER_WAIT is how long start_cmd and stop_broker wait, in tenths of a second
# (50; a script may raise it after sourcing this file).

declare -A PID PORT
ME=$(basename "$0" .sh)
BROKER_WAIT=50
LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=/usr/bin/python3
[ -x $PYTHON ] || PYTHON=python3

say() { printf '%s\n' "$*" >&2; }

# A TCP port no socket uses and PORT does not hold, below the ephemeral range:
# client sockets (loadgen's 10,000 among them) take their local ports from
# that range, and a broker cannot bind a port a connection holds.
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[ "${lo:-0}" -gt 15000 ] || lo=32768
	for _ in $(seq 100); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! ss -Htan "sport = :$p" 2>/dev/null | grep -q . &&
		   [[ " ${PORT[*]} " != *" $p "* ]]; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

listening() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# start_cmd NAME LOG PORT... -- CMD [ARG...]: stop NAME if it runs, start CMD
# in the background (stdout and stderr appended to LOG), PID[NAME] its pid.
# 0 once every PORT listens; 1 if CMD exits first or BROKER_WAIT runs out,
# saying so with the tail of LOG, and CMD stopped.
start_cmd() {
	local name=$1 log=$2 ports=() p up
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		ports+=("$1")
		shift
	done
	shift
	stop_broker "$name"
	"$@" >>"$log" 2>&1 &
	PID[$name]=$!
	for _ in $(seq "$BROKER_WAIT"); do
		up=1
		for p in "${ports[@]}"; do
			listening "$p" || up=0
		done
		[ $up = 1 ] && return 0
		kill -0 "${PID[$name]}" 2>/dev/null || break
		sleep 0.1
	done
	say "$ME: $name did not start; its log says:"
	tail -5 "$log" >&2
	stop_broker "$name"
	return 1
}

# stop_broker NAME: SIGTERM, up to BROKER_WAIT for it to exit, then SIGKILL
# (said on stderr: a broker should exit on SIGTERM). 0 if NAME was not running.
stop_broker() {
	local pid=${PID[$1]:-}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq "$BROKER_WAIT"); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null && say "$ME: $1 needed SIGKILL"
	wait "$pid" 2>/dev/null
	PID[$1]=
}

alive() { [ -n "${PID[$1]:-}" ] && kill -0 "${PID[$1]}" 2>/dev/null; }

# The median of the numbers on stdin, one a line (the lower middle of an even
# count: always one of the measured values); "-" when there are none.
median() { sort -g | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }

# Machine facts for a result table's header.
cpu_model() {
	local cpu
	cpu=$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
	echo "${cpu:-unknown CPU}"
}
# "CPU model, N cores (online), kernel K"
machine_facts() {
	echo "$(cpu_model), $(getconf _NPROCESSORS_ONLN) cores (online), kernel $(uname -r)"
}
load_average() { cut -d' ' -f1-3 /proc/loadavg; }
# The commit measured: short hash of the tree perf/ is in, or "(no git)".
shardmq_rev() { git -C "$LIB_DIR/.." rev-parse --short HEAD 2>/dev/null || echo '(no git)'; }
