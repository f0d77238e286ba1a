# Shared code of the Python peers (seed_system.py, pml_triplet.py,
# pml_supcon.py, pixels.py): MNIST and Fashion-MNIST from the gzipped IDX
# files, CIFAR-10 from its official binary format, seeding, the training
# timer, the time-to-quality curve (--test-each-epoch) and the evaluation
# protocol twinsim's `evaluate` uses (docs/benchmarks.md, "Evaluation"):
#   - gallery: the 10,000 test images as queries against the 60,000 training
#     images, Precision@1 and MAP@R from pytorch-metric-learning's
#     AccuracyCalculator (k = max_bin_count, brute-force kNN, no faiss);
#   - pair ROC-AUC on 10,000 balanced random test pairs (numpy seed 0).
# Each peer prints exactly one JSON object on stdout; logs go to stderr.
# Not run by itself.
import argparse
import gzip
import json
import os
import random
import sys
import tarfile
import time

import numpy as np
import pytorch_metric_learning
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.metrics import roc_auc_score


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default="../shared/data",
                   help="folder holding mnist/*.gz and fashion-mnist/*.gz, or for cifar10 "
                        "cifar-10-binary.tar.gz (benchmarks/cifar10_official.sh builds it)")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "cifar10"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch threads [default: torch's, all cores]")
    p.add_argument("--test-each-epoch", action="store_true",
                   help="test Precision@1 after every epoch, outside the training time: the run's "
                        "time-to-quality curve, as twinsim's `train --test-each-epoch` records it")
    return p


def setup(args):
    """Threads and seeds (Python, numpy, torch)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]  # magic: 0, 0, dtype (0x08 = uint8), number of dimensions
    assert raw[:3] == b"\x00\x00\x08", f"{path}: not a uint8 IDX file"
    shape = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(data_dir, dataset="mnist"):
    """(train images, train labels, test images, test labels) of MNIST or
    Fashion-MNIST: images as float tensors N x 1 x 28 x 28 in [0, 1] (like
    ToTensor), labels int64."""
    d = os.path.join(data_dir, dataset)

    def split(name):
        x = read_idx(os.path.join(d, f"{name}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(d, f"{name}-labels-idx1-ubyte.gz"))
        return torch.from_numpy(x.astype(np.float32) / 255).unsqueeze(1), torch.from_numpy(y.astype(np.int64))

    return (*split("train"), *split("t10k"))


def load_cifar10(data_dir):
    """(train images, train labels, test images, test labels) of CIFAR-10 from
    DATA_DIR/cifar-10-binary.tar.gz, the images twinsim reads by name, in
    the same order: float tensors N x 3 x 32 x 32 in [0, 1], labels int64.
    The binary format holds raw bytes (the pickled format could run code)."""
    with tarfile.open(os.path.join(data_dir, "cifar-10-binary.tar.gz"), "r:gz") as tar:
        def split(names):
            raw = b"".join(tar.extractfile(f"cifar-10-batches-bin/{n}.bin").read() for n in names)
            records = np.frombuffer(raw, np.uint8).reshape(-1, 1 + 3 * 32 * 32)  # label, R, G, B planes
            x = records[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255
            return torch.from_numpy(x), torch.from_numpy(records[:, 0].astype(np.int64))

        return (*split([f"data_batch_{b}" for b in range(1, 6)]), *split(["test_batch"]))


def load(args):
    """The four tensors of args.dataset, from args.data."""
    if args.dataset == "cifar10":
        return load_cifar10(args.data)
    return load_mnist(args.data, args.dataset)


class Timer:
    """Accumulates wall time spent inside `with timer:` blocks."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self.start


@torch.no_grad()
def embed(model, x, batch=1000):
    model.eval()
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])


def balanced_pairs(labels, n=10_000, seed=0):
    """n pairs of distinct indices, half of the same label, half of different labels."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    same = []
    while len(same) < n // 2:
        i = rng.integers(len(labels))
        j = rng.choice(by_class[labels[i]])
        if i != j:
            same.append((i, j))
    diff = []
    while len(diff) < n - n // 2:
        i, j = rng.integers(len(labels), size=2)
        if labels[i] != labels[j]:
            diff.append((i, j))
    pairs = np.array(same + diff)
    return pairs[:, 0], pairs[:, 1], np.r_[np.ones(len(same)), np.zeros(len(diff))]


def precision_at_1(model, data, distance):
    """The gallery protocol's Precision@1 alone (the test images against the
    training images), as evaluate() measures it."""
    xtr, ytr, xte, yte = data
    calc = AccuracyCalculator(include=("precision_at_1",), k=1, knn_func=CustomKNN(distance, batch_size=1000))
    acc = calc.get_accuracy(embed(model, xte), yte, embed(model, xtr), ytr, ref_includes_query=False)
    return float(acc["precision_at_1"])


class Curve:
    """Test Precision@1 against training seconds, one point an epoch when
    --test-each-epoch asks for it (the tests run outside the timer): the
    peer's line on twinsim's time-to-quality chart."""

    def __init__(self, args, data, distance):
        self.on, self.data, self.distance = args.test_each_epoch, data, distance
        self.points = []

    def record(self, model, seconds):
        if self.on:
            self.points.append([seconds, precision_at_1(model, self.data, self.distance)])
            log(f"test Precision@1 {self.points[-1][1]:.4f} after {seconds:.1f} s of training")


def evaluate(model, data, distance):
    """The gallery protocol's P@1 and MAP@R, and pair ROC-AUC, under `distance`."""
    xtr, ytr, xte, yte = data
    train_emb, test_emb = embed(model, xtr), embed(model, xte)
    calc = AccuracyCalculator(
        include=("precision_at_1", "mean_average_precision_at_r"),
        k="max_bin_count",
        knn_func=CustomKNN(distance, batch_size=1000),
    )
    acc = calc.get_accuracy(test_emb, yte, train_emb, ytr, ref_includes_query=False)
    i, j, same = balanced_pairs(yte.numpy())
    a, b = distance.maybe_normalize(test_emb[i]), distance.maybe_normalize(test_emb[j])
    d = distance.pairwise_distance(a, b)  # elementwise: one distance (or similarity) a pair
    score = d if distance.is_inverted else -d  # higher = more alike
    return {
        "precision_at_1": float(acc["precision_at_1"]),
        "mean_average_precision_at_r": float(acc["mean_average_precision_at_r"]),
        "pair_roc_auc": float(roc_auc_score(same, score.numpy())),
    }


def report(system, args, model, data, distance, train_seconds, images, curve=None):
    """Evaluates `model` and prints the run's JSON line; `images` counts the
    training images processed (both images of a pair); `curve`, a Curve,
    adds its points when it has any."""
    log(f"{system}: trained in {train_seconds:.1f} s, evaluating")
    result = {
        "system": system,
        "seed": args.seed,
        "epochs": args.epochs,
        "train_seconds": train_seconds,
        "images_per_second": images / train_seconds,
        **evaluate(model, data, distance),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pml": pytorch_metric_learning.__version__,
    }
    if curve is not None and curve.points:
        result["curve"] = curve.points
    print(json.dumps(result), flush=True)
