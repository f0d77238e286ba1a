"""Checks twinsim's FID Inception-v3 against pytorch-fid's own network.

The standard weights cannot be fetched here (no network beyond the package
registries), so the check uses random weights in their layout, which tests
the same things: pytorch-fid's network (its FIDInceptionA/C/E blocks on
torchvision's Inception3, assembled as `pytorch_fid.inception.fid_inception_v3`
does, minus the download) gets random weights and random batch-norm
statistics, its state dict is saved in the legacy `.pth` format of
`pt_inception-2015-12-05-6726825d.pth`, and both programs compute the
statistics (mu, sigma) of the same 299x299 images, so no resizing differs:

    twinsim fid DIR DIR --inception WEIGHTS.pth --save-stats OURS.npz

against pytorch-fid's `InceptionV3([3])` on the same pixels. Prints one JSON
object: the largest differences of mu and sigma, and the Frechet distance
between the two sets of statistics (0 when they agree).

    benchmarks/peers/.venv/bin/python benchmarks/inception_check.py TWINSIM WORK_DIR [N]

Needs torchvision and pytorch-fid in the peers' environment (requirements.txt).
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from pytorch_fid import inception as pfi
from pytorch_fid.fid_score import calculate_frechet_distance


def fid_network():
    """pytorch-fid's FID Inception with random weights and batch-norm statistics."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=True)
    net.Mixed_5b = pfi.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfi.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfi.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfi.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfi.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfi.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfi.FIDInceptionE_1(1280)
    net.Mixed_7c = pfi.FIDInceptionE_2(2048)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def images(n):
    """n smooth random 299x299 colour images, uint8 (n, 299, 299, 3)."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.fromarray(s).resize((299, 299), Image.BICUBIC)) for s in small])


def main():
    twinsim, work = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    os.makedirs(os.path.join(work, "images"), exist_ok=True)
    net = fid_network()
    weights = os.path.join(work, "inception-random.pth")
    torch.save(net.state_dict(), weights, _use_new_zipfile_serialization=False)
    pixels = images(n)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(os.path.join(work, "images", f"{i:03d}.png"))

    pfi.fid_inception_v3 = lambda: net  # pytorch-fid's wrapper, on these weights
    model = pfi.InceptionV3([3]).eval()
    with torch.no_grad():
        x = torch.tensor(pixels).permute(0, 3, 1, 2).float() / 255
        act = model(x)[0].squeeze(-1).squeeze(-1).double().numpy()
    mu, sigma = act.mean(0), np.cov(act, rowvar=False)

    ours = os.path.join(work, "twinsim.npz")
    folder = os.path.join(work, "images")
    subprocess.run([twinsim, "--quiet", "fid", folder, folder, "--inception", weights, "--save-stats", ours,
                    "--kid-subsets", "1", "--device", "cpu"], check=True, stdout=subprocess.DEVNULL)
    z = np.load(ours)
    print(json.dumps({
        "images": n,
        "mu_max_abs_diff": float(np.abs(z["mu"] - mu).max()),
        "mu_max_abs": float(np.abs(mu).max()),
        "sigma_max_abs_diff": float(np.abs(z["sigma"] - sigma).max()),
        "sigma_max_abs": float(np.abs(sigma).max()),
        "fid_between": float(calculate_frechet_distance(mu, sigma, z["mu"], z["sigma"])),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
    }))


if __name__ == "__main__":
    main()
