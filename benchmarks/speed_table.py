#!/usr/bin/env python3
# Turns benchmarks/speed.sh's results into markdown (docs/benchmarks.md):
# one row per run (training wall time, images/s, Precision@1, MAP@R, pair
# ROC-AUC), the medians per system over its seeds, twinsim's time to test
# Precision@1 levels (MNIST 0.99 and 0.995, Fashion-MNIST 0.9 and 0.93; from its per-epoch tests), each twinsim recipe's
# ratios against each Python peer on the same dataset (training time,
# images/s, Precision@1 difference, from the medians), and the machine.
#
#   benchmarks/speed_table.py target/bench/speed-DATE.jsonl [target/bench/speed-DATE-env.json]
import json
import sys
from statistics import median


def is_peer(r):
    return r.get("kind", "peer" if r.get("pml") else "twinsim") == "peer"


def spread(values, fmt):
    """median (min-max) of values, each formatted with fmt."""
    m = median(values)
    if len(values) == 1:
        return format(m, fmt)
    return f"{m:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


METRICS = ("precision_at_1", "mean_average_precision_at_r", "pair_roc_auc")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: speed_table.py RESULTS.jsonl [ENV.json]")
    runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    systems = {}  # name -> its runs, in order of first appearance
    for r in runs:
        systems.setdefault(r["system"], []).append(r)

    print("| system | seed | epochs | train s | images/s | P@1 | MAP@R | ROC-AUC |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, rs in systems.items():
        for r in rs:
            metrics = " | ".join(f"{r[k]:.4f}" for k in METRICS)
            print(f"| {name} | {r['seed']} | {r['epochs']} | {r['train_seconds']:.0f} | "
                  f"{r['images_per_second']:.0f} | {metrics} |")

    print("\nMedians over the seeds (min-max):\n")
    print("| system | runs | train s | images/s | P@1 | MAP@R | ROC-AUC |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    med = {}
    for name, rs in systems.items():
        col = lambda k: [r[k] for r in rs]
        med[name] = {k: median(col(k)) for k in ("train_seconds", "images_per_second", *METRICS)}
        metrics = " | ".join(spread(col(k), ".4f") for k in METRICS)
        print(f"| {name} | {len(rs)} | {spread(col('train_seconds'), '.0f')} | "
              f"{spread(col('images_per_second'), '.0f')} | {metrics} |")

    ours = [n for n, rs in systems.items() if not is_peer(rs[0])]
    timed = [n for n in ours if "time_to" in systems[n][0]]
    if timed:
        print("\nTime to quality: training seconds until the first epoch whose test "
              "Precision@1 reached the level, median over the seeds (min-max).\n")
        print("| system | runs | to the lower level | to the higher level |")
        print("|---|---:|---:|---:|")
        for name in timed:
            rs = systems[name]
            cells = []
            for level in rs[0]["time_to"]:
                reached = [r["time_to"][level] for r in rs if r["time_to"][level] is not None]
                cell = spread(reached, ".1f") + " s" if reached else "never"
                if 0 < len(reached) < len(rs):
                    cell += f" ({len(rs) - len(reached)} of {len(rs)} never)"
                cells.append(f"{level}: {cell}")
            print(f"| {name} | {len(rs)} | {cells[0]} | {cells[1]} |")

    peers = [n for n, rs in systems.items() if is_peer(rs[0])]
    dataset = lambda n: systems[n][0].get("dataset", "mnist")
    # Raw pixels train nothing: no time or speed to compare, only quality.
    ratio = lambda num, den, fmt: f"{num / den:{fmt}}x" if num and den else "-"
    pairs = [(t, p) for t in ours for p in peers if dataset(t) == dataset(p)]
    if pairs:
        print("\ntwinsim against each peer, from the medians: *faster* is the peer's training "
              "time over twinsim's, *images/s* twinsim's over the peer's, the metrics twinsim's "
              "minus the peer's.\n")
        print("| twinsim recipe | peer | faster | images/s | P@1 | MAP@R | ROC-AUC |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for t, p in pairs:
            a, b = med[t], med[p]
            diffs = " | ".join(f"{a[k] - b[k]:+.4f}" for k in METRICS)
            print(f"| {t} | {p} | {ratio(b['train_seconds'], a['train_seconds'], '.2f')} | "
                  f"{ratio(a['images_per_second'], b['images_per_second'], '.2f')} | {diffs} |")

    if len(sys.argv) == 3:
        env = json.load(open(sys.argv[2]))
        print("\nEnvironment:\n")
        for k, v in env.items():
            print(f"- {k}: {v}")


if __name__ == "__main__":
    main()
