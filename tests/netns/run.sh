#!/usr/bin/env bash
# The firewall proof: a clinician whose network passes only TCP 443 of the TURN host
# still gets into a visit, and the call runs through bedside-turn over TLS.
#
# Two network namespaces of this run only, joined by one veth pair, addresses in 10.231.7.0/24
# (used nowhere else):
#   server ns  10.231.7.1  TURN host: bedside-turn, TLS + plain TCP on :443, UDP + TCP on :3478
#              10.231.7.2  web/signaling: bedside serve, HTTP :8080
#              10.231.7.3  SFU media: UDP :50000 (bind address; the client may not reach it)
#   client ns  10.231.7.10 the hospital: nftables lets out only TCP to 10.231.7.1:443 and to
#              10.231.7.2:8080 (plus replies). The web/signaling port stands for the hospital's
#              web proxy, which passes HTTPS to the Bedside web server; the test is about media,
#              and media has no such proxy: it must take TURN/TLS on 443.
# The provider's Chromium runs in the client ns with the unchanged web client (no relay
# forcing: the firewall alone leaves TURN/TLS as the only way); the patient's Chromium runs in
# the server ns with a direct path. The script first shows, from the client ns before the
# firewall goes up, that TURN's 3478 (UDP STUN and TCP) answers, then that with the firewall
# only 443 and the web port do; then drives the call (call.mjs) and checks that it decoded
# video through a TLS relay, that bedside-turn relayed over TLS only, and that the firewall
# dropped the client's direct attempts to the SFU's media address.
#
# Needs root and network namespaces; without them it prints SKIP and exits 0. Installs
# nftables (Debian package) if `nft` is missing. Only sends traffic inside its namespaces.
# Environment: BEDSIDE_BIN, BEDSIDE_TURN_BIN (default target/debug/…, built if absent),
# CHROMIUM (default /usr/bin/chromium), KEEP_LOGS=1 keeps the temp dir with the logs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BEDSIDE_BIN=${BEDSIDE_BIN:-$TARGET/debug/bedside}
BEDSIDE_TURN_BIN=${BEDSIDE_TURN_BIN:-$TARGET/debug/bedside-turn}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

SRV=bedside-srv-$$
CLI=bedside-cli-$$
TURN_IP=10.231.7.1
WEB_IP=10.231.7.2
MEDIA_IP=10.231.7.3
CLIENT_IP=10.231.7.10
WEB_PORT=8080
MEDIA_PORT=50000

if [ "$(id -u)" != 0 ]; then
  echo "SKIP  netns: needs root (ip netns add)"; exit 0
fi
if ! ip netns add "$SRV" 2>/dev/null; then
  echo "SKIP  netns: ip netns add is not possible here (no network namespace support)"; exit 0
fi

START=$(date +%s)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local rc=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # Anything still running inside our own namespaces was started by this script (Chromium).
  for ns in "$CLI" "$SRV"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ "${KEEP_LOGS:-}" = 1 ] || [ "$rc" != 0 ]; then
    rm -f "$WORK/turn-secret" "$WORK/token-secret" "$WORK/tls/key.pem"
    echo "logs in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL  netns: $*"; exit 1; }
pass() { echo "PASS  netns: $*"; }

ip netns add "$CLI"

if ! command -v nft >/dev/null 2>&1; then
  echo "installing nftables"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables >/dev/null
fi
for b in "$BEDSIDE_BIN" "$BEDSIDE_TURN_BIN"; do
  [ -x "$b" ] || (cd "$ROOT" && cargo build -q -p bedside -p bedside-turn)
done
[ -d "$ROOT/tests/e2e/node_modules/playwright-core" ] ||
  (cd "$ROOT/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error)

# --- network: one veth pair created directly inside the two namespaces -----------------------
ip -n "$SRV" link add v-srv type veth peer name v-cli netns "$CLI"
for ns in "$SRV" "$CLI"; do
  ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
done
ip -n "$SRV" addr add "$TURN_IP/24" dev v-srv
ip -n "$SRV" addr add "$WEB_IP/24" dev v-srv
ip -n "$SRV" addr add "$MEDIA_IP/24" dev v-srv
ip -n "$CLI" addr add "$CLIENT_IP/24" dev v-cli
ip -n "$SRV" link set v-srv up
ip -n "$CLI" link set v-cli up

# --- servers in the server namespace -----------------------------------------------------------
mkdir -p "$WORK/tls" "$WORK/home" "$WORK/tmp"  # TMPDIR of the browsers: removed with $WORK
head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > "$WORK/turn-secret"; echo >> "$WORK/turn-secret"
head -c 48 /dev/urandom | base64 | tr -d '/+=\n' > "$WORK/token-secret"; echo >> "$WORK/token-secret"
chmod 600 "$WORK/turn-secret" "$WORK/token-secret"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=turn.bedside.test -addext "subjectAltName=DNS:turn.bedside.test,IP:$TURN_IP" \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" >/dev/null 2>&1

cat > "$WORK/bedside.toml" <<EOF
[http]
listen = "$WEB_IP:$WEB_PORT"
[admin]
listen = "127.0.0.1:9090"
[media]
bind = "$MEDIA_IP:$MEDIA_PORT"
[tokens]
issuer = "netns-scheduler"
hs256_secret_file = "$WORK/token-secret"
[log]
format = "json"
[audit]
path = "$WORK/audit.jsonl"
[turn]
urls = [
  "turn:$TURN_IP:3478?transport=udp",
  "turn:$TURN_IP:3478?transport=tcp",
  "turns:$TURN_IP:443?transport=tcp",
]
secret_file = "$WORK/turn-secret"
EOF

BEDSIDE_TURN_LOG=info ip netns exec "$SRV" "$BEDSIDE_TURN_BIN" \
  --listen-udp "$TURN_IP:3478" --listen-tcp "$TURN_IP:3478" \
  --listen-tls "$TURN_IP:443" --tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem" \
  --secret-file "$WORK/turn-secret" --realm bedside.test --relay-ipv4 "$TURN_IP" \
  --allow-peer "$MEDIA_IP/32" --metrics-listen 127.0.0.1:9641 --udp-workers 1 \
  >"$WORK/bedside-turn.log" 2>&1 &
PIDS+=($!)
SERVERS=($!)
BEDSIDE_LOG=info ip netns exec "$SRV" "$BEDSIDE_BIN" serve --config "$WORK/bedside.toml" \
  >"$WORK/bedside.log" 2>&1 &
PIDS+=($!)
SERVERS+=($!)

in_srv() { ip netns exec "$SRV" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }
up=0
for _ in $(seq 100); do
  if in_srv curl -sf -o /dev/null http://127.0.0.1:9641/metrics &&
     in_srv curl -sf -o /dev/null "http://$WEB_IP:$WEB_PORT/readyz"; then up=1; break; fi
  for p in "${SERVERS[@]}"; do kill -0 "$p" 2>/dev/null || fail "a server exited at start (logs in $WORK)"; done
  sleep 0.2
done
[ "$up" = 1 ] || fail "servers did not come up"

# --- probes: what the client namespace can reach ------------------------------------------------
# probe KIND HOST PORT -> exit 0 if reachable: 'stun' = a UDP STUN Binding answered,
# 'tcp' = a TCP connection accepted. 2 s per try.
probe() {
  in_cli python3 - "$@" <<'PY'
import os, socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "stun":
        tid = os.urandom(12)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
        s.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + tid, (host, port))
        data = s.recv(2048)
        sys.exit(0 if data[:2] == b"\x01\x01" and data[8:20] == tid else 1)
    socket.create_connection((host, port), timeout=2).close()
    sys.exit(0)
except OSError:
    sys.exit(1)
PY
}
# Before the firewall: the same probes from the same namespace get through (control).
probe stun "$TURN_IP" 3478 || fail "control: no STUN answer on UDP $TURN_IP:3478 before the firewall"
probe tcp "$TURN_IP" 3478 || fail "control: TCP $TURN_IP:3478 refused before the firewall"
pass "without the firewall the client reaches TURN on UDP and TCP 3478"

# The hospital firewall, in the client namespace: out only to TURN/TLS 443 and the web port.
in_cli nft -f - <<EOF
table inet hospital {
  counter to_media {}
  counter dropped {}
  chain output {
    type filter hook output priority 0; policy drop;
    oif "lo" accept
    ct state established,related accept
    ip daddr $TURN_IP tcp dport 443 accept
    ip daddr $WEB_IP tcp dport $WEB_PORT accept
    ip daddr $MEDIA_IP counter name to_media drop
    counter name dropped drop
  }
  chain input {
    type filter hook input priority 0; policy drop;
    iif "lo" accept
    ct state established,related accept
  }
}
EOF

if probe stun "$TURN_IP" 3478; then fail "UDP $TURN_IP:3478 answers through the firewall"; fi
if probe tcp "$TURN_IP" 3478; then fail "TCP $TURN_IP:3478 connects through the firewall"; fi
if probe stun "$MEDIA_IP" "$MEDIA_PORT"; then fail "the SFU's media port answers through the firewall"; fi
probe tcp "$TURN_IP" 443 || fail "TCP $TURN_IP:443 (TURN/TLS) blocked"
probe tcp "$WEB_IP" "$WEB_PORT" || fail "the web port is blocked"
in_srv python3 - "$TURN_IP" <<'PY' || fail "TURN's UDP 3478 stopped answering inside the server namespace"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
tid = os.urandom(12)
s.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + tid, (sys.argv[1], 3478))
sys.exit(0 if s.recv(2048)[8:20] == tid else 1)
PY
pass "with the firewall the client reaches only TCP 443 of the TURN host and the web port (3478 UDP/TCP and the SFU's media port dropped; TURN still answers on 3478 inside the server namespace)"
media_before=$(in_cli nft list counter inet hospital to_media | awk '/packets/ { print $2 }')

# --- the call ----------------------------------------------------------------------------------
for ns in "$CLI" "$SRV"; do
  printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$ns" "$CHROMIUM" > "$WORK/chromium-$ns"
  chmod +x "$WORK/chromium-$ns"
done
export BEDSIDE_BIN
# In the background and waited for, so that an interrupt reaches the cleanup at once.
NETNS_WEB="http://$WEB_IP:$WEB_PORT" NETNS_CONFIG="$WORK/bedside.toml" \
  NETNS_CHROMIUM_CLIENT="$WORK/chromium-$CLI" NETNS_CHROMIUM_SERVER="$WORK/chromium-$SRV" \
  NETNS_TURN_URL="turns:$TURN_IP:443?transport=tcp" NETNS_HOSTS="$WEB_IP $TURN_IP" \
  HOME="$WORK/home" TMPDIR="$WORK/tmp" timeout 300 node "$ROOT/tests/netns/call.mjs" &
CALL=$!
PIDS+=("$CALL")
if ! wait "$CALL"; then
  in_srv curl -sf http://127.0.0.1:9641/metrics | grep -E '^bedside_turn_(allocations|connections|relayed_packets|auth|policy|quota)' | grep -v ' 0$' || true
  fail "the call through TURN/TLS did not work (logs in $WORK)"
fi

# --- what the servers and the firewall saw -------------------------------------------------------
metrics=$(in_srv curl -sf http://127.0.0.1:9641/metrics)
relayed() { # transport direction -> packets
  echo "$metrics" | awk -v t="transport=\"$1\"" -v d="direction=\"$2\"" \
    '/^bedside_turn_relayed_packets_total/ && index($0, t) && index($0, d) { s += $NF } END { print s + 0 }'
}
tls_up=$(relayed tls to_peer); tls_down=$(relayed tls to_client)
other=$(( $(relayed udp to_peer) + $(relayed udp to_client) + $(relayed tcp to_peer) + $(relayed tcp to_client) ))
[ "$tls_up" -gt 100 ] && [ "$tls_down" -gt 100 ] ||
  fail "bedside-turn relayed too little over TLS (to SFU $tls_up, to client $tls_down packets)"
# (UDP/TCP relays are used only by the patient's browser in the server namespace, which
# gathers relay candidates too; its media takes the direct path.)
pass "bedside-turn relayed the provider's call over TLS ($tls_up packets to the SFU, $tls_down to the client; $other UDP/TCP packets from the patient's side)"
media_after=$(in_cli nft list counter inet hospital to_media | awk '/packets/ { print $2 }')
dropped=$(in_cli nft list counter inet hospital dropped | awk '/packets/ { print $2 }')
[ "$media_after" -gt "$media_before" ] ||
  fail "the client's browser never tried the direct path to the SFU (to_media counter $media_after)"
pass "the firewall dropped $((media_after - media_before)) packets from the client's browser to the SFU's media address, and $dropped other packets"
if grep -q "$(head -1 "$WORK/turn-secret")" "$WORK/bedside.log" "$WORK/bedside-turn.log"; then
  fail "the TURN secret appears in a server log"
fi
for p in "${SERVERS[@]}"; do kill -0 "$p" 2>/dev/null || fail "a server exited during the run"; done
echo "netns: OK ($(( $(date +%s) - START )) s)"
