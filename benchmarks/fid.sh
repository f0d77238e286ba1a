#!/usr/bin/env bash
# FID and KID on a trained MNIST model's features (docs/benchmarks.md,
# "Set similarity"): MNIST train against test (the same distribution),
# MNIST test against Fashion-MNIST test (another), and MNIST test against
# copies of itself with growing Gaussian pixel noise (the distance must
# grow with the noise). Prints a markdown table; the noise rows also go to
# OUT.csv and, drawn, to OUT.png when OUT.csv is given.
#
#   benchmarks/fid.sh [DATA_DIR] [RUN_DIR] [OUT.csv]
#
# RUN_DIR: a model trained on MNIST [default: train one with the defaults].
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
./dev build >&2
bin=target/release/twinsim
export TWINSIM_OFFLINE=1
out=$(mktemp -d)
model=${2:-$out/model}
[ -n "${2:-}" ] || $bin -q train --data-dir "$data" --out "$model" >&2
csv=${3:-$out/noise.csv}
row() { # name, A, B
  local t0 t1
  t0=$(date +%s.%N)
  $bin -q --json fid "$2" "$3" --model "$model" --data-dir "$data" > "$out/fid.json"
  t1=$(date +%s.%N)
  python3 - "$1" "$out/fid.json" "$t0" "$t1" <<'PY'
import json, sys
name, path, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
d = json.load(open(path))
print(f"| {name} | {d['n_a']} | {d['n_b']} | {d['fid']:.6f} | {d['kid']:.6f} ± {d['kid_std']:.6f} | {t1 - t0:.1f} |")
PY
}
echo "| sets | images A | images B | FID | KID ± std | wall s |"
echo "|---|---:|---:|---:|---:|---:|"
row "MNIST train / MNIST test" mnist:train mnist:test
row "MNIST test / Fashion-MNIST test" mnist:test fashion-mnist:test
.venv/bin/python - "$data/mnist/t10k-images-idx3-ubyte.gz" "$out/noisy" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
x = np.frombuffer(gzip.open(sys.argv[1]).read(), np.uint8, offset=16).reshape(-1, 28, 28)
rng = np.random.default_rng(0)
for sigma in (0, 8, 16, 32, 64, 128):
    d = f"{sys.argv[2]}/{sigma}"
    os.makedirs(d)
    noisy = np.clip(x.astype(np.float64) + rng.normal(0, sigma, x.shape), 0, 255).round().astype(np.uint8)
    for i, img in enumerate(noisy):
        Image.fromarray(img).save(f"{d}/{i:05d}.png")
PY
echo "noise sigma,FID,KID" > "$csv"
for sigma in 0 8 16 32 64 128; do
  line=$(row "MNIST test / the same + noise σ $sigma" mnist:test "$out/noisy/$sigma")
  echo "$line"
  echo "$line" | awk -F'|' -v s="$sigma" '{split($6, k, " "); gsub(/ /, "", $5); print s "," $5 "," k[1]}' >> "$csv"
done
if [ -n "${3:-}" ]; then
  cargo run -q --release -p twinsim-report --example line_csv -- "$csv" "${csv%.csv}.png" \
    "FID and KID of MNIST test against itself with Gaussian pixel noise" "distance (model features)"
fi
rm -rf "$out"
