#!/usr/bin/env bash
# CIFAR-10 in its official formats for the benchmarks, built once from the
# shared JPEG copy by that copy's own script into
# target/bench-data/cifar10-official; prints that folder (a --data-dir for
# twinsim). Measures nothing.
#
#   benchmarks/cifar10_official.sh [DATA_DIR]    (default ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data}
cifar=target/bench-data/cifar10-official
if [[ ! -f $cifar/cifar-10-binary.tar.gz ]]; then
  "${TWINSIM_PYTHON:-.venv/bin/python}" "$data/cifar10/build_official_formats.py" "$cifar" >/dev/null
fi
echo "$cifar"
