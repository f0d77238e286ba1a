# pytorch-metric-learning's MNIST recipe, a peer for benchmarks/speed.sh: its
# example examples/notebooks/TripletMarginLossMNIST.ipynb (the PyTorch-examples
# MNIST net, 128-d fc1 output as the embedding; Normalize(0.1307, 0.3081);
# Adam at 0.01; shuffled batches; cosine similarity; TripletMarginLoss with
# margin 0.2 and ThresholdReducer(low=0) on the triplets of a semi-hard
# TripletMarginMiner). Batch 256 as the benchmark issue states (the notebook's
# current revision uses 64; --batch-size changes it). Measures the training
# loop's wall time and images/s, then the evaluation protocol of common.py
# under cosine similarity; prints one JSON line.
#
#   benchmarks/peers/.venv/bin/python benchmarks/peers/pml_triplet.py \
#       [--data ../shared/data] [--seed 0] [--epochs 1] [--threads N] [--batch-size 256] [--test-each-epoch]
import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_metric_learning import distances, losses, miners, reducers

import common


class Net(nn.Module):  # the example's, from pytorch/examples mnist/main.py
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout2d(0.25)
        self.fc1 = nn.Linear(9216, 128)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        return self.fc1(x)


def main():
    parser = common.parse_args("pytorch-metric-learning's TripletMarginLoss MNIST example")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    common.setup(args)
    xtr, ytr, xte, yte = common.load_mnist(args.data, args.dataset)
    xtr, xte = (xtr - 0.1307) / 0.3081, (xte - 0.1307) / 0.3081
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    distance = distances.CosineSimilarity()
    reducer = reducers.ThresholdReducer(low=0)
    loss_func = losses.TripletMarginLoss(margin=0.2, distance=distance, reducer=reducer)
    mining_func = miners.TripletMarginMiner(margin=0.2, distance=distance, type_of_triplets="semihard")
    timer, images = common.Timer(), 0
    curve = common.Curve(args, (xtr, ytr, xte, yte), distance)
    for epoch in range(args.epochs):
        model.train()
        with timer:
            order = torch.randperm(len(xtr))
            for s in range(0, len(xtr), args.batch_size):
                i = order[s : s + args.batch_size]
                data, labels = xtr[i], ytr[i]
                optimizer.zero_grad()
                embeddings = model(data)
                indices_tuple = mining_func(embeddings, labels)
                loss = loss_func(embeddings, labels, indices_tuple)
                loss.backward()
                optimizer.step()
                images += len(i)
        common.log(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}, "
                   f"{mining_func.num_triplets} triplets mined, {timer.seconds:.1f} s")
        curve.record(model, timer.seconds)
    common.report("pml", args, model, (xtr, ytr, xte, yte), distance, timer.seconds, images, curve)


if __name__ == "__main__":
    main()
