#!/usr/bin/env bash
# Start-up of the twinsim binary (docs/benchmarks.md, "Start-up"): the time
# and peak memory of `--version`, `--help` and `compare` of two images, with
# what loading libtorch_cpu alone costs (a C program that only links it),
# so what is left above libtorch is visible.
#
#   benchmarks/startup.sh [BINARY...]
#
# BINARY defaults to target/release/twinsim (built by ./dev build); name
# several (an older build copied aside first) to compare them on one run.
# RUNS (default 15) runs per command after 2 warm-up runs; times are
# hyperfine's medians, with its mean user + system CPU time (steadier than
# wall time on a shared machine), memory the median of 5 runs' peak RSS
# (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-15}
out=target/bench-startup
mkdir -p "$out"

# hyperfine and GNU time, from Debian's packages when missing.
if ! command -v hyperfine >/dev/null 2>&1 || [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "error: hyperfine or /usr/bin/time is missing: install hyperfine and time (as root)" >&2
    exit 1
  fi
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      hyperfine time; } >/dev/null
fi

if [ $# -eq 0 ]; then
  ./dev build >&2
  set -- target/release/twinsim
fi
export TWINSIM_OFFLINE=1

# A model trained once on the embedded sample (about 30 s), for `compare`.
model=$out/model
if [ ! -f "$model/model.json" ]; then
  rm -rf "$model"
  "$1" train --dataset mnist-sample --config recipes/mnist-fast.toml --out "$model" --quiet >&2
fi

# An empty C program linked to libtorch_cpu (and c10, which it needs): the
# floor that any binary linking libtorch pays, loading it before main and
# running its static destructors after; and the same program ending with
# _exit, which skips those destructors.
# The launcher links no libtorch; its core (beside it since the split) does.
core=$(dirname "$1")/twinsim-core
[ -x "$core" ] || core=$1
libdir=$(dirname "$(ldd "$core" | awk '/libtorch_cpu\.so/ { print $3 }')")
floor() { # name, C body of main
  echo "#include <unistd.h>
int main(void) { $2 }" >"$out/$1.c"
  cc -O2 "$out/$1.c" -o "$out/$1" -Wl,--no-as-needed -L"$libdir" -ltorch_cpu -lc10 -Wl,-rpath,"$libdir"
}
floor libtorch_cpu_only 'return 0;'
floor libtorch_cpu_only_exit '_exit(0);'

# Peak RSS in MB, the median of 5 runs of the command.
peak_rss() {
  for _ in 1 2 3 4 5; do
    /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1
  done | sort -n | sed -n 3p | awk '{ printf "%.0f", $1 / 1024 }'
}

# One table row: label, then the command (run without a shell). IGNORE=1
# for a command expected to fail.
row() {
  local label=$1 json=$out/hyperfine.json
  shift
  hyperfine -N ${IGNORE:+-i} --warmup 2 --runs "$runs" --export-json "$json" -- "$(printf '%q ' "$@")" >/dev/null 2>&1
  python3 - "$json" "$label" "$(peak_rss "$@")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
cpu = r["user"] + r["system"]
print(f"| {sys.argv[2]} | {r['median']:.3f} | {min(r['times']):.3f}-{max(r['times']):.3f} | {cpu:.3f} | {sys.argv[3]} |")
PY
}

a=examples/digits/seven-a.png
b=examples/digits/seven-b.png
echo "$(nproc) cores; $runs runs per command; $(date -u +%F)"
echo
echo "| command | median s | min-max s | CPU s (mean) | peak RSS MB |"
echo "| --- | ---: | ---: | ---: | ---: |"
row "libtorch_cpu alone (empty C program)" "$out/libtorch_cpu_only"
row "libtorch_cpu alone, ending with _exit" "$out/libtorch_cpu_only_exit"
for bin in "$@"; do
  row "$bin --version" "$bin" --version
  row "$bin --help" "$bin" --help
  row "$bin compare (cpu)" "$bin" compare "$a" "$b" --model "$model" --device cpu
  row "$bin compare (auto)" "$bin" compare "$a" "$b" --model "$model" --device auto
  IGNORE=1 row "$bin compare (cuda; fails: no GPU here)" "$bin" compare "$a" "$b" --model "$model" --device cuda
done
