#!/usr/bin/env bash
# What the default recipes reach on `twinsim evaluate`'s protocols, beside
# raw-pixel kNN and the untrained network: one markdown row per run
# (docs/benchmarks.md, "Evaluation").
#
#   benchmarks/evaluation.sh [DATA_DIR] [SEEDS] [RECIPES]
#
# DATA_DIR defaults to ../shared/data; SEEDS (default "0 1 2") are the seeds
# each recipe trains with; RECIPES (default "mnist disjoint fashion cifar10")
# picks the rows. CIFAR-10's official binary format is built from the shared
# JPEG copy by its own script (once, into target/bench-data).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
seeds=${2:-0 1 2}
recipes=${3:-mnist disjoint fashion cifar10}
./dev build >&2
bin=target/release/twinsim
export TWINSIM_OFFLINE=1
out=$(mktemp -d)
if [[ " $recipes " == *" cifar10 "* ]]; then cifar=$(benchmarks/cifar10_official.sh "$data"); fi

row() { # name, seed, run dir
  python3 - "$@" <<'PY'
import json, sys
name, seed, run = sys.argv[1:]
e = json.load(open(f"{run}/eval.json"))
train = json.load(open(f"{run}/summary.json"))["epochs"][-1]["train_seconds"]
def cells(m):
    return " | ".join(f"{m[k]:.4f}" for k in
        ("precision_at_1", "mean_average_precision_at_r", "r_precision", "nmi", "pair_roc_auc", "pair_eer"))
raw, untrained = e["baselines"]["raw_pixels"], e["baselines"]["untrained"]
print(f"| {name} | {seed} | {train:.0f} | {e['setup']['protocol']} | {cells(e)} | {e['pair_accuracy']:.4f} | "
      f"{raw['precision_at_1']:.4f} / {raw['mean_average_precision_at_r']:.4f} / {raw['pair_roc_auc']:.4f} | "
      f"{untrained['precision_at_1']:.4f} / {untrained['mean_average_precision_at_r']:.4f} / {untrained['pair_roc_auc']:.4f} |")
PY
}

run() { # name, data dir, protocol, train args...
  local name=$1 dir=$2 protocol=$3; shift 3
  for seed in $seeds; do
    local run="$out/$name-$seed"
    "$bin" -q train --data-dir "$dir" --seed "$seed" --out "$run" "$@" >/dev/null
    "$bin" -q --json evaluate "$run" --data-dir "$dir" --protocol "$protocol" > "$run/eval.json"
    row "$name" "$seed" "$run"
  done
}

echo "| recipe | seed | train s | protocol | P@1 | MAP@R | R-prec | NMI | ROC-AUC | EER | pair acc | raw pixels P@1 / MAP@R / AUC | untrained P@1 / MAP@R / AUC |"
echo "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"
for r in $recipes; do
  case $r in
    mnist) run "mnist default" "$data" gallery ;;
    disjoint) run "mnist 0-4, tested on 5-9" "$data" class-disjoint --classes 0-4 ;;
    fashion) run "fashion-mnist default" "$data" gallery --dataset fashion-mnist ;;
    cifar10) run "cifar10 default" "$cifar" gallery --dataset cifar10 ;;
    *) echo "unknown recipe $r" >&2; exit 2 ;;
  esac
done
