"""CPU latency and training throughput of ppseg models (torch eager), printed as tables.

    python benchmarks/latency.py                                  # PP-MobileSeg Base + Tiny, 512x512, 1 and 2 threads
    python benchmarks/latency.py --models pp_mobileseg_tiny --size 512 512 --threads 1 --runs 20
    python benchmarks/latency.py --train                          # also training images/s (batch 4, AdamW, 2 threads)
    python benchmarks/latency.py --json out.json

Inference rows (median and p90 ms over --runs after --warmup):
  logits      the network only (low-resolution logits where the model has them)
  argmax      network + full bilinear upsample to the input size + argmax
  vim         network + VIM (the reference's valid-interpolate post-processing)
  vim_exact   network + exact VIM (labels identical to argmax)

When ``paddle`` and ``paddleseg`` are importable (optional; not a dependency),
the reference PP-MobileSeg is timed the same way in the same run and the ratio
is printed. Training throughput uses random data (no loader), so it measures
the model, loss and optimizer step: 0.8 CE + 0.2 Lovász, AdamW, 150 classes, labels
made of blocks of 25 classes per batch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import ppseg

REFERENCE_TRAIN_IMG_S = {"pp_mobileseg_tiny": 1.78, "pp_mobileseg_base": 1.05}  # measured on this machine (issue 3)


def timeit(fn: Callable[[], object], runs: int, warmup: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]


def inference_rows(name: str, size: tuple[int, int], threads: int, runs: int, warmup: int,
                   num_classes: int, channels_last: bool) -> list[dict]:
    torch.set_num_threads(threads)
    model = ppseg.create_model(name, num_classes=num_classes).eval()
    x = torch.randn(1, 3, size[1], size[0])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    h, w = size[1], size[0]
    lowres = getattr(model, "forward_lowres", None)
    cases: dict[str, Callable[[], object]] = {}
    if lowres is not None:
        cases["logits"] = lambda: lowres(x)
        cases["argmax"] = lambda: F.interpolate(lowres(x), size=(h, w), mode="bilinear",
                                                align_corners=False).argmax(1)
        try:
            from ppseg.vim import vim, vim_exact

            cases["vim"] = lambda: vim(lowres(x), (h, w))
            cases["vim_exact"] = lambda: vim_exact(lowres(x), (h, w))
        except ImportError:
            pass
    else:
        cases["logits"] = lambda: model(x)
        cases["argmax"] = lambda: model(x).argmax(1)
    rows = []
    with torch.inference_mode():
        for case, fn in cases.items():
            med, p90 = timeit(fn, runs, warmup)
            rows.append({"backend": "torch", "model": name, "size": f"{w}x{h}", "threads": threads, "case": case,
                         "median_ms": med, "p90_ms": p90})
    return rows


def paddle_rows(name: str, size: tuple[int, int], threads: int, runs: int, warmup: int,
                num_classes: int) -> list[dict]:
    """The reference, when installed: same input, same thread count, same cases."""
    try:
        import paddle
        from paddleseg.models import PPMobileSeg
        from paddleseg.models.backbones import MobileSeg_Base, MobileSeg_Tiny
    except ImportError:
        return []
    paddle.set_device("cpu")
    paddle.set_flags({"FLAGS_use_mkldnn": True})
    try:
        paddle.set_num_threads(threads)  # type: ignore[attr-defined]
    except AttributeError:
        pass
    w, h = size
    if name == "pp_mobileseg_base":
        backbone = MobileSeg_Base(inj_type="AAMSx8", out_feat_chs=[64, 128, 192])
    elif name == "pp_mobileseg_tiny":
        backbone = MobileSeg_Tiny(inj_type="AAM", out_feat_chs=[32, 64, 128])
    else:
        return []
    rows = []
    for case, upsample in (("argmax", "intepolate"), ("vim", "vim")):
        model = PPMobileSeg(num_classes=num_classes, backbone=backbone, upsample=upsample)
        model.eval()
        x = paddle.randn([1, 3, h, w])

        def run() -> object:
            out = model(x)[0]
            return out.argmax(1) if upsample == "intepolate" else out

        with paddle.no_grad():
            med, p90 = timeit(run, runs, warmup)
        rows.append({"backend": "paddle", "model": name, "size": f"{w}x{h}", "threads": threads, "case": case,
                     "median_ms": med, "p90_ms": p90})
    return rows


def train_throughput(name: str, size: tuple[int, int], batch: int, steps: int, threads: int,
                     channels_last: bool, amp: bool, num_classes: int) -> float:
    from ppseg.losses import CrossEntropyLoss, LovaszSoftmaxLoss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ppseg.create_model(name, num_classes=num_classes).train()
    w, h = size
    x = torch.randn(batch, 3, h, w)
    # Realistic labels: blocks of ~25 distinct classes per batch (an ADE20K crop holds about
    # that many), not per-pixel noise over all classes (which makes Lovász sort 150 maps).
    present = torch.randperm(num_classes)[:25]
    blocks = present[torch.randint(0, len(present), (batch, 1, 8, 8))].float()
    y = F.interpolate(blocks, size=(h, w), mode="nearest")[:, 0].long()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, fused=True)
    ce, lovasz = CrossEntropyLoss(), LovaszSoftmaxLoss()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = model(x)[0]
        loss = 0.8 * ce(logits.float(), y) + 0.2 * lovasz(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def print_table(rows: list[dict]) -> None:
    head = f"{'backend':<8} {'model':<22} {'size':<9} {'thr':>3} {'case':<10} {'median ms':>10} {'p90 ms':>8} {'vs paddle':>9}"
    print(head)
    print("-" * len(head))
    ref = {(r["model"], r["size"], r["threads"], r["case"]): r["median_ms"] for r in rows if r["backend"] == "paddle"}
    for r in rows:
        key = (r["model"], r["size"], r["threads"], r["case"])
        ratio = f"{ref[key] / r['median_ms']:.2f}x" if r["backend"] == "torch" and key in ref else ""
        print(f"{r['backend']:<8} {r['model']:<22} {r['size']:<9} {r['threads']:>3} {r['case']:<10} "
              f"{r['median_ms']:>10.1f} {r['p90_ms']:>8.1f} {ratio:>9}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pp_mobileseg_base", "pp_mobileseg_tiny"])
    p.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=150)
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format for inference")
    p.add_argument("--train", action="store_true", help="also measure training images/s")
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    size = tuple(args.size)

    rows: list[dict] = []
    for name in args.models:
        for threads in args.threads:
            rows += inference_rows(name, size, threads, args.runs, args.warmup, args.num_classes, args.channels_last)
            rows += paddle_rows(name, size, threads, args.runs, args.warmup, args.num_classes)
    print(f"Inference latency, batch 1, {size[0]}x{size[1]}, {args.num_classes} classes "
          f"(torch {torch.__version__}, {'channels-last' if args.channels_last else 'contiguous'})")
    print_table(rows)

    train_rows = []
    if args.train:
        print(f"\nTraining throughput: batch {args.train_batch}, {size[0]}x{size[1]}, AdamW (fused), 2 threads")
        print(f"{'model':<22} {'setting':<28} {'img/s':>7} {'reference':>10} {'ratio':>7}")
        for name in args.models:
            for cl, amp in ((False, False), (True, False), (True, True)):
                ips = train_throughput(name, size, args.train_batch, args.train_steps, 2, cl, amp, args.num_classes)
                setting = ("channels-last" if cl else "contiguous") + (" + bf16 autocast" if amp else "")
                ref = REFERENCE_TRAIN_IMG_S.get(name)
                train_rows.append({"model": name, "setting": setting, "img_s": ips, "reference_img_s": ref})
                ratio = f"{ips / ref:.2f}x" if ref else ""
                print(f"{name:<22} {setting:<28} {ips:>7.2f} {ref if ref else '':>10} {ratio:>7}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"inference": rows, "training": train_rows}, f, indent=2)


if __name__ == "__main__":
    main()
