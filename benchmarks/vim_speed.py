"""Speed and agreement of the PP-MobileSeg post-processing variants (CPU).

Compares, per shape and thread count, the median time of

* ``full``      -- bilinear upsample of all classes + argmax (the reference label map),
* ``vim``       -- PaddleSeg's VIM (``ppseg.semantic.vim.vim``),
* ``vim_exact`` -- pruned exact upsample + argmax (``ppseg.semantic.vim.vim_exact``),

on two kinds of low-resolution logits:

* ``random``: i.i.d. uniform(-2, 2) per pixel and class (white noise; the worst case
  for pruning, and the input of the parity fixture);
* ``smooth``: a per-class Gaussian field at 1/8 of the low resolution, bilinearly
  upsampled to it (std 3), i.e. spatially smooth like a network's logits.

and prints how often ``vim`` agrees with ``full`` and whether ``vim_exact`` equals it.

    .venv/bin/python benchmarks/vim_speed.py [--runs 11] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ppseg.semantic.vim import _vim_exact, agreement, vim, vim_exact

SHAPES = [  # (B, C, h, w) -> (H, W)
    ((1, 150, 64, 64), (512, 512)),   # PP-MobileSeg-Base, ADE20K, 1/8
    ((1, 150, 32, 32), (512, 512)),   # PP-MobileSeg-Tiny, ADE20K, 1/16
    ((1, 19, 64, 128), (512, 1024)),  # Cityscapes 1024x512, 1/8
    ((1, 150, 6, 8), (96, 128)),      # the parity fixture's size: few pixels, so not every class wins somewhere
]


def full(z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(z, size=size, mode="bilinear", align_corners=False).argmax(dim=1)


def make_logits(kind: str, shape: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    B, C, h, w = shape
    if kind == "random":
        return torch.rand(shape, generator=g) * 4 - 2
    coarse = torch.randn(B, C, max(h // 8, 2), max(w // 8, 2), generator=g) * 3
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False).contiguous()


def median_ms(fn, z, size, runs: int) -> float:
    fn(z, size)  # warm-up (also fills vim_exact's tap cache)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(z, size)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    print(f"torch {torch.__version__}, median of {args.runs} runs, CPU; times in ms")
    head = (f"{'logits':7} {'shape':>17} {'-> size':>9} {'thr':>3} {'full':>8} {'vim':>8} {'vim_exact':>9} "
            f"{'exact/full':>10}  {'vim agree':>9} {'exact ok':>8}  vim_exact path")
    print(head)
    print("-" * len(head))
    for kind in ("smooth", "random"):
        for shape, size in SHAPES:
            z = make_logits(kind, shape)
            ref = full(z, size)
            agree = agreement(vim(z, size), ref)
            exact_labels, st = _vim_exact(z, size)
            ok = torch.equal(exact_labels, ref)
            if st["path"] == "pruned":
                path = (f"pruned: {st['ambiguous_cells']}/{st['cells']} cells ambiguous, "
                        f"{st['ambiguous_pixels'] / ref.numel():.1%} of pixels evaluated, "
                        f"{st['near_tie_pixels']} near-tie px")
            else:
                path = f"{st['path']}: {st.get('reason', '')}"
            for threads in args.threads:
                torch.set_num_threads(threads)
                t_full = median_ms(full, z, size, args.runs)
                t_vim = median_ms(vim, z, size, args.runs)
                t_exact = median_ms(vim_exact, z, size, args.runs)
                shape_s = "x".join(map(str, shape))
                size_s = "x".join(map(str, size))
                print(f"{kind:7} {shape_s:>17} {size_s:>9} {threads:>3} {t_full:8.1f} {t_vim:8.1f} {t_exact:9.1f} "
                      f"{t_exact / t_full:10.2f}  {agree:9.4%} {str(ok):>8}  {path if threads == args.threads[0] else ''}")


if __name__ == "__main__":
    main()
