#!/usr/bin/env bash
# Data-parallel training on one machine: MNIST's default recipe as 1 process
# using every core against N MPI processes sharing them (mpirun -np N, the
# cores split evenly), one run at a time, seeds interleaved so a slow spell
# of a shared machine hits both. For each run: the median epoch time and
# the final test Precision@1 (the run's summary.json); then the medians per
# setting and their ratio (docs/benchmarks.md, "Scale-out").
#
#   benchmarks/scale_out.sh [DATA_DIR] [SEEDS] [RANKS]
#
# DATA_DIR defaults to ../shared/data, SEEDS to "0 1 2", RANKS to 2. Needs
# the binary built with MPI (./dev build). Runs go to target/bench/scale-DATE/.
set -euo pipefail
cd "$(dirname "$0")/.."

data=${1:-../shared/data}
seeds=${2:-0 1 2}
ranks=${3:-2}
bin=target/release/twinsim
out=target/bench/scale-$(date +%F)
mkdir -p "$out"
results=$out/results.jsonl

run() { # NAME SEED COMMAND...
  local name=$1 seed=$2
  shift 2
  local dir=$out/$name-$seed
  rm -rf "$dir"
  "$@" "$bin" train --data-dir "$data" --seed "$seed" --out "$dir" --quiet >/dev/null
  python3 - "$dir" "$name" "$seed" >>"$results" <<'PY'
import json, statistics, sys
d, name, seed = sys.argv[1:]
epochs = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
s = json.load(open(f"{d}/summary.json"))
print(json.dumps({"setting": name, "seed": int(seed),
    "epoch_s": statistics.median(e["epoch_seconds"] for e in epochs),
    "train_s": epochs[-1]["train_seconds"], "p1": s["test_precision_at_1"]}))
PY
  tail -1 "$results"
}

for seed in $seeds; do
  run "1-process" "$seed" env
  run "$ranks-processes" "$seed" mpirun --allow-run-as-root -np "$ranks"
done

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["setting"], []).append(r)
print("| setting | runs | s per epoch | train s | test P@1 |")
print("|---|---:|---:|---:|---:|")
med = {}
for name, rs in by.items():
    m = {k: statistics.median(r[k] for r in rs) for k in ("epoch_s", "train_s", "p1")}
    med[name] = m
    rng = lambda k: f"{min(r[k] for r in rs):.1f}-{max(r[k] for r in rs):.1f}"
    print(f"| {name} | {len(rs)} | {m['epoch_s']:.1f} ({rng('epoch_s')}) | {m['train_s']:.1f} | {m['p1']:.4f} |")
names = list(med)
if len(names) == 2:
    a, b = names
    print(f"\n{b} / {a} epoch time: {med[b]['epoch_s'] / med[a]['epoch_s']:.2f}x")
PY
