"""How much an unlabelled gallery of new classes helps a model verify them.

Reads the embeddings `twinsim embed` wrote for a training and a test split,
keeps the classes given (those the model never saw), and measures pair
ROC-AUC on balanced random test pairs: plain cosine, then with the gallery
context `twinsim evaluate --dba KD --query-expansion KQ` adds (the same
computation as crates/twinsim-learn/src/expansion.rs), for galleries of
several sizes drawn from the training split. The sizes show how many
unlabelled images of the new classes the context needs, and which
neighbour counts suit a gallery of that size.

    twinsim embed --model RUN --dataset mnist:train -o EMB-train
    twinsim embed --model RUN --dataset mnist:test -o EMB-test
    python benchmarks/gallery_context.py EMB 5-9

Needs numpy and torch (the project's .venv has both).
"""
import sys

import numpy as np
import torch

F = torch.nn.functional.normalize
PAIRS = 10_000
# (gallery size, DBA neighbours, query-expansion neighbours)
GRID = [(None, 400, 50), (None, 200, 50), (5000, 200, 20), (5000, 66, 20),
        (1000, 40, 20), (1000, 13, 5), (200, 8, 4)]


def load(prefix, split, lo, hi):
    e = np.load(f"{prefix}-{split}/embeddings.npy")
    l = np.load(f"{prefix}-{split}/labels.npy")
    keep = (l >= lo) & (l <= hi)
    return F(torch.tensor(e[keep]), dim=1), torch.tensor(l[keep])


def balanced_pairs(labels, rng):
    same, diff, n = [], [], len(labels)
    while len(same) < PAIRS // 2 or len(diff) < PAIRS // 2:
        i, j = rng.integers(0, n, 2)
        if i == j:
            continue
        bucket = same if labels[i] == labels[j] else diff
        if len(bucket) < PAIRS // 2:
            bucket.append((i, j))
    return torch.tensor(same + diff)


def auc(scores):
    order = np.argsort(scores)
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    p = PAIRS // 2
    return (ranks[:p].sum() - p * (p + 1) / 2) / (p * p)


def weighted_neighbours(x, gallery, values, k):
    k = min(k, len(gallery))
    out = []
    for c in range(0, len(x), 1024):
        block = x[c:c + 1024]
        w, i = (block @ gallery.T).topk(k, dim=1)
        out.append((w.clamp(min=0).unsqueeze(2) * values[i]).sum(1))
    return torch.cat(out)


def main():
    prefix, classes = sys.argv[1], sys.argv[2]
    lo, hi = (int(c) for c in classes.split("-"))
    gallery, _ = load(prefix, "train", lo, hi)
    queries, labels = load(prefix, "test", lo, hi)
    pairs = balanced_pairs(labels.numpy(), np.random.default_rng(0))

    def score(x):
        return (x[pairs[:, 0]] * x[pairs[:, 1]]).sum(1).numpy()

    print(f"{len(queries)} test images of {classes}, {PAIRS} pairs; "
          f"plain cosine ROC-AUC {auc(score(queries)):.4f}")
    print("| gallery | DBA k | query k | ROC-AUC |")
    print("|---:|---:|---:|---:|")
    for size, kd, kq in GRID:
        g = gallery
        if size is not None:
            pick = torch.randperm(len(gallery), generator=torch.Generator().manual_seed(0))[:size]
            g = gallery[pick]
        augmented = F(weighted_neighbours(g, g, g, kd), dim=1)
        expanded = F(queries + weighted_neighbours(queries, g, augmented, kq), dim=1)
        print(f"| {len(g)} | {kd} | {kq} | {auc(score(expanded)):.4f} |", flush=True)


if __name__ == "__main__":
    main()
