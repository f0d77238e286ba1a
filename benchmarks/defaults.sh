#!/usr/bin/env bash
# Quality and time of twinsim's default training recipes, and of the seed's
# system, on the real datasets: one markdown row per run (docs/benchmarks.md).
#
#   benchmarks/defaults.sh [DATA_DIR] [SEEDS]
#
# DATA_DIR defaults to ../shared/data; SEEDS (default "0 1 2") are the seeds
# each recipe runs with. CIFAR-10's official binary format is built from the
# shared JPEG copy by its own script (once, into target/bench-data).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
seeds=${2:-0 1 2}
./dev build >&2
bin=target/release/twinsim
export TWINSIM_OFFLINE=1
out=$(mktemp -d)
cifar=$(benchmarks/cifar10_official.sh "$data")

row() { # name, run dir, start, end (seconds since the epoch)
  python3 - "$@" <<'PY'
import json, sys
name, run = sys.argv[1], sys.argv[2]
wall = float(sys.argv[4]) - float(sys.argv[3])
s = json.load(open(f"{run}/summary.json"))
e = s["epochs"]
c = s["config"]
print(f"| {name} | {c['seed']} | {len(e)} | {e[-1]['train_seconds']:.0f} | {wall:.0f} | "
      f"{sum(x['images_per_second'] for x in e) / len(e):.0f} | {e[-1]['val_precision_at_1']:.4f} | {s['test_precision_at_1']:.4f} |")
PY
}

run() { # name, data dir, args...
  local name=$1 dir=$2; shift 2
  for seed in $seeds; do
    local run="$out/$name-$seed" start end
    start=$(date +%s.%N)
    "$bin" train --data-dir "$dir" --seed "$seed" --out "$run" "$@" >/dev/null
    end=$(date +%s.%N)
    row "$name" "$run" "$start" "$end"
  done
}

echo "| recipe | seed | epochs | train s | wall s | images/s | val P@1 | test P@1 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
run "mnist default" "$data"
run "seed's system, 1 epoch" "$data" --config recipes/seed.toml --epochs 1
run "fashion-mnist default" "$data" --dataset fashion-mnist
run "cifar10 default" "$cifar" --dataset cifar10
