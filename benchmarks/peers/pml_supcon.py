# pytorch-metric-learning's supervised contrastive loss on a ResNet-18, the
# CIFAR-10 peer of benchmarks/speed.sh (issue 19: "a pytorch-metric-learning
# recipe, for example SupConLoss, on a ResNet-18-sized network"). The
# network is torchvision's ResNet-18 in its usual CIFAR form (a 3x3 stride-1
# stem, no max-pool) with a 128-d output as the embedding; SupConLoss at
# temperature 0.1 on shuffled batches of 256 (ten classes: every image has
# positives); SGD with Nesterov momentum 0.9 at 0.1, weight decay 5e-4;
# random 4-pixel crops (reflection padding) and mirroring; cosine similarity.
#
# Equal time: with --budget SECONDS the learning rate follows a cosine over
# the training seconds rather than the steps, and training stops when the
# budget is spent, so the peer gets exactly the time twinsim gets. Without
# it, a cosine over --epochs. Measures the training loop's wall time, then
# the evaluation protocol of common.py; prints one JSON line.
#
#   benchmarks/peers/.venv/bin/python benchmarks/peers/pml_supcon.py \
#       --data target/bench-data/cifar10-official --dataset cifar10 \
#       [--budget 900] [--epochs 30] [--seed 0] [--threads N] [--test-each-epoch] [--limit N]
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from pytorch_metric_learning import distances, losses

import common

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def resnet18(dim):
    net = torchvision.models.resnet18(num_classes=dim)
    net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return net


def augment(x, pad=4):
    """Random mirroring and crops of up to `pad` pixels: (N, 3, 32, 32) → the same."""
    n, _, h, w = x.shape
    x = torch.where((torch.rand(n) < 0.5).view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (pad,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n))
    rows = (dy.view(n, 1) + torch.arange(h)).view(n, 1, h, 1).expand(n, 3, h, w + 2 * pad)
    cropped = padded.gather(2, rows)
    cols = (dx.view(n, 1) + torch.arange(w)).view(n, 1, 1, w).expand(n, 3, h, w)
    return cropped.gather(3, cols)


def main():
    parser = common.parse_args("pytorch-metric-learning's SupConLoss on a ResNet-18 (CIFAR-10)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--budget", type=float, default=None, help="training seconds; overrides the end of --epochs")
    parser.add_argument("--limit", type=int, default=None, help="the first N training and test images (to try the script)")
    parser.set_defaults(dataset="cifar10", epochs=30)
    args = parser.parse_args()
    common.setup(args)
    xtr, ytr, xte, yte = common.load(args)
    if args.limit:
        xtr, ytr, xte, yte = xtr[: args.limit], ytr[: args.limit], xte[: args.limit], yte[: args.limit]
    xtr, xte = (xtr - MEAN) / STD, (xte - MEAN) / STD
    data = (xtr, ytr, xte, yte)
    model = resnet18(128).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    distance = distances.CosineSimilarity()
    loss_func = losses.SupConLoss(temperature=0.1, distance=distance)
    steps_per_epoch = len(xtr) // args.batch_size
    total_steps = args.epochs * steps_per_epoch
    timer, images, step, epochs = common.Timer(), 0, 0, 0
    curve = common.Curve(args, data, distance)

    def progress():
        """The fraction of training done: of the budget's seconds, or of the steps."""
        if args.budget:
            return min(1.0, (timer.seconds + time.perf_counter() - timer.start) / args.budget)
        return step / total_steps

    done = False
    while not done and epochs < args.epochs:
        model.train()
        with timer:
            order = torch.randperm(len(xtr))
            for s in range(steps_per_epoch):
                t = progress()
                if t >= 1.0:
                    done = True
                    break
                for g in optimizer.param_groups:
                    g["lr"] = 0.1 * 0.5 * (1 + math.cos(math.pi * t))
                i = order[s * args.batch_size : (s + 1) * args.batch_size]
                x = augment(xtr[i]).contiguous(memory_format=torch.channels_last)
                loss = loss_func(model(x), ytr[i])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                images += len(i)
                step += 1
        epochs += 1
        common.log(f"epoch {epochs}: last batch loss {loss.item():.4f}, {timer.seconds:.1f} s")
        curve.record(model, timer.seconds)
    args.epochs = round(step / steps_per_epoch, 2)  # the epochs trained, for the JSON line
    common.report("pml supcon", args, model, data, distance, timer.seconds, images, curve)


if __name__ == "__main__":
    main()
