"""Per-click latency of click models on the CPU, as a table (issue 14's goal: <= 40 ms at 400x400, 1 thread).

    python benchmarks/click_latency.py                                   # the fast model and EdgeFlow, random weights
    python benchmarks/click_latency.py --models zoo:click_mnv3_lite edgeflow_hrnet18_ocr64 --clicks 20
    python benchmarks/click_latency.py --image photo.jpg --threads 1 2 --json out.json

What is timed is one ``session.click(y, x)`` as a tool calls it: the ZoomIn crop resized to
400x400 (EISeg's predictor settings), the disk encoding of the clicks and the fed-back map, the
network, the sigmoid, and pasting the probabilities back into the image. Each model is exported
to ONNX once (ppseg export's path, checked against torch) and run by ppseg.deploy's
InteractivePredictor (ONNX Runtime, no torch) with ``--threads`` intra-op threads; torch eager
on one thread is timed beside it. Clicks follow RITM's clicker on a synthetic object so the
window moves as in real use; the first click (the whole image resized) is warm-up.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import ppseg
from ppseg.data.io import read_image
from ppseg.deploy import InteractivePredictor
from ppseg.export import export_click_onnx
from ppseg.interactive import InteractiveSettings
from ppseg.interactive.clicker import next_click
from ppseg.interactive.predictor import ClickSegmentor, TorchClickBackend, load_torch_predictor
from ppseg.interactive.session import ClickPredictor

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "camvid_mini" / "images" / "val" / "0016E5_07979.jpg"


def _object(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return ((yy - h * 0.55) / (h * 0.25)) ** 2 + ((xx - w * 0.45) / (w * 0.2)) ** 2 <= 1


def _time_session(predictor, image: np.ndarray, gt: np.ndarray, clicks: int) -> dict[str, float]:
    s = predictor.session(image)
    total, network = [], []
    pred = np.zeros_like(gt)
    for k in range(clicks):
        c = next_click(gt, pred)
        t0 = time.perf_counter()
        prob = s.click(c.y, c.x, c.positive)
        dt = time.perf_counter() - t0
        pred = prob > 0.49
        if k:  # the first click is warm-up
            total.append(dt * 1000)
            network.append(s.last_infer_s * 1000)
    return {"click_ms": float(np.median(total)), "network_ms": float(np.median(network)),
            "click_p90_ms": float(np.percentile(total, 90))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["click_mobilenetv3_lite", "edgeflow_hrnet18_ocr64"],
                    help="registered click models (random weights), weights files or zoo:NAME")
    ap.add_argument("--image", default=str(EXAMPLE), help="the photo clicked on (default: a CamVid example)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--clicks", type=int, default=12)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    image = read_image(args.image)
    gt = _object(*image.shape[:2])
    settings = InteractiveSettings()  # EISeg: ZoomIn to 400x400, LimitLongestSide 800
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models:
            if spec in ppseg.list_models(task="interactive"):
                torch.manual_seed(0)
                wrapper = ClickSegmentor(ppseg.create_model(spec)).eval()
                name, params = spec, sum(p.numel() for p in wrapper.parameters())
            else:
                wrapper = load_torch_predictor(spec).backend.wrapper
                name, params = spec, sum(p.numel() for p in wrapper.parameters())
            out = Path(tmp) / name.replace(":", "_")
            export_click_onnx(wrapper, out, settings=settings, model_name=type(wrapper.model).__name__
                              if spec.startswith("zoo:") else None)
            torch.set_num_threads(1)
            torch_row = _time_session(ClickPredictor(TorchClickBackend(wrapper), settings), image, gt, args.clicks)
            for threads in args.threads:
                ort = _time_session(InteractivePredictor(out / "model.onnx", threads=threads), image, gt, args.clicks)
                rows.append({"model": name, "params": params, "threads": threads, "ort": ort,
                             "torch_1_thread": torch_row})
    print(f"\nper-click latency, image {image.shape[1]}x{image.shape[0]}, ZoomIn 400x400, median ms over "
          f"{args.clicks - 1} clicks")
    print("| model | params | threads | ONNX Runtime: click (p90) | of which network | torch eager, 1 thread |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        o, t = r["ort"], r["torch_1_thread"]
        print(f"| {r['model']} | {r['params']:,} | {r['threads']} | {o['click_ms']:.1f} ({o['click_p90_ms']:.1f}) | "
              f"{o['network_ms']:.1f} | {t['click_ms']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
