"""FAISS beside twinsim's search (docs/benchmarks.md, "Search"): the same
galleries and queries as crates/twinsim-index/examples/scale.rs, searched
with FAISS's exact inner-product index (IndexFlatIP) and its HNSW
(IndexHNSWFlat, inner product, M 16, efConstruction 128, efSearch as given),
on unit vectors (cosine). One markdown row per (gallery, index): build
time, single-query p50 / p99, per-query time in one batch of 1,000, and
recall@10 against the exact index.

    benchmarks/peers/.venv/bin/python benchmarks/peers/faiss_scale.py [SIZES] [EF...] [--real GALLERY.npy QUERIES.npy]

SIZES default 10000,100000,1000000 (random 128-d unit vectors, seeds as
numpy's default_rng(1) and (2)); EF default 64.
"""
import sys, time
import numpy as np
import faiss

K = 10


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(index, q, singles):
    ms = []
    for i in range(singles):
        t = time.perf_counter(); index.search(q[i % len(q):i % len(q) + 1], K); ms.append((time.perf_counter() - t) * 1e3)
    t = time.perf_counter(); _, found = index.search(q, K); batched = (time.perf_counter() - t) * 1e3 / len(q)
    return np.percentile(ms, 50), np.percentile(ms, 99), batched, found


def main():
    args = sys.argv[1:]
    real = None
    if "--real" in args:
        i = args.index("--real"); real = (unit(np.load(args[i + 1])), unit(np.load(args[i + 2]))); args = args[:i]
    sizes = [int(s) for s in (args[0] if args else "10000,100000,1000000").split(",")]
    efs = [int(e) for e in args[1:]] or [64]
    faiss.omp_set_num_threads(2)
    print("| gallery | index | build s | single p50 ms | single p99 ms | batched ms/query | recall@10 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        if real:
            if n > len(real[0]): continue
            g, q, kind = real[0][:n], real[1][:1000], "real"
        else:
            g = unit(np.random.default_rng(1).standard_normal((n, 128))); q = unit(np.random.default_rng(2).standard_normal((1000, 128))); kind = "random"
        name = f"{n} x {g.shape[1]} {kind}"
        flat = faiss.IndexFlatIP(g.shape[1]); flat.add(g)
        p50, p99, b, truth = timed(flat, q, 30 if n >= 1000000 else 200)
        print(f"| {name} | FAISS flat (exact) | 0.0 | {p50:.3f} | {p99:.3f} | {b:.3f} | 1.0000 |", flush=True)
        t = time.perf_counter()
        h = faiss.IndexHNSWFlat(g.shape[1], 16, faiss.METRIC_INNER_PRODUCT); h.hnsw.efConstruction = 128; h.add(g)
        built = time.perf_counter() - t
        for ef in efs:
            h.hnsw.efSearch = ef
            p50, p99, b, found = timed(h, q, 200)
            recall = np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)])
            print(f"| {name} | FAISS HNSW ef {ef} | {built:.1f} | {p50:.3f} | {p99:.3f} | {b:.3f} | {recall:.4f} |", flush=True)


if __name__ == "__main__":
    main()
