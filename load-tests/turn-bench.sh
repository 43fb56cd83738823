#!/usr/bin/env bash
# CPU per relayed packet: bedside-turn (release build) versus Debian's coturn (`turnserver`),
# both started in this run on loopback and driven one after the other by the same
# turnutils_uclient load through the same turnutils_peer echo peer.
#
# CPU = utime+stime of the server process from /proc/PID/stat, sampled just before and after
# the load. Relayed packets = client->peer + peer->client messages as counted by uclient
# (tot_send_msgs + tot_recv_msgs), the same measure for both servers.
#
# Environment: CLIENTS [20] MSGS [3000] LEN [170] INTERVAL_MS [5] ROUNDS [2]
#              BEDSIDE_TURN_BIN (default: cargo build --release, $CARGO_TARGET_DIR/release/...)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENTS=${CLIENTS:-20}; MSGS=${MSGS:-3000}; LEN=${LEN:-170}; INTERVAL_MS=${INTERVAL_MS:-5}; ROUNDS=${ROUNDS:-2}
for b in turnserver turnutils_uclient turnutils_peer python3; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install coturn python3)"; exit 2; }
done
if [ -z "${BEDSIDE_TURN_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q --release -p bedside-turn)
  BEDSIDE_TURN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/bedside-turn
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
read -r P_OURS P_COTURN P_PEER < <(python3 -c '
import socket
out=[]
while len(out)<3:
    s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); out.append(s.getsockname()[1]); s.close()
print(*out)')
SECRET=bench-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$SECRET" >"$WORK/secret"

turnutils_peer -L 127.0.0.1 -p "$P_PEER" >"$WORK/peer.log" 2>&1 & PIDS+=($!)
BEDSIDE_TURN_LOG=warn "$BEDSIDE_TURN_BIN" --listen-udp "127.0.0.1:$P_OURS" --listen-tcp "127.0.0.1:$P_OURS" \
  --secret-file "$WORK/secret" --allow-peer 127.0.0.0/8 --max-allocations-per-user 1000 \
  --relay-port-min 20000 --relay-port-max 29999 >"$WORK/ours.log" 2>&1 &
OURS=$!; PIDS+=($OURS)
turnserver -n --listening-ip 127.0.0.1 --listening-port "$P_COTURN" --relay-ip 127.0.0.1 \
  --use-auth-secret --static-auth-secret "$SECRET" --realm bench --no-tls --no-dtls --no-cli \
  --allow-loopback-peers --min-port 30000 --max-port 39999 --no-stdout-log \
  --log-file "$WORK/coturn.log" --pidfile "$WORK/coturn.pid" >/dev/null 2>&1 &
COTURN=$!; PIDS+=($COTURN)
sleep 1
kill -0 "$OURS" && kill -0 "$COTURN" || { echo "a server did not start"; cat "$WORK"/*.log; exit 1; }

TCK=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; } # utime+stime in clock ticks (comm has no spaces)

bench() { # name pid port -> prints "cpu_s packets"
  local c0 c1 log="$WORK/$1.uclient.log"
  c0=$(cpu "$2")
  turnutils_uclient -c -m "$CLIENTS" -n "$MSGS" -l "$LEN" -z "$INTERVAL_MS" -e 127.0.0.1 -r "$P_PEER" \
    -W "$SECRET" -u bench -p "$3" 127.0.0.1 >"$log" 2>&1 || true
  c1=$(cpu "$2")
  local sent recv loss
  sent=$(grep -oE 'tot_send_msgs=[0-9]+' "$log" | tail -1 | cut -d= -f2)
  recv=$(grep -oE 'tot_recv_msgs=[0-9]+' "$log" | tail -1 | cut -d= -f2)
  loss=$(grep -oE 'Total lost packets [0-9]+ \([0-9.]+%\)' "$log" | tail -1 | sed -E 's/.*\(([0-9.]+)%\)/\1/')
  echo "$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN{printf "%.3f", (b-a)/t}') $(( ${sent:-0} + ${recv:-0} )) ${loss:-?}"
}

echo "load: $CLIENTS clients x $MSGS msgs x $LEN B every ${INTERVAL_MS} ms, channels, UDP; $ROUNDS rounds; $(nproc) CPUs"
T_OURS_CPU=0; T_OURS_PKT=0; T_CO_CPU=0; T_CO_PKT=0
for r in $(seq "$ROUNDS"); do
  read -r oc op ol < <(bench ours "$OURS" "$P_OURS")
  read -r cc cp cl < <(bench coturn "$COTURN" "$P_COTURN")
  printf 'round %d  bedside-turn: %6.3f CPU-s %8d pkts loss %s%%   coturn: %6.3f CPU-s %8d pkts loss %s%%\n' "$r" "$oc" "$op" "$ol" "$cc" "$cp" "$cl"
  T_OURS_CPU=$(awk -v a="$T_OURS_CPU" -v b="$oc" 'BEGIN{print a+b}'); T_OURS_PKT=$((T_OURS_PKT + op))
  T_CO_CPU=$(awk -v a="$T_CO_CPU" -v b="$cc" 'BEGIN{print a+b}'); T_CO_PKT=$((T_CO_PKT + cp))
done
awk -v oc="$T_OURS_CPU" -v op="$T_OURS_PKT" -v cc="$T_CO_CPU" -v cp="$T_CO_PKT" 'BEGIN{
  if (op == 0 || cp == 0) { print "no packets relayed: benchmark invalid"; exit 1 }
  o = oc / op * 1e6; c = cc / cp * 1e6
  printf "bedside-turn: %.3f CPU-seconds per million relayed packets (%d packets)\n", o, op
  printf "coturn:       %.3f CPU-seconds per million relayed packets (%d packets)\n", c, cp
  if (c > 0) printf "ratio bedside-turn/coturn: %.2f\n", o / c
}'
