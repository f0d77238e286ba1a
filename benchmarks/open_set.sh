#!/usr/bin/env bash
# Open-set recognition, the seed's "new student": a model trained on MNIST
# digits 0-4 only; digits 5-9 enrolled from 1 and from 5 training images
# per class (picked with seeds 0, 1, 2); every test image of all ten digits
# as a query. Prints one markdown row per enrolment: identification accuracy
# on 5-9 (named right), their false-reject rate, and the false-accept rate on
# 0-4 (queries of classes not enrolled that were named as one)
# (docs/benchmarks.md, "Search").
#
#   benchmarks/open_set.sh [DATA_DIR] [FARS]
#
# FARS (default "best 0.01 0.001"): the thresholds to try: the calibration
# training ends with (best accuracy on pairs of 0-4), then `twinsim
# calibrate --far F` on the same pairs.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
fars=${2:-best 0.01 0.001}
./dev build >&2
bin=target/release/twinsim
export TWINSIM_OFFLINE=1
out=$(mktemp -d)
$bin -q train --data-dir "$data" --classes 0-4 --embedding features --out "$out/model" >&2
for far in $fars; do
  model=$out/model-$far
  cp -r "$out/model" "$model"
  [ "$far" = best ] || $bin -q calibrate "$model" --data-dir "$data" --far "$far" >&2
  for n in 1 5; do
    for seed in 0 1 2; do
      $bin -q index build --model "$model" --data-dir "$data" --dataset mnist:train \
        --classes 5-9 --per-class $n --seed $seed -o "$out/new.idx" >/dev/null
      $bin -q --json identify "$out/new.idx" --data-dir "$data" --dataset mnist:test |
        python3 -c "
import json, sys
d = json.load(sys.stdin)
print(f'| {\"$far\"} | $n | $seed | {d[\"identification_accuracy\"]:.4f} | {d[\"false_reject_rate\"]:.4f} | {d[\"false_accept_rate\"]:.4f} | {d[\"accuracy\"]:.4f} |')"
    done
  done
done
rm -rf "$out"
