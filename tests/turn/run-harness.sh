#!/usr/bin/env bash
# Black-box TURN checks against bedside-turn with coturn's turnutils_uclient
# (../shared/turn-harness/harness.sh, relative to the repository root).
#
# Starts two throwaway instances on free loopback ports:
#   main:   UDP + TCP on one port, TLS and plain TCP on a shared port, IPv4 and IPv6 (::1)
#           relays, loopback peers allowed (--allow-peer 127.0.0.0/8) so relaying can be tested;
#   strict: the production peer policy, for the harness's STRICT_* checks.
# Runs the harness (TCP checks go to the shared TLS/TCP port to prove first-byte detection),
# one extra uclient run over the plain TCP port, then checks on each /metrics that allocations
# and connections return to zero, and stops both servers. Exits non-zero on any FAIL.
#
# Environment: BEDSIDE_TURN_BIN (default: build and use $CARGO_TARGET_DIR/debug/bedside-turn),
# HARNESS (default ../shared/turn-harness/harness.sh), LOG_DIR (default: a temp dir).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/turn-harness/harness.sh}
[ -x "$HARNESS" ] || [ -f "$HARNESS" ] || { echo "harness not found at $HARNESS"; exit 2; }
if [ -z "${BEDSIDE_TURN_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q -p bedside-turn)
  BEDSIDE_TURN_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/bedside-turn
fi
WORK=$(mktemp -d)
LOG_DIR=${LOG_DIR:-$WORK/logs}
mkdir -p "$LOG_DIR"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK/tls" "$WORK/secret"
}
trap cleanup EXIT

# Free ports: bind to port 0 (TCP and UDP together for the ports used by both).
read -r PORT TLS_PORT STRICT_PORT MET1 MET2 PEER_PORT < <(python3 - <<'PY'
import socket
out = []
while len(out) < 6:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u6.bind(("::1", p))
        # the harness's peer also uses PEER_PORT+1 for RTCP
        u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u2.bind(("127.0.0.1", p + 1))
        u.close(); u6.close(); u2.close()
        out.append(p)
    except OSError:
        pass
    t.close()
print(*out)
PY
)

SECRET=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$SECRET" > "$WORK/secret"
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1

# Short lifetimes so UDP allocations the clients never delete are gone soon after the run.
COMMON=(--secret-file "$WORK/secret" --realm bedside.test --max-allocations-per-user 200
        --allocation-lifetime-default 40 --allocation-lifetime-max 40 --tcp-idle-timeout 10)
BEDSIDE_TURN_LOG=warn "$BEDSIDE_TURN_BIN" "${COMMON[@]}" \
  --listen-udp "127.0.0.1:$PORT" --listen-udp "[::1]:$PORT" --listen-tcp "127.0.0.1:$PORT" \
  --listen-tls "127.0.0.1:$TLS_PORT" --tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem" \
  --allow-peer 127.0.0.0/8 --metrics-listen "127.0.0.1:$MET1" >"$LOG_DIR/server-main.log" 2>&1 &
PIDS+=($!)
BEDSIDE_TURN_LOG=warn "$BEDSIDE_TURN_BIN" "${COMMON[@]}" \
  --listen-udp "127.0.0.1:$STRICT_PORT" --listen-udp "[::1]:$STRICT_PORT" --listen-tcp "127.0.0.1:$STRICT_PORT" \
  --metrics-listen "127.0.0.1:$MET2" >"$LOG_DIR/server-strict.log" 2>&1 &
PIDS+=($!)

# One echo peer for the harness and the extra checks (the harness reuses a bound PEER_PORT).
turnutils_peer -L 127.0.0.1 -p "$PEER_PORT" >"$LOG_DIR/peer.log" 2>&1 &
PIDS+=($!)

metric_sum() { # port regexp -> sum of matching samples, or "down"
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v re="$2" '$0 ~ re { s += $NF } END { print s + 0 }' || echo down
}
for _ in $(seq 50); do
  [ "$(metric_sum "$MET1" '^bedside_turn_allocations')" != down ] && [ "$(metric_sum "$MET2" '^bedside_turn_allocations')" != down ] && break
  sleep 0.1
done

FAIL=0
export MSGS=${MSGS:-30} LOAD_CLIENTS=${LOAD_CLIENTS:-10} LOAD_MSGS=${LOAD_MSGS:-300} LOAD_INTERVAL_MS=${LOAD_INTERVAL_MS:-20}
export PEER_PORT LOG_DIR STRICT_HOST=127.0.0.1 STRICT_PORT
# Main instance allows 127/8, so its IPv6 list leaves out loopback spellings; strict covers them.
export FORBIDDEN_PEERS_V6="${FORBIDDEN_PEERS_V6-:: ::ffff:10.0.0.1 ::10.0.0.1 64:ff9b::a9fe:a9fe 2002:c0a8:1::1 fe80::1 fd00::1 ff02::1 2001:db8::1}"
export STRICT_PEERS_V6="${STRICT_PEERS_V6-::1 ::ffff:127.0.0.1 ::127.0.0.1 64:ff9b::7f00:1 2002:7f00:1::1 ::}"
bash "$HARNESS" 127.0.0.1 "$PORT" "$TLS_PORT" "$TLS_PORT" "$SECRET" | tee "$LOG_DIR/harness.out" || FAIL=1

# Plain TCP on the UDP/TCP port (the harness's TCP checks used the shared TLS port).
if timeout 60 turnutils_uclient -t -c -W "$SECRET" -u harness -e 127.0.0.1 -r "$PEER_PORT" -n 20 -l 170 \
     -p "$PORT" 127.0.0.1 >"$LOG_DIR/tcp_plain_port.log" 2>&1 \
   && grep -q 'Total lost packets 0 ' "$LOG_DIR/tcp_plain_port.log"; then
  echo "PASS  tcp_plain_port               relay over plain TCP on the UDP/TCP port"
else
  echo "FAIL  tcp_plain_port               [log $LOG_DIR/tcp_plain_port.log]"; FAIL=1
fi

# TLS garbage and a slow client that never finishes a message: dropped, server keeps serving.
python3 - "$TLS_PORT" <<'PY' || true
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello" * 3)
try:
    s.recv(100)
except OSError:
    pass
t = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
t.sendall(b"\x00\x03\x00\x08")  # a STUN header that never completes
PY

# Everything returns to zero: allocations expire (UDP) or are freed with their connection.
zero=0
for _ in $(seq 90); do
  a=$(metric_sum "$MET1" '^bedside_turn_(allocations|connections)')
  b=$(metric_sum "$MET2" '^bedside_turn_(allocations|connections)')
  if [ "$a" = 0 ] && [ "$b" = 0 ]; then zero=1; break; fi
  sleep 1
done
if [ "$zero" = 1 ]; then
  echo "PASS  back_to_zero                 allocations and connections at 0 on both instances"
else
  echo "FAIL  back_to_zero                 main: $a, strict: $b live allocations+connections"; FAIL=1
fi
for p in "${PIDS[@]}"; do
  kill -0 "$p" 2>/dev/null || { echo "FAIL  server_alive                 a server exited during the run"; FAIL=1; }
done
[ "$FAIL" = 0 ] && echo "run-harness: OK" || echo "run-harness: FAILED (logs in $LOG_DIR)"
exit "$FAIL"
