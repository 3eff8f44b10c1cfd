"""What runs inside the measuring subprocess (``python -m ppseg.bench --worker JOB --result OUT``): the
test images, the torch and ONNX Runtime cases (the paddle one is in :mod:`ppseg.bench.reference`), wall
and CPU timing, peak memory, and :func:`worker`, which times one (backend, threads) case. Each runtime
is imported only by its own case, so the ``onnxruntime`` worker never imports torch.
:func:`count_params_and_flops` (torch) is called by the parent process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PPSegError
from .reference import _paddle_case


def count_params_and_flops(model: Any, input_hw: tuple[int, int]) -> tuple[int, float]:
    """(parameters, GFLOPs per image) of the eval-mode forward at ``input_hw`` (FlopCounterMode: 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, 3, *input_hw)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(params), counter.get_total_flops() / 1e9


def _bench_images(shape: tuple[int, int, int, int], paths: Sequence[str]) -> np.ndarray:
    """N images of ``shape`` (N H W 3 uint8): ``paths`` resized to H x W in turn, or synthetic ones."""
    if not paths:
        return _test_images(shape)
    import cv2

    from ..data.io import read_image

    n, _, h, w = shape
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = read_image(paths[i % len(paths)])  # a clear error for a file that cannot be decoded
        out[i] = img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return out


def _test_images(shape: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """N smooth random RGB images (N H W 3 uint8) that give varied labels."""
    import cv2

    n, _, h, w = shape
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        small = rng.integers(0, 256, size=(max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) + rng.normal(0, 8, size=(h, w, 3))
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return _peak_mb()


def _peak_mb() -> float:
    """Peak RSS of this process.

    Linux: ``VmHWM``, the high-water mark of this program's memory map. ``getrusage``'s
    ``ru_maxrss`` is not used there: it survives ``exec``, so a worker started from a
    parent holding a torch model would report the parent's RSS at fork time.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _time(fn: Callable[[], Any], runs: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds of each timed run."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    return wall, cpu


def _torch_case(job: dict[str, Any], images: np.ndarray) -> tuple[Callable[[], Any], dict[str, Any]]:
    import torch

    torch.set_num_threads(job["threads"])
    from ..registry import create_model
    from ..semantic.segmentor import Segmentor

    model = create_model(job["model"], **job["model_kwargs"])
    model.load_state_dict(torch.load(job["state"], weights_only=True))
    post = "vim" if job["output_op"] == "vim" else "argmax"
    seg = Segmentor(model, mean=job["mean"], std=job["std"], postprocess=post).eval()
    fmt = torch.channels_last if job.get("channels_last") else torch.contiguous_format
    seg = seg.to(memory_format=fmt)
    label_dtype = torch.uint8 if seg.num_classes <= 256 else torch.int32

    def run() -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        with torch.inference_mode():
            return seg.predict(x).to(label_dtype).numpy()

    return run, {"version": f"torch {torch.__version__}"}


def _ort_case(job: dict[str, Any], images: np.ndarray) -> tuple[Callable[[], Any], dict[str, Any]]:
    import onnxruntime as ort

    from ..deploy.predictor import Predictor

    pred = Predictor(job["onnx"], threads=job["threads"], optimization=job["ort_opt"])
    batch = list(images)
    if len(batch) == 1:
        run = lambda: pred.predict(batch[0])  # noqa: E731
    else:
        run = lambda: pred.predict_batch(batch, batch_size=len(batch))  # noqa: E731
    return run, {"version": f"onnxruntime {ort.__version__}"}


_RUNTIME_MODULES = {"torch": ("torch", "ppseg.semantic.segmentor", "ppseg.registry"),
                    "onnxruntime": ("onnxruntime", "cv2", "ppseg.deploy.predictor"),
                    "paddle": ("paddle", "paddleseg.models")}


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Time one (backend, threads) case in this process; the result row fields."""
    images = _bench_images(tuple(job["input_shape"]), job.get("images", ()))
    import importlib

    for mod in _RUNTIME_MODULES[job["backend"]]:  # the runtime's own memory is not the model's
        importlib.import_module(mod)
    baseline = _rss_mb()
    make = {"torch": _torch_case, "onnxruntime": _ort_case, "paddle": _paddle_case}[job["backend"]]
    run, info = make(job, images)
    times, cpu = _time(run, int(job["runs"]), int(job["warmup"]))
    labels = run()
    labels = np.stack(labels) if isinstance(labels, list) else labels
    labels = labels[None] if labels.ndim == 2 else labels  # N H W for every backend
    times.sort()
    median = statistics.median(times)
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    peak = _peak_mb()
    return {"median_ms": median, "p90_ms": p90, "min_ms": times[0], "mean_ms": statistics.fmean(times),
            "cpu_median_ms": statistics.median(cpu), "images_per_s": job["input_shape"][0] * 1000.0 / median,
            "peak_rss_mb": peak, "peak_delta_mb": max(0.0, peak - baseline), "times_ms": times,
            # VIM's cost grows with the classes present (random weights: not a real image's count)
            "labels_present": int(len(np.unique(labels))), "output_shape": list(labels.shape), **info}


def _worker_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ppseg.bench", description="internal: one ppseg bench measurement")
    p.add_argument("--worker", required=True, help="job JSON file")
    p.add_argument("--result", required=True, help="where to write the result JSON")
    args = p.parse_args(argv)
    job = json.loads(Path(args.worker).read_text(encoding="utf-8"))
    try:
        result = worker(job)
    except PPSegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0
