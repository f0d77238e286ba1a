# The seed's system (../shared/seed/000_025d407312be9be9.txt) as its text
# writes it, a peer for benchmarks/speed.sh: its Siamese network (no
# activations, 2-d output), its contrastive loss with margin 5 on random pairs
# from two shuffles of MNIST's training images (y = 1 when the labels differ),
# 128 pairs a batch, Adam at 1e-3, pixels in [0, 1] with no normalisation.
# Measures the training loop's wall time and images/s (both images of a pair
# count), then the evaluation protocol of common.py under euclidean distance
# on the 2-d output; prints one JSON line.
#
#   benchmarks/peers/.venv/bin/python benchmarks/peers/seed_system.py \
#       [--data ../shared/data] [--seed 0] [--epochs 1] [--threads N]
import torch
import torch.nn as nn
import torch.nn.functional as F
from pytorch_metric_learning.distances import LpDistance

import common


class Siamese(nn.Module):  # the seed's code, verbatim
    def __init__(self):
        super(Siamese, self).__init__()
        self.c1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.c2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.c3 = nn.Conv2d(64, 128, kernel_size=3, padding=0)
        self.bn3 = nn.BatchNorm2d(128)

        self.fc4 = nn.Linear(128, 64)
        self.bn4 = nn.BatchNorm1d(64)
        self.fc5 = nn.Linear(64, 2)

    def forward(self, x):
        h = F.max_pool2d(self.bn1(self.c1(x)), 2)
        h = F.max_pool2d(self.bn2(self.c2(h)), 2)
        h = F.avg_pool2d(self.bn3(self.c3(h)), 5)

        h = h.view(h.size(0), -1)
        h = self.bn4(self.fc4(h))
        return self.fc5(h)


def contractive_loss(o1, o2, y):  # the seed's code, verbatim
    g, margin = F.pairwise_distance(o1, o2), 5.0
    loss = (1 - y) * (g**2) + y * (torch.clamp(margin - g, min=0) ** 2)
    return torch.mean(loss)


def main():
    args = common.parse_args("The seed's Siamese network and contrastive loss on MNIST").parse_args()
    common.setup(args)
    data = xtr, ytr, _, _ = common.load_mnist(args.data, args.dataset)
    model = Siamese()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    timer, images, batch = common.Timer(), 0, 128
    for epoch in range(args.epochs):
        model.train()
        with timer:
            p1, p2 = torch.randperm(len(xtr)), torch.randperm(len(xtr))
            for s in range(0, len(xtr), batch):
                i, j = p1[s : s + batch], p2[s : s + batch]
                y = (ytr[i] != ytr[j]).float()
                loss = contractive_loss(model(xtr[i]), model(xtr[j]), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                images += 2 * len(i)
        common.log(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}, {timer.seconds:.1f} s")
    common.report("seed", args, model, data, LpDistance(normalize_embeddings=False), timer.seconds, images)


if __name__ == "__main__":
    main()
