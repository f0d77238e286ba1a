# Where a training step of twinsim's grey encoders spends its time on the CPU,
# and what the block order and memory layout change: the `cnn` and `cnn-wide`
# networks (crates/twinsim-learn/src/encoders/cnn.rs) rebuilt in PyTorch, on
# the same libtorch as twinsim (the project's .venv), timed for one batch of
# 256 (forward, a loss on the normalised embeddings, backward, AdamW step) in
# four variants: pooling after ReLU (conv-BN-ReLU-pool) or straight after the
# convolution (conv-pool-BN-ReLU), NCHW or channels-last; then torch's
# profiler over the first variant (docs/benchmarks.md, "What each change
# bought").
#
#   .venv/bin/python benchmarks/layout.py [THREADS]
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WIDTHS = {"cnn": [16, 32, 64, 128], "cnn-wide": [32, 64, 128, 256]}


def block(c_in, c_out, pool, pool_first):
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    if not pool:
        return [conv, nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool_first:
        return [conv, nn.MaxPool2d(2), nn.BatchNorm2d(c_out), nn.ReLU()]
    return [conv, nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]


def network(widths, pool_first):
    chans = [1] + widths
    layers = [l for i in range(4) for l in block(chans[i], chans[i + 1], i < 3, pool_first)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], 128))


def stepper(widths, pool_first, channels_last):
    torch.manual_seed(0)
    model = network(widths, pool_first)
    x = torch.randn(256, 1, 28, 28)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 2e-3)

    def step():
        e = F.normalize(model(x))
        loss = (e @ e.T).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def seconds_per_step(step, rounds=5, steps=4):
    for _ in range(3):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps)
    return sorted(times)[rounds // 2]


def main():
    if len(sys.argv) > 1:
        torch.set_num_threads(int(sys.argv[1]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 256, median of 5 rounds of 4 steps")
    print("| encoder | block order | layout | ms per step | images/s | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for name, widths in WIDTHS.items():
        base = None
        for pool_first in (False, True):
            for channels_last in (False, True):
                s = seconds_per_step(stepper(widths, pool_first, channels_last))
                base = base or s
                order = "conv-pool-BN-ReLU" if pool_first else "conv-BN-ReLU-pool"
                layout = "channels-last" if channels_last else "NCHW"
                print(f"| {name} | {order} | {layout} | {s * 1e3:.1f} | {256 / s:.0f} | {base / s:.2f} |")
    from torch.profiler import profile

    step = stepper(WIDTHS["cnn"], False, False)
    seconds_per_step(step)
    with profile() as p:
        for _ in range(5):
            step()
    print("\ncnn, conv-BN-ReLU-pool, NCHW: the operators taking most time")
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


if __name__ == "__main__":
    main()
