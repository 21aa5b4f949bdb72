#!/usr/bin/env bash
# Gateway benchmark: CPU time per proxied request and the latency keygate adds, against a mock
# upstream that answers at once. Auth, usage records and the vault are on, as in production.
#
#   bench/gateway.sh            # release build, then every scenario (about a minute)
#   DURATION=30s bench/gateway.sh
#
# Needs wrk (installed from Debian's packages if missing). Loopback only. Prints a Markdown
# table for docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-16}"
MOCK_ADDR=127.0.0.1:9181
KEYGATE_ADDR=127.0.0.1:9182

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi

cargo build --release --locked -p keygate -p keygate-testkit --bin keygate --bin keygate-mock-upstream >&2
BIN=target/release

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN/keygate-mock-upstream" "$MOCK_ADDR" &
pids+=($!)

cat >"$work/keygate.toml" <<TOML
data_dir = "$work/data"

[providers.mock]
kind = "openai"
base_url = "http://$MOCK_ADDR/v1"
credential = "env::BENCH_UPSTREAM_KEY"

[model_groups.chat]
deployments = [{ provider = "mock", model = "gpt-4o-mini" }]
TOML

BENCH_UPSTREAM_KEY=sk-bench-upstream-0123456789 RUST_LOG=warn \
  "$BIN/keygate" --config "$work/keygate.toml" serve --listen "$KEYGATE_ADDR" 2>"$work/serve.log" &
keygate_pid=$!
pids+=("$keygate_pid")
for _ in $(seq 100); do
  grep -q kg_live_ "$work/serve.log" 2>/dev/null && break
  sleep 0.1
done
owner="$(grep -o 'kg_live_[0-9A-Za-z]*' "$work/serve.log" | head -1)"
key="$(KEYGATE_URL="http://$KEYGATE_ADDR" KEYGATE_TOKEN="$owner" \
  "$BIN/keygate" keys create --name bench --scope 'models:*' --quiet)"

start_rss_kib="$(awk '/VmRSS/ { print $2 }' "/proc/$keygate_pid/status")"

cat >"$work/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"chat","messages":[{"role":"user","content":"Hello there, how are you today?"}],"temperature":0.7}'
LUA
sed 's/"temperature":0.7}/"temperature":0.7,"stream":true}/' "$work/chat.lua" >"$work/stream.lua"

# CPU seconds (user + system) the keygate process has used so far.
cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.6f", ($14 + $15) / hz }' "/proc/$keygate_pid/stat"
}

# wrk's latency percentile (50 or 99) in microseconds, from its --latency report.
percentile() {
  awk -v p="$1%" '$1 == p {
    v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
    if (unit == "us") print v; else if (unit == "ms") print v * 1000; else print v * 1000000 }' "$2"
}

requests() { awk '/requests in/ { print $1 }' "$1"; }

run() { # name url script connections
  wrk -t1 -c"$4" -d"$DURATION" --latency -s "$3" -H "Authorization: Bearer ${5:-$key}" "$2" >"$work/$1.txt"
}

# Warm up connections and caches.
wrk -t1 -c4 -d2s -s "$work/chat.lua" -H "Authorization: Bearer $key" "http://$KEYGATE_ADDR/v1/chat/completions" >/dev/null

for kind in chat stream; do
  before="$(cpu)"
  run "$kind-load" "http://$KEYGATE_ADDR/v1/chat/completions" "$work/$kind.lua" "$CONNECTIONS"
  after="$(cpu)"
  n="$(requests "$work/$kind-load.txt")"
  rps="$(awk '/Requests\/sec/ { printf "%d", $2 }' "$work/$kind-load.txt")"
  cpu_us="$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.1f", (a - b) * 1e6 / n }')"
  run "$kind-direct" "http://$MOCK_ADDR/v1/chat/completions" "$work/$kind.lua" 1
  run "$kind-via" "http://$KEYGATE_ADDR/v1/chat/completions" "$work/$kind.lua" 1
  p50="$(awk -v a="$(percentile 50 "$work/$kind-via.txt")" -v b="$(percentile 50 "$work/$kind-direct.txt")" 'BEGIN { printf "%.0f", a - b }')"
  p99="$(awk -v a="$(percentile 99 "$work/$kind-via.txt")" -v b="$(percentile 99 "$work/$kind-direct.txt")" 'BEGIN { printf "%.0f", a - b }')"
  printf '| %s | %s | %s µs | %s | %s µs | %s µs |\n' \
    "$kind" "$CONNECTIONS" "$cpu_us" "$rps" "$p50" "$p99"
done
rss_kib="$(awk '/VmHWM/ { print $2 }' "/proc/$keygate_pid/status")"
echo "RSS of keygate: $((start_rss_kib / 1024)) MiB at start, $((rss_kib / 1024)) MiB at peak" >&2
errors="$(grep -h 'Non-2xx' "$work"/*.txt || true)"
if [ -n "$errors" ]; then
  echo "bench: some requests failed: $errors" >&2
  exit 1
fi
