#!/usr/bin/env bash
# Load on `twinsim serve` with the MNIST model, from a second process on
# loopback: /v1/compare and /v1/search at fixed request rates for a fixed
# time each (the load example: open loop, latency from each request's due
# time), one after the other; prints one JSON line per run
# (docs/benchmarks.md, "Serving").
#
#   benchmarks/serve_load.sh RUN_DIR [RATES] [SECONDS] [DATA_DIR]
#
# RUN_DIR is a trained MNIST run (twinsim train); an index of the 10,000
# MNIST test images is built beside the results. RATES defaults to
# "50 100 200" requests per second, SECONDS to 30, DATA_DIR to
# ../shared/data. Results go to target/bench/serve-DATE.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

run_dir=$1
rates=${2:-50 100 200}
seconds=${3:-30}
data=${4:-../shared/data}
bin=target/release/twinsim
out=target/bench/serve-$(date +%F)
mkdir -p "$out"
cargo build --release -q -p twinsim-serve --example load
load=target/release/examples/load

index=$out/mnist-test.tsi
[ -f "$index" ] || "$bin" --data-dir "$data" index build --model "$run_dir" --dataset mnist:test -o "$index" --quiet
port=18765
"$bin" --data-dir "$data" serve --model "$run_dir" --index "$index" --port $port > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
until curl -sf "http://127.0.0.1:$port/v1/health" > /dev/null; do sleep 0.2; done

digits=examples/digits
for rate in $rates; do
  "$load" 127.0.0.1:$port /v1/compare "$rate" "$seconds" a=$digits/seven-a.png b=$digits/two.png | tee -a "$out.jsonl"
  "$load" 127.0.0.1:$port /v1/search "$rate" "$seconds" image=$digits/seven-a.png k:8 | tee -a "$out.jsonl"
done
