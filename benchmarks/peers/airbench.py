"""airbench94 (Keller Jordan, 2024: 94% CIFAR-10 accuracy in about 3 s on an
A100) re-implemented from its published recipe, as the peer of issue 5's GPU
target, on the data twinsim trains on (the CIFAR-10 JPEG copy, unpacked into
an image folder), measured both ways:
  - accuracy: its classifier on the test images, logits averaged over the
    image and its mirror image;
  - twinsim's metric: Precision@1 of the test images as queries against the
    training images as gallery, cosine on the pooled 256-d features (the
    layer before the classifier), averaged over the mirror image too.
Training time excludes loading the images; it includes the whitening fit.

    python3 benchmarks/peers/airbench.py CIFAR_FOLDER [--epochs 9.9] [--seed 0] [--head ce|nsm]
    python3 benchmarks/peers/airbench.py --data DIR --dataset cifar10 [--test-each-epoch] ...

The second form reads cifar-10-binary.tar.gz from DIR (the images twinsim
reads by name) and adds benchmarks/speed.sh's protocol: MAP@R and pair
ROC-AUC on the same features, and with --test-each-epoch the
time-to-quality curve (test Precision@1 after each epoch, outside the
training seconds).

--head nsm swaps the classifier for twinsim's normalized-softmax head (a
linear 256 -> 128 embedding, cosine to learned class proxies over
temperature 0.05, no label smoothing), to tell the recipe from the loss.
Prints one JSON object. Meant for a CUDA GPU (bf16 autocast); runs, slowly, on the CPU.
"""
import argparse
import json
import math
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

DEV = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU only to try the script
HYP = dict(batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0,
           label_smoothing=0.2, whiten_bias_epochs=3, widths=(64, 256, 256), bn_momentum=0.6,
           scaling=1 / 9, translate=2)


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def decode(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def load_split(root, split, classes):
    """uint8 (N, 32, 32, 3) and int64 labels of ROOT/SPLIT/CLASS/*, cached as .npz in /tmp."""
    cache = f"/tmp/airbench-{split}.npz"
    if os.path.exists(cache):
        z = np.load(cache)
        return z["x"], z["y"]
    files, labels = [], []
    for i, c in enumerate(classes):
        names = sorted(os.listdir(os.path.join(root, split, c)))
        files += [os.path.join(root, split, c, n) for n in names]
        labels += [i] * len(names)
    with Pool() as pool:
        x = np.stack(pool.map(decode, files, chunksize=512))
    y = np.array(labels, dtype=np.int64)
    np.savez(cache, x=x, y=y)
    return x, y


class BatchNorm(nn.BatchNorm2d):
    """Scale fixed at 1, only the shift trained (airbench)."""

    def __init__(self, n):
        super().__init__(n, eps=1e-12, momentum=1 - HYP["bn_momentum"])
        self.weight.requires_grad = False


class Conv(nn.Conv2d):
    """3x3 'same' convolution started as the identity on its first C_in filters."""

    def __init__(self, cin, cout):
        super().__init__(cin, cout, 3, padding="same", bias=False)
        with torch.no_grad():
            w = self.weight
            nn.init.dirac_(w[: w.size(1)])


class Group(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.c1, self.n1 = Conv(cin, cout), BatchNorm(cout)
        self.c2, self.n2 = Conv(cout, cout), BatchNorm(cout)

    def forward(self, x):
        x = F.gelu(self.n1(F.max_pool2d(self.c1(x), 2)))
        return F.gelu(self.n2(self.c2(x)))


class Net(nn.Module):
    def __init__(self, head):
        super().__init__()
        w1, w2, w3 = HYP["widths"]
        self.whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad = False
        self.groups = nn.Sequential(Group(24, w1), Group(w1, w2), Group(w2, w3))
        self.head = head
        if head == "ce":
            self.fc = nn.Linear(w3, 10, bias=False)
        else:
            self.fc = nn.Linear(w3, 128)
            self.proxies = nn.Parameter(torch.randn(128, 10))

    def features(self, x):
        x = self.groups(F.gelu(self.whiten(x)))
        return x.amax((2, 3))

    def forward(self, x):
        h = self.features(x)
        if self.head == "ce":
            return self.fc(h) * HYP["scaling"]
        e = F.normalize(self.fc(h), dim=1)
        return e @ F.normalize(self.proxies, dim=0) / 0.05


def fit_whitening(layer, x, eps=5e-4):
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).transpose(1, 3).reshape(-1, 3, 2, 2).float()
    flat = patches.view(len(patches), -1)
    values, vectors = torch.linalg.eigh(flat.T @ flat / len(flat), UPLO="U")
    values, vectors = values.flip(0).view(-1, 1, 1, 1), vectors.T.reshape(12, 3, 2, 2).flip(0)
    scaled = vectors / torch.sqrt(values + eps)
    layer.weight.data[:] = torch.cat((scaled, -scaled))


def augment(x, r):
    """Random flips and translations of up to r pixels (reflection padding)."""
    n = len(x)
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    padded = F.pad(x, (r,) * 4, mode="reflect")
    dy = torch.randint(0, 2 * r + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * r + 1, (n,), device=x.device)
    return crop(padded, dy, dx)


def crop(padded, dy, dx):
    n, c, h, w = padded.shape
    ys = dy.view(n, 1, 1) + torch.arange(32, device=padded.device).view(1, 32, 1)
    xs = dx.view(n, 1, 1) + torch.arange(32, device=padded.device).view(1, 1, 32)
    b = torch.arange(n, device=padded.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[b, ys, xs].permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def train(x, y, epochs, head, seed, on_epoch=None):
    """The trained network and its training seconds; `on_epoch(net, seconds)`
    runs after each whole epoch, outside the seconds counted."""
    torch.manual_seed(seed)
    net = Net(head).to(DEV).to(memory_format=torch.channels_last)
    bs, n = HYP["batch_size"], len(x)
    steps_per_epoch = n // bs
    total = math.ceil(epochs * steps_per_epoch)
    kilostep = 1024 * (1 + 1 / (1 - HYP["momentum"]))
    lr = HYP["lr"] / kilostep
    wd = HYP["weight_decay"] * bs / kilostep
    lr_b = lr * HYP["bias_scaler"]
    biases = [p for name, p in net.named_parameters() if "n1.bias" in name or "n2.bias" in name]
    others = [p for name, p in net.named_parameters() if p.requires_grad and all(p is not b for b in biases)]
    opt = torch.optim.SGD([dict(params=biases, lr=lr_b, weight_decay=wd / lr_b),
                           dict(params=others, lr=lr, weight_decay=wd / lr)],
                          momentum=HYP["momentum"], nesterov=True)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    schedule = np.interp(np.arange(total + 1), [0, int(0.2 * total), total], [0.2, 1, 0])
    alpha = 0.95 ** 5 * (np.arange(total + 1) / total) ** 3
    ema = [p.detach().clone() for p in net.state_dict().values()]
    sync()
    t0, paused = time.perf_counter(), 0.0
    fit_whitening(net.whiten, x[:5000])
    step = 0
    while step < total:
        perm = torch.randperm(n, device=x.device)
        for i in range(steps_per_epoch):
            if step >= total:
                break
            if step == HYP["whiten_bias_epochs"] * steps_per_epoch:
                net.whiten.bias.requires_grad = False
            idx = perm[i * bs:(i + 1) * bs]
            xb = augment(x[idx], HYP["translate"])
            with torch.autocast(DEV, dtype=torch.bfloat16):
                out = net(xb)
            smoothing = HYP["label_smoothing"] if head == "ce" else 0.0
            loss = F.cross_entropy(out.float(), y[idx], label_smoothing=smoothing, reduction="sum" if head == "ce" else "mean")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * schedule[step]
            opt.step()
            step += 1
            if step % 5 == 0:
                with torch.no_grad():
                    for e, p in zip(ema, net.state_dict().values()):
                        if p.dtype.is_floating_point:
                            e.lerp_(p, 1 - alpha[step])
                            p.copy_(e)
        if on_epoch and step % steps_per_epoch == 0:
            sync()
            pause = time.perf_counter()
            on_epoch(net, pause - t0 - paused)
            net.train()
            paused += time.perf_counter() - pause
    sync()
    return net, time.perf_counter() - t0 - paused


@torch.no_grad()
def embed(net, x):
    net.eval()
    feats, logits = [], []
    for chunk in x.split(2000):
        with torch.autocast(DEV, dtype=torch.bfloat16):
            f = net.features(chunk) + net.features(chunk.flip(-1))
            o = net(chunk) + net(chunk.flip(-1))
        feats.append(F.normalize(f.float(), dim=1))
        logits.append(o.float())
    return torch.cat(feats), torch.cat(logits)


class Mirrored(nn.Module):
    """The embedding embed() measures, as a module for common.evaluate: the
    pooled features of an image and its mirror image, summed, L2-normalised."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        with torch.autocast(DEV, dtype=torch.bfloat16):
            f = self.net.features(x) + self.net.features(x.flip(-1))
        return F.normalize(f.float(), dim=1)


def precision_at_1(q, qy, g, gy):
    hits = 0
    for i in range(0, len(q), 2000):
        nearest = (q[i:i + 2000] @ g.T).argmax(1)
        hits += (gy[nearest] == qy[i:i + 2000]).sum().item()
    return hits / len(q)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder", nargs="?", help="CIFAR-10 as an image folder (FOLDER/train/CLASS/*)")
    p.add_argument("--data", help="instead of FOLDER: a folder holding cifar-10-binary.tar.gz "
                                  "(benchmarks/cifar10_official.sh), as benchmarks/speed.sh passes it")
    p.add_argument("--dataset", choices=["cifar10"], default="cifar10")
    p.add_argument("--test-each-epoch", action="store_true",
                   help="test Precision@1 after each whole epoch, outside the training time: "
                        "the time-to-quality curve")
    p.add_argument("--epochs", type=float, default=9.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--head", choices=["ce", "nsm"], default="ce")
    p.add_argument("--limit", type=int, default=None, help="use the first N training and test images (to try the script)")
    a = p.parse_args()
    if a.data:
        import common  # the peers' shared loader; it needs their virtual environment

        as_uint8 = lambda t: (t * 255).round().byte().permute(0, 2, 3, 1).numpy()
        xtr, ytr, xte, yte = common.load_cifar10(a.data)
        xtr, ytr, xte, yte = as_uint8(xtr), ytr.numpy(), as_uint8(xte), yte.numpy()
    elif a.folder:
        classes = sorted(os.listdir(os.path.join(a.folder, "train")))
        (xtr, ytr), (xte, yte) = (load_split(a.folder, s, classes) for s in ("train", "test"))
    else:
        p.error("give FOLDER or --data")
    if a.limit:
        rng = np.random.default_rng(0)
        tr, te = rng.permutation(len(xtr))[:a.limit], rng.permutation(len(xte))[:a.limit]
        xtr, ytr, xte, yte = xtr[tr], ytr[tr], xte[te], yte[te]
    mean = xtr.reshape(-1, 3).mean(0) / 255
    std = xtr.reshape(-1, 3).std(0) / 255

    def prep(v):
        t = torch.tensor(v, device=DEV).permute(0, 3, 1, 2).float() / 255
        t = (t - torch.tensor(mean, device=DEV).view(1, 3, 1, 1).float()) / torch.tensor(std, device=DEV).view(1, 3, 1, 1).float()
        return t.contiguous(memory_format=torch.channels_last)

    xtr_t, xte_t = prep(xtr), prep(xte)
    ytr_t, yte_t = torch.tensor(ytr, device=DEV), torch.tensor(yte, device=DEV)
    train(xtr_t[:2048], ytr_t[:2048], 0.5, a.head, a.seed)  # warm-up: cuDNN's choices, not timed
    curve = []

    def test(net, seconds):
        curve.append([seconds, precision_at_1(embed(net, xte_t)[0], yte_t, embed(net, xtr_t)[0], ytr_t)])
        print(f"test Precision@1 {curve[-1][1]:.4f} after {seconds:.1f} s of training", file=sys.stderr)

    net, seconds = train(xtr_t, ytr_t, a.epochs, a.head, a.seed, test if a.test_each_epoch else None)
    g, _ = embed(net, xtr_t)
    q, logits = embed(net, xte_t)
    result = {
        "system": "airbench94", "head": a.head, "seed": a.seed, "epochs": a.epochs,
        "train_seconds": round(seconds, 3), "images_per_second": a.epochs * len(xtr_t) / seconds,
        "accuracy": (logits.argmax(1) == yte_t).float().mean().item(),
        "precision_at_1": precision_at_1(q, yte_t, g, ytr_t), "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name() if DEV == "cuda" else "cpu",
    }
    if a.data:  # benchmarks/speed.sh's protocol: MAP@R and pair ROC-AUC too, on the same features
        from pytorch_metric_learning import distances

        result.update(common.evaluate(Mirrored(net), (xtr_t, ytr_t, xte_t, yte_t), distances.CosineSimilarity()))
    if curve:
        result["curve"] = curve
    print(json.dumps(result))

if __name__ == "__main__":
    main()
