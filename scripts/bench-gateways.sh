#!/usr/bin/env bash
# bench-gateways.sh — start or stop the two gateway processes that the load
# benchmarks in docs/benchmarks.md run against (see its "Method" section).
#
#   scripts/bench-gateways.sh start [GATEWAY_BINARY]   # prints URLS=, PIDS=, KEY=
#   scripts/bench-gateways.sh stop                     # kills them, deletes their Redis keys
#
# Extra gateway settings pass through the environment (e.g. GOGC=50,
# GATEWAY_EVENT_CONSUMERS=presence). State lives in $BENCH_DIR (/tmp/roomcast-bench).
set -euo pipefail

BENCH_DIR=${BENCH_DIR:-/tmp/roomcast-bench}
VHOST=${BENCH_VHOST:-g-bench}
PREFIX=${BENCH_PREFIX:-g-bench:}
NODES=${BENCH_NODES:-2}
SECRET=${BENCH_SECRET:-bench-secret-0123456789abcdef}

stop() {
	if [ -f "$BENCH_DIR/pids" ]; then
		for pid in $(cat "$BENCH_DIR/pids"); do kill "$pid" 2>/dev/null || true; done
		for pid in $(cat "$BENCH_DIR/pids"); do
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
		done
		rm -f "$BENCH_DIR/pids"
	fi
	# Session records and room logs the run left behind; never anything else.
	redis-cli --scan --pattern "${PREFIX}*" | xargs -r -n 500 redis-cli del >/dev/null
}

start() {
	local bin=${1:-}
	mkdir -p "$BENCH_DIR"
	stop
	if [ -z "$bin" ]; then
		bin="$BENCH_DIR/gateway"
		(cd "$(dirname "$0")/.." && go build -o "$bin" ./services/gateway)
	fi
	rabbitmqctl -q add_vhost "$VHOST" 2>/dev/null || true
	rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
	local urls="" pids=""
	for i in $(seq 0 $((NODES - 1))); do
		local log="$BENCH_DIR/gw$i.log"
		ROOMCAST_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$VHOST" \
		ROOMCAST_REDIS_URL=redis://127.0.0.1:6379/0 ROOMCAST_REDIS_PREFIX="$PREFIX" \
		ROOMCAST_KEYS="app1.k1:$SECRET" ROOMCAST_NODE_ID="gw-bench-$i" ROOMCAST_LOG_LEVEL=info \
		GATEWAY_ADDR=127.0.0.1:0 GATEWAY_IP_RATE=1000000 GATEWAY_IP_BURST=1000000 \
		GATEWAY_RATE=100000 GATEWAY_BURST=100000 GATEWAY_MAX_ROOMS=1000 \
		GATEWAY_EVENT_CONSUMERS=${GATEWAY_EVENT_CONSUMERS-} \
			"$bin" >"$log" 2>&1 &
		local pid=$!
		local addr=""
		for _ in $(seq 100); do
			addr=$(grep -o '"msg":"listening"[^}]*"addr":"[^"]*"' "$log" 2>/dev/null | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
			[ -n "$addr" ] && break
			kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
			sleep 0.1
		done
		[ -n "$addr" ] || { echo "gateway $i did not start; see $log" >&2; exit 1; }
		urls="${urls:+$urls,}ws://$addr/v1/connect"
		pids="${pids:+$pids,}$pid"
		echo "$pid" >>"$BENCH_DIR/pids"
	done
	echo "URLS=$urls"
	echo "PIDS=$pids"
	echo "KEY=app1.k1:$SECRET"
}

case "${1:-}" in
start) shift; start "$@" ;;
stop) stop ;;
*) echo "usage: $0 start [GATEWAY_BINARY] | stop" >&2; exit 2 ;;
esac
