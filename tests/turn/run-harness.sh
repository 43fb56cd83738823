#!/usr/bin/env bash
# Black-box TURN checks against bedside-turn: tests/turn/harness.py (coturn's turnutils_uclient,
# turnutils_stunclient and turnutils_peer, plus its own small STUN/TURN client for the peer
# policy), then checks around it. Needs python3, openssl, curl and the Debian package coturn.
#
# Starts two throwaway instances on free loopback ports:
#   main:   UDP + TCP on one port, TLS and plain TCP on a shared port, IPv4 and IPv6 (::1)
#           relays, loopback peers allowed (--allow-peer 127.0.0.0/8) so relaying can be tested;
#   strict: the production peer policy, for the harness's strict_* checks (loopback refused).
# Runs the harness against both (plain TCP on the UDP/TCP port and on the shared TLS/TCP port,
# the latter proving first-byte detection; TLS verified against the throwaway certificate),
# sends TLS garbage and a never-finished STUN header, then checks on each /metrics that
# allocations and connections return to zero and that both servers are still running.
# Exits non-zero on any FAIL.
#
# Environment: BEDSIDE_TURN_BIN (default: build and use $CARGO_TARGET_DIR/debug/bedside-turn),
# LOG_DIR (default: a temp dir; raw logs of every check and both servers are kept there),
# MSGS, LOAD_CLIENTS, LOAD_MSGS, LOAD_INTERVAL_MS (passed to the harness), and for proving
# that checks can fail: MAIN_ARGS / STRICT_ARGS (extra bedside-turn flags for each instance)
# and HARNESS_ARGS (extra harness flags). For example MAIN_ARGS="--allow-peer 10.0.0.0/8" must
# turn peer_policy_ipv4 and peer_policy_ipv6 red, and STRICT_ARGS="--allow-peer 127.0.0.0/8"
# the strict_* checks.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HARNESS=$ROOT/tests/turn/harness.py
# split on blanks without glob expansion (HARNESS_ARGS may hold "--only peer_policy_*")
read -ra MAIN_EXTRA <<<"${MAIN_ARGS:-}"
read -ra STRICT_EXTRA <<<"${STRICT_ARGS:-}"
read -ra HARNESS_EXTRA <<<"${HARNESS_ARGS:-}"
for b in python3 openssl curl turnutils_peer turnutils_uclient turnutils_stunclient; do
  command -v "$b" >/dev/null || { echo "missing $b (apt-get install python3 openssl curl coturn)"; exit 2; }
done
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
        # turnutils_peer also listens on PEER_PORT+1: the RTCP peer of the RTP/RTCP pair check
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
  --allow-peer 127.0.0.0/8 --metrics-listen "127.0.0.1:$MET1" "${MAIN_EXTRA[@]}" >"$LOG_DIR/server-main.log" 2>&1 &
PIDS+=($!)
BEDSIDE_TURN_LOG=warn "$BEDSIDE_TURN_BIN" "${COMMON[@]}" \
  --listen-udp "127.0.0.1:$STRICT_PORT" --listen-udp "[::1]:$STRICT_PORT" --listen-tcp "127.0.0.1:$STRICT_PORT" \
  --metrics-listen "127.0.0.1:$MET2" "${STRICT_EXTRA[@]}" >"$LOG_DIR/server-strict.log" 2>&1 &
PIDS+=($!)

# The echo peer that relayed messages go to (the harness does not start one itself).
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
NPASS=0
check() { # status name detail
  printf '%-4s  %-28s %s\n' "$1" "$2" "$3"
  if [ "$1" = PASS ]; then NPASS=$((NPASS + 1)); else FAIL=1; fi
}
# The main instance allows 127/8, so its IPv6 list leaves out the loopback spellings (they
# normalise to 127.0.0.1 there) and 127.0.0.1 serves as the address the probe must flag as
# accepted (probe_can_fail); the strict instance covers loopback.
python3 "$HARNESS" --host 127.0.0.1 --udp-port "$PORT" --tcp-port "$PORT" \
  --tls-port "$TLS_PORT" --tls-port-accepts-tcp --ca-file "$WORK/tls/cert.pem" \
  --secret-file "$WORK/secret" --peer-addr 127.0.0.1 --peer-port "$PEER_PORT" \
  --strict-host 127.0.0.1 --strict-port "$STRICT_PORT" --accepted-peer 127.0.0.1 \
  --forbidden-v4 "0.0.0.0 0.1.2.3 169.254.169.254 224.0.0.1 255.255.255.255 10.0.0.1 172.16.0.1 192.168.0.1 100.64.0.1" \
  --forbidden-v6 ":: ::ffff:10.0.0.1 ::10.0.0.1 64:ff9b::a9fe:a9fe 2002:c0a8:1::1 fe80::1 fd00::1 ff02::1 2001:db8::1" \
  --strict-v4 "127.0.0.1 127.0.0.2" \
  --strict-v6 "::1 ::ffff:127.0.0.1 ::127.0.0.1 64:ff9b::7f00:1 2002:7f00:1::1 ::" \
  --msgs "${MSGS:-30}" --load-clients "${LOAD_CLIENTS:-10}" --load-msgs "${LOAD_MSGS:-300}" \
  --load-interval-ms "${LOAD_INTERVAL_MS:-20}" --log-dir "$LOG_DIR" "${HARNESS_EXTRA[@]}" | tee "$LOG_DIR/harness.out" || FAIL=1

# TLS garbage and a slow client that never finishes a message: both are dropped (the second
# by --tcp-idle-timeout, seen in back_to_zero) and the TLS listener still completes a handshake.
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
if timeout 10 openssl s_client -connect "127.0.0.1:$TLS_PORT" -CAfile "$WORK/tls/cert.pem" \
     -verify_return_error </dev/null >"$LOG_DIR/tls_after_garbage.log" 2>&1 \
   && grep -q 'Verify return code: 0 ' "$LOG_DIR/tls_after_garbage.log"; then
  check PASS tls_after_garbage "verified TLS handshake after garbage on the TLS/TCP port"
else
  check FAIL tls_after_garbage "no verified TLS handshake [log $LOG_DIR/tls_after_garbage.log]"
fi

# Everything returns to zero: allocations expire (UDP) or are freed with their connection.
zero=0
for _ in $(seq 90); do
  a=$(metric_sum "$MET1" '^bedside_turn_(allocations|connections)')
  b=$(metric_sum "$MET2" '^bedside_turn_(allocations|connections)')
  if [ "$a" = 0 ] && [ "$b" = 0 ]; then zero=1; break; fi
  sleep 1
done
if [ "$zero" = 1 ]; then
  check PASS back_to_zero "allocations and connections at 0 on both instances"
else
  check FAIL back_to_zero "main: $a, strict: $b live allocations+connections"
fi
dead=0
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null || dead=$((dead + 1)); done
if [ "$dead" = 0 ]; then
  check PASS server_alive "both servers and the echo peer still running"
else
  check FAIL server_alive "$dead of the two servers and the echo peer exited during the run"
fi
if [ "$FAIL" = 0 ]; then
  echo "run-harness: OK (harness and $NPASS checks around it) in ${SECONDS}s"
else
  echo "run-harness: FAILED in ${SECONDS}s (logs in $LOG_DIR)"
fi
exit "$FAIL"
