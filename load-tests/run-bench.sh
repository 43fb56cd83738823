#!/usr/bin/env bash
# SFU forwarding cost: starts a release `bedside dev` on free loopback ports with a temporary
# state directory, drives it with `bedside-load --sweep` (N visits x M participants, each
# publishing audio at 50 packets/s and VP8 video, receiving everyone else in its visit), and
# writes load-tests/results/latest.{json,md,png} plus the server's /metrics after the run.
#
# The sweep stops after the first step whose loss passes STOP_LOSS. Server CPU comes from
# /proc/PID/stat (utime+stime, all threads, and the `bedside-media` thread alone).
#
# Environment: SWEEP [1x2,2x3,4x4,6x5,8x6,10x6,12x7,14x8] DURATION [10] WARMUP [2]
#              VIDEO_KBPS [300] VIDEO_FPS [30] STOP_LOSS [0.005] OUT [load-tests/results/latest]
#              BEDSIDE_BIN, BEDSIDE_LOAD_BIN (default: cargo build --release, target/release/...)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SWEEP=${SWEEP:-1x2,2x3,4x4,6x5,8x6,10x6,12x7,14x8}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}
VIDEO_KBPS=${VIDEO_KBPS:-300}; VIDEO_FPS=${VIDEO_FPS:-30}; STOP_LOSS=${STOP_LOSS:-0.005}
OUT=${OUT:-$ROOT/load-tests/results/latest}
if [ -z "${BEDSIDE_BIN:-}" ] || [ -z "${BEDSIDE_LOAD_BIN:-}" ]; then
  (cd "$ROOT" && cargo build -q --release -p bedside -p bedside-load)
  BEDSIDE_BIN=${BEDSIDE_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/bedside}
  BEDSIDE_LOAD_BIN=${BEDSIDE_LOAD_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/bedside-load}
fi
mkdir -p "$(dirname "$OUT")"
WORK=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
read -r P_HTTP P_ADMIN < <(python3 -c '
import socket
out=[]
socks=[]
for _ in range(2):
    s=socket.socket(); s.bind(("127.0.0.1",0)); out.append(s.getsockname()[1]); socks.append(s)
print(*out)')

BEDSIDE_LOG=${BEDSIDE_LOG:-warn} "$BEDSIDE_BIN" dev --listen "127.0.0.1:$P_HTTP" \
  --admin-listen "127.0.0.1:$P_ADMIN" --state-dir "$WORK/state" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$P_HTTP/healthz" >/dev/null 2>&1 && [ -s "$WORK/state/dev-token-key" ] && break
  kill -0 "$SERVER" 2>/dev/null || { echo "bedside dev did not start:"; cat "$WORK/server.log"; exit 1; }
  sleep 0.1
done
echo "bedside dev pid $SERVER on 127.0.0.1:$P_HTTP (RSS idle: $(awk '/VmRSS/{print $2, $3}' /proc/$SERVER/status))"
echo "$(awk '/VmRSS/{print $2}' /proc/$SERVER/status)" >"$OUT.idle-rss-kib"

"$BEDSIDE_LOAD_BIN" --server "http://127.0.0.1:$P_HTTP" --state-dir "$WORK/state" --pid "$SERVER" \
  --sweep "$SWEEP" --duration "$DURATION" --warmup "$WARMUP" --video-kbps "$VIDEO_KBPS" \
  --video-fps "$VIDEO_FPS" --stop-loss "$STOP_LOSS" \
  --out "$OUT.json" --markdown "$OUT.md" --plot "$OUT.png"
curl -sf "http://127.0.0.1:$P_ADMIN/metrics" | grep -E '^bedside_media_' >"$OUT.metrics.txt" || true
echo "wrote $OUT.json, $OUT.md, $OUT.png"
