"""mIoU of exported ONNX models on a labelled image list, through the torch-free deploy Predictor.

Compares e.g. a float export with its INT8 quantisation (the mIoU change next to
the speed-up), and checks the exported model against `ppseg val`'s number.

    python benchmarks/onnx_miou.py export_fp32/model.onnx export_int8/model.onnx \
        --data ../shared/data/camvid --list val.txt --ignore 11 --threads 1

Prints one row per model: mIoU, pixel accuracy, median ms per image (predict
call: pre-processing, inference, post-processing at the original size).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from ppseg.data.io import read_image, read_label
from ppseg.deploy import Predictor


def evaluate(model: str, pairs: list[tuple[Path, Path]], ignore: int, threads: int) -> dict:
    p = Predictor(model, threads=threads)
    n = p.num_classes
    conf = np.zeros((n, n), np.int64)
    times = []
    for img_path, lab_path in pairs:
        image = read_image(img_path)
        t = time.perf_counter()
        pred = p.predict(image)
        times.append(time.perf_counter() - t)
        label = read_label(lab_path)
        keep = label != ignore
        conf += np.bincount(label[keep].astype(np.int64) * n + pred[keep], minlength=n * n).reshape(n, n)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    return {"model": model, "miou": float(np.nanmean(iou)), "acc": float(inter.sum() / max(conf.sum(), 1)),
            "median_ms": 1000 * statistics.median(times), "images": len(pairs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="model.onnx files (sidecars next to them)")
    ap.add_argument("--data", required=True, help="dataset root")
    ap.add_argument("--list", default="val.txt", help="'image label' list relative to --data")
    ap.add_argument("--ignore", type=int, default=255, help="ignored label value")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images")
    args = ap.parse_args()
    root = Path(args.data)
    pairs = [(root / a, root / b) for a, b in (ln.split()[:2] for ln in (root / args.list).read_text().splitlines()
                                               if ln.strip())]
    if args.limit:
        pairs = pairs[: args.limit]
    print(f"{'model':<48} {'mIoU':>7} {'Acc':>7} {'ms/img':>8}  ({len(pairs)} images, {args.threads} thread(s))")
    for m in args.models:
        r = evaluate(m, pairs, args.ignore, args.threads)
        print(f"{m:<48} {100 * r['miou']:7.2f} {100 * r['acc']:7.2f} {r['median_ms']:8.1f}")


if __name__ == "__main__":
    main()
