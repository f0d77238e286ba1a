#!/usr/bin/env bash
# twinsim's recipes trained on a GPU: MNIST (default, and recipes/mnist-fast.toml)
# and CIFAR-10 (default, normalized-softmax for 12 epochs, and
# recipes/cifar10-gpu.toml), once per seed; then the airbench94 peer
# (benchmarks/peers/airbench.py) on the same CIFAR-10 images.
# Each run: `twinsim train --device cuda`, then `twinsim evaluate` (gallery
# protocol). Prints and appends to OUT/gpu.jsonl one JSON line per run:
# training seconds, images/s per epoch, Precision@1, MAP@R, pair ROC-AUC.
#
#   benchmarks/gpu.sh TWINSIM DATA_DIR OUT [SEEDS]      (SEEDS default "0 1 2")
#
# TWINSIM: a release binary, with twinsim-core beside it, built with a CUDA libtorch (the project's set-up
# installs one) and without MPI (`cargo build --release -p twinsim`, not
# ./dev build: a GPU machine without Open MPI cannot load libmpi); DATA_DIR laid out like ../shared/data (mnist/*.gz,
# cifar10/cifar10-jpeg.tar.gz, unpacked here into an image folder). Where
# python3's PyTorch is installed, its libtorch is put on LD_LIBRARY_PATH, so
# a binary built on another machine runs on a GPU machine that has no Rust
# (docs/benchmarks.md, "GPU", says how it ran).
set -euo pipefail
tw=$(realpath "$1"); data=$(realpath "$2"); out=$3; seeds=${4:-0 1 2}
mkdir -p "$out"
if torch_lib=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__) + "/lib")' 2>/dev/null); then
  export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/cifar10"
tar xzf "$data/cifar10/cifar10-jpeg.tar.gz" -C "$work/cifar10"
export TWINSIM_OFFLINE=1

# run NAME SEED ARGS...: trains and evaluates; DATA_ARGS (the first two of
# ARGS) are given to both.
run() {
  local name=$1 seed=$2; shift 2
  local dir=$work/runs/$name-$seed
  "$tw" train --device cuda --json --seed "$seed" --out "$dir" "$@" >"$work/train.json" 2>"$work/log"
  "$tw" evaluate "$dir" --device cuda --json --no-baselines "${@:1:2}" >"$work/eval.json" 2>>"$work/log"
  python3 - "$name" "$seed" "$work" <<'PY' | tee -a "$out/gpu.jsonl"
import json, sys
name, seed, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t = json.load(open(f"{work}/train.json"))
e = json.load(open(f"{work}/eval.json"))
print(json.dumps({
    "recipe": name, "seed": seed,
    "train_s": round(t["epochs"][-1]["train_seconds"], 2),
    "images_per_s": [round(x["images_per_second"]) for x in t["epochs"]],
    "p1": e["precision_at_1"], "mapr": e["mean_average_precision_at_r"], "auc": e["pair_roc_auc"],
}))
PY
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
for seed in $seeds; do
  run "mnist default" "$seed" --data-dir "$data"
  run "mnist fast" "$seed" --data-dir "$data" --config recipes/mnist-fast.toml
  run "cifar10 default" "$seed" --dataset "$work/cifar10"
  run "cifar10 nsm12" "$seed" --dataset "$work/cifar10" --loss normalized-softmax --epochs 12
  run "cifar10 gpu" "$seed" --dataset "$work/cifar10" --config recipes/cifar10-gpu.toml
done
for seed in $seeds; do
  python3 "$(dirname "$0")/peers/airbench.py" "$work/cifar10" --seed "$seed" | tee -a "$out/peer.jsonl"
done
