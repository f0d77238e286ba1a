"""Which embedding tells apart digits a model never trained on: a sweep of
recipes (in PyTorch, for speed of trying) behind twinsim's `--embedding`.

    .venv/bin/python benchmarks/class_disjoint_sweep.py MNIST_DIR OUT.jsonl [NAME...] [--tiny]

MNIST_DIR holds the four IDX .gz files (../shared/data/mnist). Each
configuration (all of CONFIGS, or those NAMEd) trains twinsim's cnn layout
(conv-pool-BN-ReLU x3, conv-BN-ReLU, average pool, linear head) on the
training images of digits 0-4, then measures on 5-9: pair ROC-AUC on 10,000
balanced random pairs of test images (cosine), and Precision@1 of the test
images against the training images. For each of these embeddings:
  z          the head's output (what twinsim embeds by default)
  h          the pooled features before the head
  f          the last feature map, flattened
  m          the pooled features of the last two stages, concatenated
  hw/hw2/hw1 h whitened with the statistics of 20,000 training images of
             0-4, shrinkage 1e-3 / 1e-2 / 1e-1 of the mean eigenvalue (likewise
             fw*, mw*)
  hn1        h whitened with the statistics of the training images of 5-9
             instead (their labels unused; shrinkage 1e-1), as a gallery of
             new classes could refit it
  hw1-asnorm hw1's pair scores with adaptive score normalisation (speaker
             verification's AS-norm): each side's score standardised by its
             top-200 similarities to a cohort of other 0-4 training images
plus Precision@1 on the digits trained on (test 0-4 against train 0-4) for z
and hw2. One JSON line per configuration goes to OUT.jsonl and stdout. Runs on
a GPU when torch sees one (bf16 autocast), else on the CPU (slow; --tiny
trains on 512 images for one epoch, to check the script).
"""
import gzip, json, math, sys, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TINY = "--tiny" in sys.argv


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(root):
    tx = idx(f"{root}/train-images-idx3-ubyte.gz"); ty = idx(f"{root}/train-labels-idx1-ubyte.gz")
    vx = idx(f"{root}/t10k-images-idx3-ubyte.gz"); vy = idx(f"{root}/t10k-labels-idx1-ubyte.gz")
    t = lambda a: torch.from_numpy(a.copy()).to(DEV)
    return t(tx).unsqueeze(1), t(ty).long(), t(vx).unsqueeze(1), t(vy).long()


def block(ci, co, pool):
    layers = [nn.Conv2d(ci, co, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return layers + [nn.BatchNorm2d(co), nn.ReLU(inplace=True)]


class Net(nn.Module):
    def __init__(self, widths, d):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.body = nn.Sequential(*block(1, w1, True), *block(w1, w2, True), *block(w2, w3, True), *block(w3, w4, False))
        self.head = nn.Linear(w4, d)
        self.proj = nn.Sequential(nn.Linear(w4, w4), nn.ReLU(inplace=True), nn.Linear(w4, d))
        self.cls = nn.Linear(d, 40, bias=False)

    def maps(self, x):
        x = (x.float() / 255.0 - 0.1307) / 0.3081
        m3 = self.body[:12](x)
        return m3, self.body[12:](m3)

    def forward(self, x):
        m3, m4 = self.maps(x)
        h = m4.mean((2, 3))
        return h, F.normalize(self.head(h), dim=1), F.normalize(self.proj(h), dim=1)

    def extra(self, x):
        """(flattened last map, GAP of stages 3 and 4 concatenated)"""
        m3, m4 = self.maps(x)
        return m4.flatten(1), torch.cat([m3.mean((2, 3)), m4.mean((2, 3))], 1)


def affine(x, rot, scale, shift):
    b = x.shape[0]
    a = (torch.rand(b, device=x.device) * 2 - 1) * rot * math.pi / 180
    s = 1 + (torch.rand(b, device=x.device) * 2 - 1) * scale
    t = (torch.rand(b, 2, device=x.device) * 2 - 1) * shift * 2 / 28
    th = torch.zeros(b, 2, 3, device=x.device)
    th[:, 0, 0] = torch.cos(a) / s; th[:, 0, 1] = -torch.sin(a) / s
    th[:, 1, 0] = torch.sin(a) / s; th[:, 1, 1] = torch.cos(a) / s
    th[:, :, 2] = t
    g = F.affine_grid(th, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), g, align_corners=False)


def aug(x, kind):
    if kind == "none":
        return x.float()
    if kind == "affine":
        return affine(x, 15, 0.1, 2)
    if kind == "strong":  # SimCLR-style for digits: bigger warps plus erasing
        y = affine(x, 25, 0.25, 4)
        b = y.shape[0]
        cx = torch.randint(0, 28, (b, 1, 1, 1), device=y.device); cy = torch.randint(0, 28, (b, 1, 1, 1), device=y.device)
        r = torch.arange(28, device=y.device)
        m = ((r.view(1, 1, 28, 1) - cy).abs() < 5) & ((r.view(1, 1, 1, 28) - cx).abs() < 5)
        keep = torch.rand(b, 1, 1, 1, device=y.device) < 0.5
        return torch.where(m & keep, torch.zeros_like(y), y)
    raise ValueError(kind)


def supcon(z, y, tau):
    s = z @ z.t() / tau
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    s = s.masked_fill(eye, -1e9)
    pos = (y[:, None] == y[None, :]) & ~eye
    logp = s - torch.logsumexp(s, 1, keepdim=True)
    return -((logp * pos).sum(1) / pos.sum(1).clamp(min=1)).mean()


def ms(z, y, a=2.0, b=50.0, base=0.5):
    s = z @ z.t()
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    pos = (y[:, None] == y[None, :]) & ~eye
    neg = y[:, None] != y[None, :]
    lse = lambda v, m: torch.log1p((torch.exp(v) * m).sum(1))
    return (lse(-a * (s - base), pos) / a + lse(b * (s - base), neg) / b).mean()


def expand(x, y, kind):
    """Class expansion: each image turned by a random element of a symmetry
    group, and the pair (digit, element) taken as its class, so that 5 digits
    give 20 (`rot`: quarter turns) or 40 (`d4`: turns and mirror images)
    classes to tell apart."""
    n = {"rot": 4, "d4": 8}[kind]
    g = torch.randint(0, n, (x.shape[0],), device=x.device)
    out = x.clone()
    for k in range(n):
        sel = g == k
        v = torch.rot90(x[sel], k % 4, (2, 3))
        out[sel] = v.flip(3) if k >= 4 else v
    return out, y + 5 * g


def loss_fn(cfg, net, x, y):
    kind = cfg["loss"]
    if cfg.get("expand"):
        x, y = expand(x, y, cfg["expand"])
    if kind in ("ms", "supcon", "nsm"):
        h, z, _ = net(aug(x, cfg["aug"]))
        if kind == "nsm":
            logits = 16.0 * z @ F.normalize(net.cls.weight, dim=1).t()
            return F.cross_entropy(logits, y, label_smoothing=cfg.get("ls", 0.0))
        return ms(z, y) if kind == "ms" else supcon(z, y, cfg.get("tau", 0.1))
    # two views: an instance term (each image's other view is its only positive)
    # beside an optional class term on the same views
    v = torch.cat([aug(x, cfg["aug"]), aug(x, cfg["aug"])])
    h, z, p = net(v)
    b = x.shape[0]
    inst = torch.arange(b, device=x.device).repeat(2)
    out = cfg.get("inst", 1.0) * supcon(p, inst, cfg.get("itau", 0.2))
    if cfg.get("cls", 0) > 0:
        zz = z if cfg.get("cls_on", "z") == "z" else p
        out = out + cfg["cls"] * (supcon(zz, y.repeat(2), cfg.get("tau", 0.1)) if cfg.get("cls_loss", "supcon") == "supcon" else ms(zz, y.repeat(2)))
    return out


@torch.no_grad()
def embed(net, x):
    net.eval()
    hs, zs, ps, fs, ms_ = [], [], [], [], []
    for i in range(0, len(x), 2048):
        h, z, p = net(x[i:i + 2048].float())
        f, m = net.extra(x[i:i + 2048].float())
        hs.append(h); zs.append(z); ps.append(p); fs.append(f); ms_.append(m)
    net.train()
    return torch.cat(hs), torch.cat(zs), torch.cat(ps), torch.cat(fs), torch.cat(ms_)


def auc(sc, lab):
    order = torch.argsort(sc)
    ranks = torch.empty_like(sc); ranks[order] = torch.arange(1, len(sc) + 1, device=sc.device, dtype=sc.dtype)
    npos = lab.sum(); nneg = len(lab) - npos
    return float((ranks[lab].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def pairs(y, n, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    yc = y.cpu()
    a = torch.randint(0, len(yc), (n * 4,), generator=g); b = torch.randint(0, len(yc), (n * 4,), generator=g)
    ok = a != b
    same = ok & (yc[a] == yc[b]); diff = ok & (yc[a] != yc[b])
    sa, sb = a[same][: n // 2], b[same][: n // 2]
    da, db = a[diff][: n // 2], b[diff][: n // 2]
    return torch.cat([sa, da]).to(y.device), torch.cat([sb, db]).to(y.device), torch.cat([torch.ones(len(sa)), torch.zeros(len(da))]).bool().to(y.device)


def p_at_1(q, qy, g, gy):
    correct = 0
    for i in range(0, len(q), 1024):
        s = q[i:i + 1024] @ g.t()
        correct += (gy[s.argmax(1)] == qy[i:i + 1024]).sum().item()
    return correct / len(q)


def asnorm(q, cohort, a, b, k=200):
    """Pair scores of rows a and b of q, each standardised by the mean and
    spread of its side's k highest similarities to the cohort, averaged."""
    top = (q @ cohort.t()).topk(k, 1).values
    m, s = top.mean(1), top.std(1)
    sc = (q[a] * q[b]).sum(1)
    return ((sc - m[a]) / s[a] + (sc - m[b]) / s[b]) / 2


def measure(net, data):
    tx, ty, vx, vy = data
    seen_t = ty < 5
    new_t, new_v = ty >= 5, vy >= 5
    out = {}
    g = embed(net, tx[new_t]); q = embed(net, vx[new_v]); tr = embed(net, tx[seen_t][:20000])
    a, b, lab = pairs(vy[new_v], 10000)
    for name, k in (("z", 1), ("h", 0), ("f", 3), ("m", 4)):
        G, Q = g[k], q[k]
        variants = {name: (F.normalize(G, dim=1), F.normalize(Q, dim=1))}
        if name != "z":
            T = tr[k]
            mu = T.mean(0)
            c = torch.cov((T - mu).t())
            ev, evec = torch.linalg.eigh(c)
            for tag, eps in (("w", 1e-3), ("w2", 1e-2), ("w1", 1e-1)):
                W = evec / (ev.clamp(min=0) + eps * ev.mean()).sqrt()
                variants[name + tag] = (F.normalize((G - mu) @ W, dim=1), F.normalize((Q - mu) @ W, dim=1))
                if name == "h" and tag == "w2":
                    whiten = (mu, W)
                if name == "h" and tag == "w1":
                    cohort = F.normalize((embed(net, tx[seen_t][20000:])[0] - mu) @ W, dim=1)
                    out["hw1-asnorm"] = {"auc": round(auc(asnorm(variants["hw1"][1], cohort, a, b), lab), 4)}
            # Within-class whitening (speaker verification's WCCN): only the
            # directions in which one digit's images vary are shrunk, as those
            # (slant, thickness, shifts) vary alike within new digits.
            ty_tr = ty[seen_t][:20000]
            sw = sum(torch.cov((T[ty_tr == c] - T[ty_tr == c].mean(0)).t()) * (ty_tr == c).sum() for c in range(5)) / len(T)
            evw, evecw = torch.linalg.eigh(sw)
            for tag, eps in (("c2", 1e-2), ("c1", 1e-1), ("c0", 1.0)):
                W = evecw / (evw.clamp(min=0) + eps * evw.mean()).sqrt()
                variants[name + tag] = (F.normalize((G - mu) @ W, dim=1), F.normalize((Q - mu) @ W, dim=1))
            if name in ("h", "f"):
                # Nuisance whitening: the spread of 8 augmented views of each
                # of 2,000 training images around their mean, no labels used.
                k0 = {"h": 0, "f": 3}[name]
                xs = tx[seen_t][:2000]
                views = torch.stack([embed(net, aug(xs, "affine"))[k0] for _ in range(8)])
                dev = (views - views.mean(0)).reshape(-1, views.shape[-1])
                evn, evecn = torch.linalg.eigh(dev.t() @ dev / len(dev))
                for tag, eps in (("a2", 1e-2), ("a1", 1e-1), ("a0", 1.0)):
                    W = evecn / (evn.clamp(min=0) + eps * evn.mean()).sqrt()
                    variants[name + tag] = (F.normalize((G - mu) @ W, dim=1), F.normalize((Q - mu) @ W, dim=1))
            if name == "h":
                mu_n = G.mean(0)
                ev_n, evec_n = torch.linalg.eigh(torch.cov((G - mu_n).t()))
                W_n = evec_n / (ev_n.clamp(min=0) + 0.1 * ev_n.mean()).sqrt()
                variants["hn1"] = (F.normalize((G - mu_n) @ W_n, dim=1), F.normalize((Q - mu_n) @ W_n, dim=1))
        for vn, (Gn, Qn) in variants.items():
            sc = (Qn[a] * Qn[b]).sum(1)
            out[vn] = {"auc": round(auc(sc, lab), 4), "p1": round(p_at_1(Qn, vy[new_v], Gn, ty[new_t]), 4)}
    seen_v = vy < 5
    gs, qs = embed(net, tx[seen_t]), embed(net, vx[seen_v])
    out["seen_p1_z"] = round(p_at_1(qs[1], vy[seen_v], gs[1], ty[seen_t]), 4)
    mu, W = whiten
    out["seen_p1_hw2"] = round(p_at_1(F.normalize((qs[0] - mu) @ W, dim=1), vy[seen_v], F.normalize((gs[0] - mu) @ W, dim=1), ty[seen_t]), 4)
    return out


def train(cfg, data, seed=0):
    torch.manual_seed(seed)
    tx, ty, _, _ = data
    keep = ty < 5
    x, y = tx[keep], ty[keep]
    if TINY:
        x, y = x[:512], y[:512]
    net = Net(cfg.get("widths", (16, 32, 64, 128)), cfg.get("d", 128)).to(DEV).to(memory_format=torch.channels_last)
    bs = cfg.get("bs", 256)
    steps_per_epoch = len(x) // bs
    epochs = 1 if TINY else cfg["epochs"]
    total = steps_per_epoch * epochs
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.get("lr", 2e-3), weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.get("lr", 2e-3), total_steps=total, pct_start=0.05)
    t0 = time.time()
    for e in range(epochs):
        perm = torch.randperm(len(x), device=DEV)
        for i in range(steps_per_epoch):
            j = perm[i * bs:(i + 1) * bs]
            with torch.autocast(DEV, dtype=torch.bfloat16, enabled=DEV == "cuda"):
                loss = loss_fn(cfg, net, x[j], y[j])
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            opt.step(); sched.step()
    if DEV == "cuda":
        torch.cuda.synchronize()
    return net, time.time() - t0, float(loss.detach())


CONFIGS = [
    # Instance discrimination (SimCLR's NT-Xent on two augmented views),
    # alone or beside a class loss.
    {"name": "simclr", "loss": "inst", "aug": "strong", "epochs": 30},
    {"name": "simclr.5", "loss": "inst", "aug": "strong", "epochs": 30, "itau": 0.5},
    {"name": "simclr+sup", "loss": "inst", "aug": "strong", "epochs": 30, "cls": 1.0},
    {"name": "simclr+sup.3", "loss": "inst", "aug": "strong", "epochs": 30, "cls": 0.3},
    {"name": "simclr+ms", "loss": "inst", "aug": "strong", "epochs": 30, "cls": 1.0, "cls_loss": "ms"},
    {"name": "simclr+sup-wide", "loss": "inst", "aug": "strong", "epochs": 30, "cls": 1.0, "widths": (32, 64, 128, 256)},
    {"name": "simclr+sup-aff", "loss": "inst", "aug": "affine", "epochs": 30, "cls": 1.0},
    {"name": "simclr+sup-60", "loss": "inst", "aug": "strong", "epochs": 60, "cls": 1.0},
    # Class losses alone: multi-similarity (twinsim's default), supervised
    # contrastive, normalized softmax.
    {"name": "supcon.1", "loss": "supcon", "aug": "affine", "epochs": 8, "tau": 0.1},
    {"name": "supcon.5", "loss": "supcon", "aug": "affine", "epochs": 8, "tau": 0.5},
    {"name": "ms", "loss": "ms", "aug": "affine", "epochs": 8},
    {"name": "ms-s1", "loss": "ms", "aug": "affine", "epochs": 8, "seed": 1},
    {"name": "ms-wide", "loss": "ms", "aug": "affine", "epochs": 8, "widths": (32, 64, 128, 256)},
    {"name": "ms-2ep", "loss": "ms", "aug": "affine", "epochs": 2},
    {"name": "ms-20ep", "loss": "ms", "aug": "affine", "epochs": 20},
    {"name": "ms-none", "loss": "ms", "aug": "none", "epochs": 8},
    {"name": "ms-bs1024", "loss": "ms", "aug": "affine", "epochs": 8, "bs": 1024, "lr": 4e-3},
    {"name": "nsm", "loss": "nsm", "aug": "affine", "epochs": 8},
    {"name": "nsm-ls", "loss": "nsm", "aug": "affine", "epochs": 8, "ls": 0.2},
    # Class expansion: quarter turns (20 classes) or the dihedral group (40).
    {"name": "ms-rot", "loss": "ms", "aug": "affine", "epochs": 8, "expand": "rot"},
    {"name": "ms-d4", "loss": "ms", "aug": "affine", "epochs": 8, "expand": "d4"},
    {"name": "ms-wide-rot", "loss": "ms", "aug": "affine", "epochs": 8, "expand": "rot", "widths": (32, 64, 128, 256)},
    {"name": "nsm-rot", "loss": "nsm", "aug": "affine", "epochs": 8, "expand": "rot"},
    {"name": "contr", "loss": "inst", "aug": "affine", "epochs": 8, "cls": 1.0, "cls_loss": "ms", "inst": 0.1},
]


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    data = load(sys.argv[1])
    out = open(sys.argv[2], "a")
    only = [a for a in sys.argv[3:] if not a.startswith("--")]
    for cfg in CONFIGS:
        if only and cfg["name"] not in only:
            continue
        net, secs, last = train(cfg, data, cfg.get("seed", 0))
        r = {"name": cfg["name"], "cfg": cfg, "train_s": round(secs, 1), "last_loss": round(last, 4), **measure(net, data)}
        print(json.dumps(r), flush=True)
        out.write(json.dumps(r) + "\n"); out.flush()


if __name__ == "__main__":
    main()
