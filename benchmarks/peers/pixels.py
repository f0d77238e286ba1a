# Raw pixels as the embedding, a peer for benchmarks/speed.sh: no training;
# each image is its pixel values in [0, 1] (784, or 3072 on CIFAR-10), compared by Euclidean
# distance, on the protocol of common.py. The floor every trained model must
# clear (on Fashion-MNIST the digits recipe once barely did: 0.8510 against
# 0.8497, docs/benchmarks.md "Beyond digits"). Prints one JSON line.
#
#   benchmarks/peers/.venv/bin/python benchmarks/peers/pixels.py [--data ../shared/data] [--dataset fashion-mnist]
import json

import pytorch_metric_learning
import torch
from pytorch_metric_learning import distances

import common


def main():
    args = common.parse_args("k-nearest neighbours on raw pixels").parse_args()
    common.setup(args)
    data = common.load(args)
    result = {
        "system": "pixels",
        "seed": args.seed,
        "epochs": 0,
        "train_seconds": 0.0,
        "images_per_second": 0.0,
        **common.evaluate(torch.nn.Flatten(), data, distances.LpDistance()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pml": pytorch_metric_learning.__version__,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
