#!/usr/bin/env bash
# Near-duplicates on MNIST: the first 300 test digits as PNG plus a copy of
# each enlarged to 56x56 and saved as JPEG (quality 75), i.e. 300 known
# duplicate pairs among 600 images. For a model trained with the defaults it
# prints (1) how the model's embeddings alone rank a copy against the
# nearest other digit, and (2) what `twinsim dedup` finds at several
# thresholds: duplicate pairs found, and groups that mix different digits
# (docs/benchmarks.md, "Search").
#
#   benchmarks/dedup_mnist.sh [DATA_DIR] [RUN_DIR]
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
py=.venv/bin/python
"$py" - "$data/mnist/t10k-images-idx3-ubyte.gz" "$out/photos" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
raw = gzip.open(sys.argv[1]).read()
x = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
for sub in ("png", "jpg"):
    os.makedirs(f"{sys.argv[2]}/{sub}", exist_ok=True)
for i in range(300):
    Image.fromarray(x[i]).save(f"{sys.argv[2]}/png/{i:04d}.png")
    Image.fromarray(x[i]).resize((56, 56), Image.BILINEAR).save(f"{sys.argv[2]}/jpg/{i:04d}.jpg", quality=75)
PY
for sub in png jpg; do
  $bin -q embed --model "$model" "$out/photos/$sub"/* -o "$out/emb-$sub" >/dev/null
done
"$py" - "$out" <<'PY'
import sys
import numpy as np
out = sys.argv[1]
unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)
a, b = (unit(np.load(f"{out}/emb-{s}/embeddings.npy")) for s in ("png", "jpg"))
copy = (a * b).sum(1)
s = a @ a.T
np.fill_diagonal(s, -1)
other = s.max(1)
print(f"embedding cosine, digit and its JPEG copy: p1 {np.percentile(copy, 1):.4f}, p5 {np.percentile(copy, 5):.4f}, median {np.median(copy):.4f}")
print(f"embedding cosine, digit and its nearest other digit: median {np.median(other):.4f}, p95 {np.percentile(other, 95):.4f}")
print(f"digits whose nearest other digit is closer than their copy: {(other > copy).mean():.3f}")
PY
echo "| --threshold | --pixel-threshold | groups | copy pairs found (of 300) | groups mixing digits (sizes) |"
echo "|---:|---:|---:|---:|---|"
for t in "0.9 0.95" "-1 0.95" "0.99 0.95" "0.9 0.9"; do
  set -- $t
  $bin -q --json dedup "$out/photos" --model "$model" --threshold="$1" --pixel-threshold="$2" |
    python3 -c "
import json, sys
g = json.load(sys.stdin)['groups']
stem = lambda p: p.rsplit('/', 1)[1][:4]
pure = [x for x in g if len({stem(p) for p in x}) == 1]
mixed = [len(x) for x in g if len({stem(p) for p in x}) > 1]
print(f'| $1 | $2 | {len(g)} | {len(pure)} | {len(mixed)} {mixed} |')"
done
rm -rf "$out"
