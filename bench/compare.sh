#!/usr/bin/env bash
# Side by side: the same chat workload straight to a mock upstream ("direct"), through keygate
# (limits on this node), through keygate with its limits in Redis, and through LiteLLM, one
# after another on this machine. Prints the ratios first, then the raw figures, as Markdown.
#
#   bench/compare.sh                   # full run: several minutes, callgrind included
#   bench/compare.sh --quick           # a second or two per step, no callgrind: proves it works
#   bench/compare.sh --no-callgrind    # full run without the instruction counts
#   bench/compare.sh --callgrind-only  # only keygate's instructions per request (a minute)
#
# keygate runs as in production: a real key with a request rate and a token rate (far above
# what the load reaches), usage records on (the default). LiteLLM (litellm[proxy]==1.108.7,
# every package pinned in bench/compare/litellm-requirements.txt) is installed into
# target/litellm-venv when missing and runs with one worker, a master key and no database.
# Needs cargo, python3, curl, a Redis at KEYGATE_REDIS_URL (default redis://127.0.0.1:6379)
# with redis-cli, valgrind for the instruction counts, and wrk (installed from Debian's
# packages when missing). Loopback only. docs/BENCHMARKS.md says what each figure means.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

quick=0
callgrind=1
sides=1
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 callgrind=0 ;;
    --no-callgrind) callgrind=0 ;;
    --callgrind-only) sides=0 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

# Each may be set in the environment: wrk's durations in whole seconds.
if [ "$quick" = 1 ]; then
  LOAD="${LOAD:-2s}" LATENCY="${LATENCY:-1s}" CHUNK_LOAD="${CHUNK_LOAD:-2s}" WARM="${WARM:-1s}"
  FIRST_CHUNKS="${FIRST_CHUNKS:-50}"
else
  LOAD="${LOAD:-10s}" LATENCY="${LATENCY:-10s}" CHUNK_LOAD="${CHUNK_LOAD:-10s}" WARM="${WARM:-2s}"
  FIRST_CHUNKS="${FIRST_CHUNKS:-1000}"
fi
CALLGRIND_REQUESTS="${CALLGRIND_REQUESTS:-2000}"
LOAD_CONNECTIONS=32
CHUNK_CONNECTIONS=8
# Streams of two lengths price one more chunk; the long one is long enough that the
# difference stands well above the noise of two CPU figures on a shared machine (a --quick
# run takes a shorter one, of which LiteLLM still finishes some in its two seconds).
SHORT_STREAM="${SHORT_STREAM:-5}"
if [ "$quick" = 1 ]; then LONG_STREAM="${LONG_STREAM:-50}"; else LONG_STREAM="${LONG_STREAM:-200}"; fi
REDIS_URL="${KEYGATE_REDIS_URL:-redis://127.0.0.1:6379}"
VENV="${LITELLM_VENV:-target/litellm-venv}"
REQUIREMENTS=bench/compare/litellm-requirements.txt
UPSTREAM_KEY=sk-bench-upstream-0123456789
LITELLM_MASTER_KEY=sk-bench-master-0123456789

fail() { echo "compare: $*" >&2; exit 1; }
note() { echo "compare: $*" >&2; }

# --- what the run needs ------------------------------------------------------------------------
for tool in cargo python3 curl; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done
if ! command -v wrk >/dev/null; then
  note "installing wrk"
  apt-get update -qq >&2 && apt-get install -y -qq wrk >&2
fi
if [ "$sides" = 1 ]; then
  command -v redis-cli >/dev/null || fail "redis-cli is missing (apt-get install -y redis-tools)"
  [ "$(redis-cli -u "$REDIS_URL" ping 2>/dev/null)" = PONG ] ||
    fail "no Redis answers at $REDIS_URL: start one, or set KEYGATE_REDIS_URL"
fi
if [ "$callgrind" = 1 ]; then
  if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    fail "valgrind is missing (apt-get install -y valgrind), or run with --no-callgrind"
  fi
fi

started_at="${EPOCHREALTIME/./}"
load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"
note "building keygate (release)"
cargo build --release --locked -p keygate -p keygate-testkit --bin keygate --bin keygate-mock-upstream >&2
BIN=target/release

# LiteLLM goes into a virtual environment of its own, installed again when the pins change.
if [ "$sides" = 1 ]; then
  stamp="$VENV/.bench-requirements.sha256"
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
  if [ ! -x "$VENV/bin/litellm" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    note "installing LiteLLM into $VENV (a few minutes the first time)"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || fail "python3 -m venv failed (apt-get install -y python3-venv?)"
    "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQUIREMENTS" >&2 ||
      fail "pip could not install $REQUIREMENTS"
    echo "$want" >"$stamp"
  fi
fi

# --- processes ---------------------------------------------------------------------------------
work="$(mktemp -d)"
pids=()
descendants() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}
forget() {
  local p kept=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  pids=("${kept[@]}")
}
stop() {
  local pid="$1" all
  all="$(descendants "$pid") $pid"
  # shellcheck disable=SC2086 # a list of process ids
  kill -TERM $all 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  # shellcheck disable=SC2086
  kill -KILL $all 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  forget "$pid"
}
cleanup() {
  local pid
  for pid in "${pids[@]}"; do stop "$pid"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts "$@" in the background, its output in the file $1; the process id lands in $spawned.
spawn() {
  local log="$1"
  shift
  "$@" >"$log" 2>&1 &
  spawned=$!
  pids+=("$spawned")
}

# Waits until URL answers (with any status, or with 200 when $5 is 200) and prints the
# milliseconds since the microsecond timestamp $4.
wait_ready() { # name pid url since [status] [timeout seconds]
  local code
  for _ in $(seq $((${6:-120} * 100))); do
    kill -0 "$2" 2>/dev/null || { tail -20 "$work/$1.log" >&2; fail "$1 exited at start-up (log above)"; }
    code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$3" || true)"
    if { [ "${5:-any}" = any ] && [ "$code" != 000 ]; } || [ "$code" = 200 ]; then
      echo $(((${EPOCHREALTIME/./} - $4) / 1000))
      return
    fi
    sleep 0.01
  done
  tail -20 "$work/$1.log" >&2
  fail "$1 did not answer $3 within ${6:-120} s"
}

# User + system CPU seconds of a process and its descendants so far.
cpu() {
  local p total=0 hz
  hz="$(getconf CLK_TCK)"
  for p in "$1" $(descendants "$1"); do
    # Fields after the command name, which may hold spaces: utime and stime are 12th and 13th.
    total="$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk -v t="$total" -v hz="$hz" '{ printf "%.6f", t + ($12 + $13) / hz }')"
  done
  echo "$total"
}

# Resident memory of a process and its descendants, in MiB.
rss() {
  local p total=0 kib
  for p in "$1" $(descendants "$1"); do
    kib="$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)"
    total=$((total + ${kib:-0}))
  done
  awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}

# --- wrk ---------------------------------------------------------------------------------------
# wrk [out] [connections] [duration] [url] [token] [VAR=value for bench/wrk/chat.lua ...]
drive() {
  local run="$1" out="$work/$1.txt" connections="$2" duration="$3" url="$4" token="$5"
  shift 5
  env "$@" wrk -t1 -c"$connections" -d"$duration" --timeout 30s --latency \
    -s bench/wrk/chat.lua -H "Authorization: Bearer $token" "$url" >"$out" 2>&1 ||
    { cat "$out" >&2; fail "wrk failed against $url"; }
  if grep -qE 'Non-2xx|Socket errors' "$out"; then
    cat "$out" >&2
    fail "requests failed in run $run against $url (wrk's report above)"
  fi
  [ "$(requests "$out")" -gt 0 ] || fail "no request answered in run $run against $url"
}
requests() { awk '/requests in/ { print $1 }' "$1"; }
rps() { awk '/Requests\/sec/ { printf "%d", $2 }' "$1"; }
# wrk's latency percentile (50 or 99) in microseconds.
percentile() {
  awk -v p="$1%" '$1 == p {
    v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
    if (unit == "us") printf "%.0f", v; else if (unit == "ms") printf "%.0f", v * 1000; else printf "%.0f", v * 1000000 }' "$2"
}
# The JSON that bench/wrk/chat.lua sends, for one request outside wrk.
request_body() { # model stream(0|1) [chunks]
  local text="Hello there, how are you today?" stream=""
  [ -n "${3:-}" ] && text+=" chunks=$3"
  [ "$2" = 1 ] && stream=',"stream":true'
  printf '{"model":"%s","messages":[{"role":"user","content":"%s"}],"temperature":0.7%s}' "$1" "$text" "$stream"
}

# How many requests an upstream has answered so far. keygate-mock-upstream writes nothing but
# its answers, all of one size for non-streamed requests, so the bytes it has written count
# them; bench/compare/mock_stream.py counts its own.
answered() { # mock|stream
  if [ "$1" = mock ]; then
    awk -v size="$mock_answer_bytes" '/^wchar/ { printf "%.2f", $2 / size }' "/proc/$mock_pid/io"
  else
    curl -sf --max-time 5 "http://127.0.0.1:$stream_port/answers" || fail "the stream mock did not say how many it answered"
  fi
}

# Runs wrk (drive's arguments after the first two) and, from 20 % to 80 % of its duration,
# reads the CPU time of process $1 and counts the requests that upstream $2 (mock|stream)
# answered: CPU per request in steady state, free of wrk's ramp at the start and of the
# requests it cuts off at the end. Sets $steady_us.
steady_cpu() { # pid mock|stream name connections duration url token [VAR=value ...]
  local pid="$1" upstream="$2" secs="${5%s}" job c0 c1 a0 a1
  shift 2
  drive "$@" &
  job=$!
  pids+=("$job")
  sleep "$(awk -v s="$secs" 'BEGIN { print s * 0.2 }')"
  c0="$(cpu "$pid")" a0="$(answered "$upstream")"
  sleep "$(awk -v s="$secs" 'BEGIN { print s * 0.6 }')"
  c1="$(cpu "$pid")" a1="$(answered "$upstream")"
  wait "$job" || exit 1
  forget "$job"
  steady_us="$(awk -v c="$c1" -v b="$c0" -v n="$a1" -v m="$a0" 'BEGIN { if (n - m < 1) exit 1; printf "%.1f", (c - b) * 1e6 / (n - m) }')" ||
    fail "fewer than one answer in the middle of run $1: make it longer"
}

# --- measuring one target ----------------------------------------------------------------------
declare -A V
# measure NAME BASE_URL TOKEN PID CHUNKS(yes|no): every figure but start-up and RSS at start.
measure() {
  local t="$1" url="$2/v1/chat/completions" token="$3" pid="$4" first len
  note "$t: warm-up"
  drive "$t-warm" 4 "$WARM" "$url" "$token"
  python3 bench/compare/client.py first-chunk "$url" "$token" chat 5 >/dev/null

  note "$t: throughput, $LOAD_CONNECTIONS connections, $LOAD"
  steady_cpu "$pid" mock "$t-load" "$LOAD_CONNECTIONS" "$LOAD" "$url" "$token"
  V[$t.rps]="$(rps "$work/$t-load.txt")"
  V[$t.cpu]="$steady_us"
  V[$t.requests]="$(requests "$work/$t-load.txt")"

  note "$t: latency, 1 connection, $LATENCY"
  drive "$t-latency" 1 "$LATENCY" "$url" "$token"
  V[$t.p50]="$(percentile 50 "$work/$t-latency.txt")"
  V[$t.p99]="$(percentile 99 "$work/$t-latency.txt")"

  note "$t: first streamed chunk, $FIRST_CHUNKS requests"
  first="$(python3 bench/compare/client.py first-chunk "$url" "$token" chat "$FIRST_CHUNKS")"
  V[$t.fc50]="${first% *}"
  V[$t.fc99]="${first#* }"

  if [ "$5" = yes ]; then
    for len in "$SHORT_STREAM" "$LONG_STREAM"; do
      note "$t: streams of $len chunks, $CHUNK_CONNECTIONS connections, $CHUNK_LOAD"
      drive "$t-chunks$len-warm" 2 "$WARM" "$url" "$token" BENCH_MODEL=chunks BENCH_STREAM=1 BENCH_CHUNKS="$len"
      steady_cpu "$pid" stream "$t-chunks$len" "$CHUNK_CONNECTIONS" "$CHUNK_LOAD" \
        "$url" "$token" BENCH_MODEL=chunks BENCH_STREAM=1 BENCH_CHUNKS="$len"
      V[$t.c$len]="$steady_us"
    done
    V[$t.chunk]="$(awk -v a="${V[$t.c$LONG_STREAM]}" -v b="${V[$t.c$SHORT_STREAM]}" \
      -v n="$((LONG_STREAM - SHORT_STREAM))" 'BEGIN { printf "%.2f", (a - b) / n }')"
  fi
  V[$t.rss1]="$(rss "$pid")"
}

# --- upstreams ---------------------------------------------------------------------------------
mock_port="$(free_port)"
t0="${EPOCHREALTIME/./}"
spawn "$work/mock.log" "$BIN/keygate-mock-upstream" "127.0.0.1:$mock_port"
mock_pid="$spawned"
V[direct.start]="$(wait_ready mock "$mock_pid" "http://127.0.0.1:$mock_port/v1/chat/completions" "$t0")"
V[direct.rss0]="$(rss "$mock_pid")"
# The size of one non-streamed answer, which counts the mock's answers (see answered).
before="$(awk '/^wchar/ { print $2 }' "/proc/$mock_pid/io")"
curl -sf -o /dev/null -d "$(request_body chat 0)" "http://127.0.0.1:$mock_port/v1/chat/completions" ||
  fail "the mock upstream did not answer"
mock_answer_bytes=$(($(awk '/^wchar/ { print $2 }' "/proc/$mock_pid/io") - before))
[ "$mock_answer_bytes" -gt 0 ] || fail "cannot see what the mock upstream writes in /proc/$mock_pid/io"

stream_port="$(free_port)"
spawn "$work/mock-stream.log" python3 bench/compare/mock_stream.py "127.0.0.1:$stream_port"
stream_pid="$spawned"
wait_ready mock-stream "$stream_pid" "http://127.0.0.1:$stream_port/" "${EPOCHREALTIME/./}" >/dev/null

# --- keygate -----------------------------------------------------------------------------------
keygate_config() { # data-dir
  cat <<TOML
data_dir = "$1"

[providers.mock]
kind = "openai"
base_url = "http://127.0.0.1:$mock_port/v1"
credential = "env::BENCH_UPSTREAM_KEY"

[providers.mock_stream]
kind = "openai"
base_url = "http://127.0.0.1:$stream_port/v1"
credential = "env::BENCH_UPSTREAM_KEY"

[model_groups.chat]
deployments = [{ provider = "mock", model = "gpt-4o-mini" }]

[model_groups.chunks]
deployments = [{ provider = "mock_stream", model = "gpt-4o-mini" }]
TOML
}

# The owner key keygate prints at its first start makes a bench key with limits on it.
keygate_key() { # name port
  local owner=""
  for _ in $(seq 600); do
    owner="$(grep -o 'kg_live_[0-9A-Za-z]*' "$work/$1.log" 2>/dev/null | head -1 || true)"
    [ -n "$owner" ] && break
    sleep 0.1
  done
  [ -n "$owner" ] || fail "$1 printed no owner key (log: $work/$1.log)"
  KEYGATE_URL="http://127.0.0.1:$2" KEYGATE_TOKEN="$owner" "$BIN/keygate" keys create \
    --name bench --scope 'models:*' --rate 100000000/second --tokens 100000000000/second --quiet
}

# start_keygate NAME [VAR=value ...]: sets $kg_pid, $kg_port, $kg_key.
start_keygate() {
  local name="$1"
  shift
  kg_port="$(free_port)"
  mkdir -p "$work/$name"
  keygate_config "$work/$name/data" >"$work/$name/keygate.toml"
  t0="${EPOCHREALTIME/./}"
  spawn "$work/$name.log" env BENCH_UPSTREAM_KEY="$UPSTREAM_KEY" RUST_LOG=warn "$@" \
    "$BIN/keygate" --config "$work/$name/keygate.toml" serve --listen "127.0.0.1:$kg_port"
  kg_pid="$spawned"
  V[$name.start]="$(wait_ready "$name" "$kg_pid" "http://127.0.0.1:$kg_port/healthz" "$t0" 200)"
  V[$name.rss0]="$(rss "$kg_pid")"
  kg_key="$(keygate_key "$name" "$kg_port")"
  # Limits are on when the answer carries their state.
  curl -s -D - -o /dev/null -H "Authorization: Bearer $kg_key" -H 'Content-Type: application/json' \
    -d '{"model":"chat","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$kg_port/v1/chat/completions" | grep -qi '^x-ratelimit-limit-requests' ||
    fail "$name answered without x-ratelimit-limit-requests: are the key's limits on?"
}

redis_commands() {
  redis-cli -u "$REDIS_URL" info stats | awk -F: '/^total_commands_processed/ { print $2 + 0 }'
}

# --- instruction counts ------------------------------------------------------------------------
# keygate under callgrind, answering a fixed number of requests: instructions per request, the
# figure that moves only when the code does.
count_instructions() {
  local name=callgrind url dump kind file total
  kg_port="$(free_port)"
  mkdir -p "$work/$name"
  keygate_config "$work/$name/data" >"$work/$name/keygate.toml"
  note "callgrind: keygate under valgrind, $CALLGRIND_REQUESTS requests of each kind"
  # One tokio worker: with two, how the serialised threads share the work changes from run to
  # run, and so does the count (by up to 7 %, against up to 4 % with one).
  spawn "$work/$name.log" env BENCH_UPSTREAM_KEY="$UPSTREAM_KEY" RUST_LOG=warn TOKIO_WORKER_THREADS=1 \
    valgrind --tool=callgrind --callgrind-out-file="$work/$name/callgrind.out" \
    "$BIN/keygate" --config "$work/$name/keygate.toml" serve --listen "127.0.0.1:$kg_port"
  kg_pid="$spawned"
  wait_ready "$name" "$kg_pid" "http://127.0.0.1:$kg_port/healthz" "${EPOCHREALTIME/./}" 200 600 >/dev/null
  kg_key="$(keygate_key "$name" "$kg_port")"
  url="http://127.0.0.1:$kg_port/v1/chat/completions"
  dump=0
  for kind in json stream; do
    python3 bench/compare/client.py send "$url" "$kg_key" chat 200 "$kind" >/dev/null
    callgrind_control --zero "$kg_pid" >/dev/null 2>&1
    python3 bench/compare/client.py send "$url" "$kg_key" chat "$CALLGRIND_REQUESTS" "$kind" >/dev/null
    callgrind_control --dump "$kg_pid" >/dev/null 2>&1
    dump=$((dump + 1))
    file="$work/$name/callgrind.out.$dump"
    for _ in $(seq 100); do grep -qs '^totals:' "$file" && break; sleep 0.1; done
    total="$(awk '/^(summary|totals):/ { print $2; exit }' "$file" 2>/dev/null || true)"
    [ -n "$total" ] || fail "callgrind wrote no totals to $file"
    V[callgrind.$kind]="$(awk -v t="$total" -v n="$CALLGRIND_REQUESTS" 'BEGIN { printf "%.0f", t / n }')"
  done
  stop "$kg_pid"
}
instructions_line() {
  echo "keygate instructions per request (callgrind, one tokio worker, 1 connection, local limits):" \
    "$(get callgrind.json) JSON, $(get callgrind.stream) streamed (5 chunks);" \
    "$CALLGRIND_REQUESTS requests of each"
}

get() { echo "${V[$1]:-}"; }
# The commit measured, and whether the code differs from it.
revision() {
  echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock 2>/dev/null || echo ' with local changes to the code')"
}

if [ "$sides" = 0 ]; then
  count_instructions
  echo "keygate $(revision)"
  instructions_line
  exit 0
fi

measure direct "http://127.0.0.1:$mock_port" unused "$mock_pid" no

start_keygate keygate
measure keygate "http://127.0.0.1:$kg_port" "$kg_key" "$kg_pid" yes
stop "$kg_pid"

redis_before="$(redis_commands)"
start_keygate redis KEYGATE_REDIS_URL="$REDIS_URL"
measure redis "http://127.0.0.1:$kg_port" "$kg_key" "$kg_pid" yes
stop "$kg_pid"
[ "$(($(redis_commands) - redis_before))" -ge "${V[redis.requests]}" ] ||
  fail "Redis saw fewer commands than keygate served requests: were the limits in Redis?"

# --- LiteLLM -----------------------------------------------------------------------------------
cat >"$work/litellm.yaml" <<YAML
model_list:
  - model_name: chat
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$mock_port/v1
      api_key: $UPSTREAM_KEY
  - model_name: chunks
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:$stream_port/v1
      api_key: $UPSTREAM_KEY
general_settings:
  master_key: $LITELLM_MASTER_KEY
YAML
litellm_port="$(free_port)"
t0="${EPOCHREALTIME/./}"
# No DATABASE_URL: LiteLLM's database mode downloads binaries at start-up. The local cost map
# keeps it from fetching one at import.
spawn "$work/litellm.log" env -u DATABASE_URL LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR \
  "$VENV/bin/litellm" --config "$work/litellm.yaml" --host 127.0.0.1 --port "$litellm_port" --num_workers 1
litellm_pid="$spawned"
V[litellm.start]="$(wait_ready litellm "$litellm_pid" "http://127.0.0.1:$litellm_port/health/liveliness" "$t0" 200 300)"
V[litellm.rss0]="$(rss "$litellm_pid")"
measure litellm "http://127.0.0.1:$litellm_port" "$LITELLM_MASTER_KEY" "$litellm_pid" yes
stop "$litellm_pid"

if [ "$callgrind" = 1 ]; then
  count_instructions
fi

# --- the tables --------------------------------------------------------------------------------
for t in keygate redis litellm; do
  V[$t.add50]=$((${V[$t.p50]} - ${V[direct.p50]}))
  V[$t.add99]=$((${V[$t.p99]} - ${V[direct.p99]}))
  V[$t.addfc50]=$((${V[$t.fc50]} - ${V[direct.fc50]}))
done

# keygate's figure divided by another's; "—" where either is missing or not above zero.
ratio() {
  awk -v a="${1:-}" -v b="${2:-}" 'BEGIN {
    if (a == "" || b == "" || a + 0 <= 0 || b + 0 <= 0) { printf "—"; exit }
    r = a / b
    if (r >= 100) printf "%.0f", r; else if (r >= 10) printf "%.1f", r; else if (r >= 1) printf "%.2f", r
    else printf "%.3g (1/%.0f)", r, 1 / r }'
}
ratio_row() { # label better key [vs-direct: yes|no]
  local direct_k="—" direct_r="—"
  if [ "${4:-yes}" = yes ]; then
    direct_k="$(ratio "$(get "keygate.$3")" "$(get "direct.$3")")"
    direct_r="$(ratio "$(get "redis.$3")" "$(get "direct.$3")")"
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" \
    "$(ratio "$(get "keygate.$3")" "$(get "litellm.$3")")" \
    "$(ratio "$(get "redis.$3")" "$(get "litellm.$3")")" "$direct_k" "$direct_r"
}
raw_row() { # label key unit
  local t out="| $1 |" v
  for t in direct keygate redis litellm; do
    v="$(get "$t.$2")"
    if [ -z "$v" ]; then out+=" — |"; else out+=" $v$3 |"; fi
  done
  echo "$out"
}

elapsed=$(((${EPOCHREALTIME/./} - started_at) / 1000000))
mode=full
[ "$quick" = 1 ] && mode=quick
echo
echo "bench/compare.sh ($mode run), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores:" \
  "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
  "load average $load_at_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; ${elapsed} s in all"
echo "keygate $(revision);" \
  "LiteLLM $("$VENV/bin/pip" show litellm 2>/dev/null | awk '/^Version/ { print $2 }') with one worker"
echo
echo "Ratios: keygate's figure ÷ the other's."
echo
echo '| figure | better | keygate ÷ LiteLLM | keygate+Redis ÷ LiteLLM | keygate ÷ direct | keygate+Redis ÷ direct |'
echo '|---|---|---|---|---|---|'
ratio_row "requests/s, $LOAD_CONNECTIONS connections" higher rps
ratio_row "CPU per request (direct: the mock's)" lower cpu
ratio_row "p50 latency, 1 connection" lower p50
ratio_row "p99 latency, 1 connection" lower p99
ratio_row "added p50 latency" lower add50 no
ratio_row "added p99 latency" lower add99 no
ratio_row "first streamed chunk, p50" lower fc50
ratio_row "added first chunk, p50" lower addfc50 no
ratio_row "CPU per extra streamed chunk" lower chunk no
ratio_row "RSS after start" lower rss0
ratio_row "RSS after load" lower rss1
ratio_row "start-up time" lower start
echo
echo "Raw figures (direct = straight to keygate-mock-upstream)."
echo
echo '| figure | direct | keygate | keygate+Redis | LiteLLM |'
echo '|---|---|---|---|---|'
raw_row "requests/s, $LOAD_CONNECTIONS connections, JSON, $LOAD" rps ""
raw_row "CPU per request, steady state of that run (direct: the mock's)" cpu " µs"
raw_row "p50 latency, 1 connection, $LATENCY" p50 " µs"
raw_row "p99 latency, 1 connection" p99 " µs"
raw_row "added p50 latency (vs direct)" add50 " µs"
raw_row "added p99 latency (vs direct)" add99 " µs"
raw_row "first streamed chunk, p50 ($FIRST_CHUNKS requests)" fc50 " µs"
raw_row "first streamed chunk, p99" fc99 " µs"
raw_row "added first chunk, p50 (vs direct)" addfc50 " µs"
raw_row "CPU per request, $SHORT_STREAM-chunk stream ($CHUNK_CONNECTIONS connections)" "c$SHORT_STREAM" " µs"
raw_row "CPU per request, $LONG_STREAM-chunk stream" "c$LONG_STREAM" " µs"
raw_row "CPU per extra streamed chunk" chunk " µs"
raw_row "RSS after start" rss0 " MiB"
raw_row "RSS after load" rss1 " MiB"
raw_row "start-up time (until health answers)" start " ms"
echo
if [ "$callgrind" = 1 ]; then
  instructions_line
else
  echo "keygate instructions per request: not measured (--quick or --no-callgrind)"
fi
