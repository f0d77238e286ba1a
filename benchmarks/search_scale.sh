#!/usr/bin/env bash
# Gallery search at scale (docs/benchmarks.md, "Search"): twinsim's exact
# search and usearch's HNSW (crates/twinsim-index/examples/scale.rs), then
# FAISS on the same vectors (benchmarks/peers/faiss_scale.py), on random
# unit vectors and on real embeddings (the MNIST default model's, trained
# here unless RUN_DIR is given). Prints markdown tables.
#
#   benchmarks/search_scale.sh [DATA_DIR] [SIZES] [RUN_DIR]
#
# SIZES default 10000,100000,1000000 (twinsim's HNSW graph of 100,000
# random vectors takes 78 s to build on 2 cores, a million well over 15
# minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
sizes=${2:-10000,100000,1000000}
./dev build >&2
cargo build --release -p twinsim-index --example scale >&2
benchmarks/peers/setup.sh
bin=target/release/twinsim
export TWINSIM_OFFLINE=1
out=$(mktemp -d)
model=${3:-$out/model}
[ -n "${3:-}" ] || $bin -q train --data-dir "$data" --out "$model" >&2
for split in train test; do
  $bin -q embed --model "$model" --data-dir "$data" --dataset mnist:$split -o "$out/$split" >/dev/null
done
real="$out/train/embeddings.npy $out/test/embeddings.npy"
echo "twinsim, random vectors"; target/release/examples/scale "$sizes"
echo; echo "twinsim, MNIST embeddings"; target/release/examples/scale 10000,60000 $real
py=benchmarks/peers/.venv/bin/python
echo; echo "FAISS, random vectors"; $py benchmarks/peers/faiss_scale.py "$sizes" 64 256 512
echo; echo "FAISS, MNIST embeddings"; $py benchmarks/peers/faiss_scale.py 10000,60000 64 --real $real
rm -rf "$out"
