#!/usr/bin/env bash
# Small data, as a user's folder of photos: an image folder built from the
# shared CIFAR-10 JPEG copy with the first N training images of each class
# (train/, from which twinsim carves its validation tenth) and the whole
# test split (test/, 1,000 per class, so the measurement is steady). Trains
# each recipe on it with each seed and prints one markdown row a run: the
# recipe, seed, epochs trained, the epoch kept, training seconds and test
# Precision@1 against the training images (docs/benchmarks.md, "Small data").
#
#   benchmarks/small_data.sh [DATA_DIR] [N] [SEEDS] [RECIPES]
#
# DATA_DIR defaults to ../shared/data, N to 100, SEEDS to "0 1 2", RECIPES
# to "small colour" (small is what the folder gets; colour is what it got
# before small data had a recipe).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
n=${2:-100}
seeds=${3:-0 1 2}
recipes=${4:-small colour}
./dev build >&2
bin=target/release/twinsim
export TWINSIM_OFFLINE=1
folder=target/bench-data/cifar10-$n-per-class
if [[ ! -d $folder/test ]]; then
  python3 - "$data/cifar10/cifar10-jpeg.tar.gz" "$folder" "$n" <<'PY'
import collections, os, sys, tarfile
tgz, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
tmp = folder + ".tmp"
kept = collections.Counter()
with tarfile.open(tgz) as tar:
    for m in tar:
        parts = m.name.split("/")
        if not m.isfile() or len(parts) != 3:
            continue
        split, cls, _ = parts
        if split == "train" and kept[cls] >= n:
            continue
        kept[cls] += split == "train"
        tar.extract(m, tmp, filter="data")
os.rename(tmp, folder)
PY
fi
out=$(mktemp -d)
echo "| recipe | seed | epochs | kept | train s | test P@1 |"
echo "| --- | --- | --- | --- | --- | --- |"
for recipe in $recipes; do
  for seed in $seeds; do
    $bin -q --json train --dataset "$folder" --recipe "$recipe" --seed "$seed" --out "$out/$recipe-$seed" |
      python3 -c "
import json, sys
s = json.load(sys.stdin)
e = s['epochs']
print(f'| $recipe | $seed | {len(e)} | {s.get(\"kept_epoch\") or len(e)} | {e[-1][\"train_seconds\"]:.0f} | {s[\"test_precision_at_1\"]:.4f} |')"
  done
done
rm -rf "$out"
