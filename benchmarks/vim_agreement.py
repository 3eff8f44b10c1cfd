"""How often VIM agrees with full upsample + argmax on real images, and what it costs.

    python benchmarks/vim_agreement.py -c configs/pp_mobileseg/tiny_camvid_half.yml \
        --model runs/pp_mobileseg_tiny_camvid_half/best_model.pt

For every image of the config's val set the trained model's low-resolution
logits are turned into labels at the original image size three ways (full
bilinear upsample + argmax, VIM, exact VIM); the table gives pixel agreement
with argmax, mIoU of each against the labels, and the median post-processing time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from ppseg.config import load_config
from ppseg.engine import build
from ppseg.semantic.metrics import SegMetrics
from ppseg.semantic.segmentor import load_segmentor
from ppseg.semantic.task import collate
from ppseg.semantic.vim import vim, vim_exact


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None, help="only the first N val images")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    cfg = load_config(args.config)
    dataset = build.build_dataset(cfg, "val_dataset", "val")
    seg = load_segmentor(args.model, config=cfg, num_classes=dataset.num_classes)
    model, name = seg.model, cfg["model"]["type"]
    if not hasattr(model, "forward_lowres"):
        raise SystemExit(f"{name} has no low-resolution logits: VIM does not apply")

    methods = {
        "argmax": lambda z, size: F.interpolate(z, size=size, mode="bilinear", align_corners=False).argmax(1),
        "vim": vim,
        "vim_exact": vim_exact,
    }
    metrics = {m: SegMetrics(dataset.num_classes) for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    agree = {m: 0 for m in methods}
    total = 0
    n = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    with torch.inference_mode():
        for i in range(n):
            batch = collate([dataset[i]])
            label = batch["label"]
            size = tuple(label.shape[-2:])
            low = model.forward_lowres(seg.normalize(batch["img"])).float().contiguous()
            preds = {}
            for m, fn in methods.items():
                t = time.perf_counter()
                preds[m] = fn(low, size)
                times[m].append((time.perf_counter() - t) * 1000)
                metrics[m].update(preds[m], label)
            for m in methods:
                agree[m] += int((preds[m] == preds["argmax"]).sum())
            total += preds["argmax"].numel()

    print(f"{name} on {n} val images of {args.config}, labels at the original size, {args.threads} thread(s)")
    print(f"{'method':<10} {'agrees with argmax':>19} {'mIoU':>7} {'post-process ms (median)':>25}")
    for m in methods:
        res = metrics[m].compute()
        print(f"{m:<10} {100 * agree[m] / total:>18.4f}% {100 * res['miou']:>6.2f} {statistics.median(times[m]):>25.1f}")


if __name__ == "__main__":
    main()
