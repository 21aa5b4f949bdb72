#!/usr/bin/env bash
# Secret scanning: `keygate scan` against Yelp's detect-secrets on the same generated tree, and
# `keygate scan --history` on a generated git repository; speed (wall time, MB/s, CPU, peak
# RSS; the median of RUNS runs) and precision and recall against the planted secrets. Prints
# Markdown for docs/BENCHMARKS.md.
#
#   bench/scan.sh            # full run: a 200 MiB tree, 200 commits, 3 runs each; about half an
#                            # hour, nearly all of it detect-secrets (making the data: 5 minutes)
#   bench/scan.sh --quick    # a 20 MiB tree, 40 commits, one run each: a few minutes
#
# Settings from the environment: SIZE_MB (200), COMMITS (200), HISTORY_MB (40, the first
# commit's tree), RUNS (3), THREADS (2, for both tools), WORK (target/scan-bench).
#
# The data (bench/scan/gen.py, fixed seeds) is made once under WORK and made again when the
# generator or the settings change. detect-secrets 1.5.0 (every package pinned in
# bench/scan/detect-secrets-requirements.txt) goes into target/detect-secrets-venv. Needs
# cargo, python3 (with venv), git, and GNU time (installed from Debian's packages if missing).
# Nothing leaves the machine: detect-secrets runs with --no-verify.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scan: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then
  SIZE_MB="${SIZE_MB:-20}" COMMITS="${COMMITS:-40}" HISTORY_MB="${HISTORY_MB:-8}" RUNS="${RUNS:-1}"
else
  SIZE_MB="${SIZE_MB:-200}" COMMITS="${COMMITS:-200}" HISTORY_MB="${HISTORY_MB:-40}" RUNS="${RUNS:-3}"
fi
THREADS="${THREADS:-2}"
WORK="${WORK:-target/scan-bench}"
VENV="${DETECT_SECRETS_VENV:-target/detect-secrets-venv}"
REQUIREMENTS=bench/scan/detect-secrets-requirements.txt
TIME=/usr/bin/time

fail() { echo "scan: $*" >&2; exit 1; }
note() { echo "scan: $*" >&2; }

for tool in cargo python3 git; do
  command -v "$tool" >/dev/null || fail "$tool is missing"
done
if ! "$TIME" -f %M true 2>/dev/null; then
  note "installing GNU time"
  apt-get update -qq >&2 && apt-get install -y -qq time >&2
fi

started_at="${EPOCHREALTIME/./}"
load_at_start="$(cut -d' ' -f1-3 /proc/loadavg)"
note "building keygate (release)"
cargo build --release --locked -p keygate --bin keygate >&2
KEYGATE=target/release/keygate

# detect-secrets in a virtual environment of its own, installed again when the pins change.
stamp="$VENV/.bench-requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/detect-secrets" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  note "installing detect-secrets into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || fail "python3 -m venv failed (apt-get install -y python3-venv?)"
  "$VENV/bin/pip" install --disable-pip-version-check -q -r "$REQUIREMENTS" >&2 ||
    fail "pip could not install $REQUIREMENTS"
  echo "$want" >"$stamp"
fi
DETECT_SECRETS="$(realpath "$VENV/bin/detect-secrets")"

# --- data --------------------------------------------------------------------------------------
# Made again when the generator or its settings change; kept otherwise (a few minutes to make).
generator="$(sha256sum bench/scan/gen.py | cut -c1-12)"
tree_dir="$WORK/tree-${SIZE_MB}mb"
history_dir="$WORK/history-${COMMITS}c-${HISTORY_MB}mb"
if [ "$(cat "$tree_dir/.stamp" 2>/dev/null)" != "$generator" ]; then
  note "generating a ${SIZE_MB} MiB tree in $tree_dir"
  rm -rf "$tree_dir"
  python3 bench/scan/gen.py tree "$tree_dir" --size-mb "$SIZE_MB"
  echo "$generator" >"$tree_dir/.stamp"
fi
if [ "$(cat "$history_dir/.stamp" 2>/dev/null)" != "$generator" ]; then
  note "generating a repository of $COMMITS commits in $history_dir"
  rm -rf "$history_dir"
  python3 bench/scan/gen.py history "$history_dir" --commits "$COMMITS" --size-mb "$HISTORY_MB"
  echo "$generator" >"$history_dir/.stamp"
fi
out="$WORK/out-${SIZE_MB}mb-${COMMITS}c"
rm -rf "$out"
mkdir -p "$out"

# The generator's keygate keys are keygate's: every valid one found, no mistyped one.
python3 bench/scan/gen.py keys --count 200 >"$out/keys.txt"
"$KEYGATE" scan --format json --exit-code 0 --no-progress -o "$out/keys.json" "$out/keys.txt"
python3 - "$out/keys.txt" "$out/keys.json" <<'PY' || fail "the generated keygate keys are not what keygate accepts"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
valid = {n + 1 for n, line in enumerate(lines) if line.startswith("valid ")}
found = {f["line"] for f in json.load(open(sys.argv[2]))["findings"] if f["rule_id"] == "keygate-key"}
sys.exit(0 if found == valid else "found %d of %d valid keys, %d mistyped" % (len(found & valid), len(valid), len(found - valid)))
PY

# --- measuring ---------------------------------------------------------------------------------
# measure TOOL TARGET OUTPUT COMMAND...: RUNS runs, each appended to times.tsv as
# tool, target, run, wall s, user s, system s, peak RSS KiB. Standard output goes to OUTPUT.
measure() {
  local tool="$1" target="$2" output="$3" run t0 t1 wall
  shift 3
  note "$tool on the $target: $RUNS runs (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for run in $(seq "$RUNS"); do
    t0="${EPOCHREALTIME/./}"
    "$TIME" -f '%U\t%S\t%M' -o "$out/time.txt" "$@" >"$output" || fail "$tool failed on the $target"
    t1="${EPOCHREALTIME/./}"
    wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')"
    printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$target" "$run" "$wall" "$(tail -1 "$out/time.txt")" >>"$out/times.tsv"
    note "  run $run: $wall s"
  done
}

# Every run reads from the page cache: the first as much as the others.
find "$tree_dir/tree" "$history_dir/repo/.git" -type f -exec cat {} + >/dev/null

# --no-ignore: the tree lies under target/, which the repository's .gitignore leaves out, and
# detect-secrets --all-files reads every file; so both read the same files.
measure keygate tree "$out/keygate-tree.json" \
  "$KEYGATE" scan --no-ignore --threads "$THREADS" --format json --exit-code 0 --no-progress "$tree_dir/tree"
measure keygate history "$out/keygate-history.json" \
  "$KEYGATE" scan --history --threads "$THREADS" --format json --exit-code 0 --no-progress "$history_dir/repo"
# --all-files walks the directory instead of asking git for its tracked files; --no-verify
# keeps its plugins from calling the providers' APIs. The tree is no git repository, so no
# file is skipped as ignored.
measure detect-secrets tree "$out/detect-secrets-tree.json" \
  env -C "$tree_dir/tree" "$DETECT_SECRETS" -c "$THREADS" scan --all-files --no-verify .

# --- the report --------------------------------------------------------------------------------
elapsed=$(((${EPOCHREALTIME/./} - started_at) / 1000000))
mode=full
[ "$quick" = 1 ] && mode=quick
echo
echo "bench/scan.sh ($mode run), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores:" \
  "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(free -g | awk '/^Mem:/ { print $2 }') GiB;" \
  "load average $load_at_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; ${elapsed} s in all"
echo "keygate $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || echo ' with local changes to the code')," \
  "--threads $THREADS; detect-secrets $("$DETECT_SECRETS" --version) with -c $THREADS, Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())');" \
  "MB = 10^6 bytes"
echo
python3 bench/scan/score.py report "$out" "$tree_dir" "$history_dir"
