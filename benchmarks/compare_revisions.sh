#!/usr/bin/env bash
# What a change bought: one-epoch training time of two git revisions of
# twinsim, run alternately (old, new, old, new, ...) so the machine's noise
# falls on both, with medians and their ratio (docs/benchmarks.md, "What each
# change bought").
#
#   benchmarks/compare_revisions.sh OLD_REV NEW_REV RUNS [TRAIN ARGS...]
#
# e.g. benchmarks/compare_revisions.sh 0fb7c39 3f653bd 3 --arch cnn --augment none
# Each revision is checked out in turn in one git worktree,
# target/compare/tree, and built (release) with its own target directory,
# target/compare/target: a worktree sharing the repository's target
# directory would be taken for the already-built sources (cargo finds their
# build records under the same relative paths). The first build compiles the
# dependencies once. Runs train one epoch on MNIST from ../shared/data (TWINSIM_SHARED_DATA
# overrides) and report the epoch's wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 runs=$3
shift 3
data=${TWINSIM_SHARED_DATA:-../shared/data}
work=target/compare
mkdir -p "$work"
source scripts/setup.sh >/dev/null
export TWINSIM_OFFLINE=1
tree=$work/tree
[[ -d $tree ]] || git worktree add --detach "$tree" HEAD >/dev/null

binary() { # rev → path of its twinsim binary
  local rev=$1 dir="$work/bin-$1"
  if [[ ! -x $dir/twinsim ]]; then
    git -C "$tree" checkout -q --detach "$rev"
    (cd "$tree" && CARGO_TARGET_DIR=../target cargo build --release -q -p twinsim)
    mkdir -p "$dir"
    # Since the launcher split, twinsim execs twinsim-core beside it.
    cp "$work/target/release/twinsim" "$dir/"
    [[ ! -x $work/target/release/twinsim-core ]] || cp "$work/target/release/twinsim-core" "$dir/"
  fi
  echo "$dir/twinsim"
}

epoch_seconds() { # binary → seconds of one training epoch
  local out
  out=$(mktemp -d)
  "$1" -q train --data-dir "$data" --epochs 1 --out "$out/run" "${@:2}" >/dev/null
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["epochs"][0]["epoch_seconds"])' "$out/run/summary.json"
  rm -rf "$out"
}

old_bin=$(binary "$old")
new_bin=$(binary "$new")
old_times=() new_times=()
for ((i = 1; i <= runs; i++)); do
  old_times+=("$(epoch_seconds "$old_bin" "$@")")
  new_times+=("$(epoch_seconds "$new_bin" "$@")")
done
python3 - "$old" "$new" "${old_times[*]}" "${new_times[*]}" "$*" <<'PY'
import statistics, sys
old, new, a, b, args = sys.argv[1:]
a, b = [float(x) for x in a.split()], [float(x) for x in b.split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"| `{args}` | {len(a)} | {ma:.1f} ({min(a):.1f}-{max(a):.1f}) | {mb:.1f} ({min(b):.1f}-{max(b):.1f}) | {ma / mb:.2f} |")
PY
