"""Benchmark click-based interactive segmentation: NoC@85, NoC@90, NoF@90, mIoU@1/3/5, latency.

The RITM / EdgeFlow protocol: for every object, a simulated user clicks the centre of the
largest error of the current prediction (up to --max-clicks clicks, stopping at IoU 0.90);
NoC@85 / NoC@90 is the mean number of clicks needed to reach that IoU (--max-clicks when never
reached), NoF@90 the number of objects that never reach it.

Datasets (--data DIR, detected from the folder):
  images/ + masks/       GrabCut / Berkeley layout, masks 255 object, 128 ignore, 0 background
                         (0/1 masks too); data_GT/ + boundary_GT/ and img/ + gt/ as in RITM
  val.txt (or --list)    PaddleSeg 'image label' lines; each label map is split into objects
                         (--split-mode components|classes|foreground, --min-area)

Models (--model): opencv-grabcut (OpenCV GrabCut, the classic baseline), a weights file, an
exported .onnx, or zoo:NAME; default: the shipped zoo model.

Examples:
    ppseg click-eval --model opencv-grabcut --data datasets/GrabCut --json grabcut.json
    ppseg click-eval --model edgeflow.onnx --data data/ccp --split-mode components --min-area 900 --limit 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "benchmark a click-based interactive segmentation model (NoC@85/90)"

#: the most threads --threads takes
MAX_THREADS = 256
GRABCUT = "opencv-grabcut"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help=f"{GRABCUT}, a weights file, an exported .onnx or zoo:NAME (default: the shipped model)")
    p.add_argument("--data", required=True, metavar="DIR", help="dataset folder (layouts above)")
    p.add_argument("--list", default=None, metavar="FILE",
                   help="PaddleSeg list of 'image label' lines, as given or under --data (default: DIR/val.txt)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the scores and per-object results as JSON")
    p.add_argument("--plot", default=None, metavar="FILE",
                   help="IoU-vs-clicks figure (default: next to --json, same name with .png)")
    p.add_argument("--max-clicks", type=int, default=20, help="clicks per object at most, 1..1000 (default 20)")
    p.add_argument("--threshold", type=float, default=0.49,
                   help="foreground where the probability is above this, in [0, 1) (default 0.49, as RITM)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N objects only")
    p.add_argument("--split-mode", choices=("components", "classes", "foreground"), default="components",
                   help="objects of a label map: connected parts of each class, whole classes, or all "
                        "non-background pixels as one (default components)")
    p.add_argument("--min-area", type=int, default=900, metavar="PX",
                   help="skip label-map objects with fewer pixels (default 900; not for mask folders)")
    p.add_argument("--background", type=int, default=0, metavar="ID",
                   help="the class of a label map that is never an object (default 0; e.g. 1 for EM "
                        "membrane labels, whose cells are class 0)")
    p.add_argument("--threads", type=int, default=1, help=f"inference threads, 1..{MAX_THREADS} (default 1)")
    p.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                   help=f"where the model runs (default cpu; {GRABCUT} always runs on the CPU)")


def _check_options(args: argparse.Namespace) -> None:
    from ..errors import ConfigError

    if not 1 <= args.max_clicks <= 1000:
        raise ConfigError(f"--max-clicks must be in [1, 1000], got {args.max_clicks}")
    if not 0.0 <= args.threshold < 1.0:  # also refuses nan
        raise ConfigError(f"--threshold must be in [0, 1), got {args.threshold}")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}")
    if not 0 <= args.background <= 65535:
        raise ConfigError(f"--background must be a class id in 0..65535, got {args.background}")
    if args.min_area < 0:
        raise ConfigError(f"--min-area must be >= 0, got {args.min_area}")
    if not 1 <= args.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
    for option, value in (("--data", args.data), ("--model", args.model), ("--list", args.list)):
        if value is not None and not value.strip():
            raise ConfigError(f"{option} is empty")


def default_plot_path(json_path: str | Path) -> Path:
    """The figure's path next to the JSON report: ``scores.json`` -> ``scores.png``."""
    p = Path(json_path)
    out = p.with_suffix(".png")
    return out if out != p else p.with_name(p.name + ".plot.png")


def load_predictor(spec: str | None, *, threads: int, device: str):
    """The click predictor named by ``--model`` and its description."""
    if spec is not None and spec.strip().lower() == GRABCUT:
        from ..interactive.grabcut import GrabCutPredictor

        predictor = GrabCutPredictor()
        return predictor, predictor.describe()
    from ..interactive import load_click_predictor

    predictor = load_click_predictor(spec, threads=threads, device=device)
    describe = getattr(predictor, "describe", None)
    text = describe() if callable(describe) else getattr(predictor, "name", None)
    return predictor, str(text or spec or "default model")


def run(args: argparse.Namespace) -> int:
    import importlib.util

    import cv2

    from ..errors import PPSegError
    from ..fileio import check_output_path, write_text_atomic
    from ..interactive.datasets import open_click_dataset
    from ..interactive.noc import evaluate_noc, plot_format

    _check_options(args)
    plot_path = args.plot or (default_plot_path(args.json) if args.json else None)
    if args.json:
        check_output_path(args.json, "--json")
    if plot_path is not None:
        check_output_path(plot_path, "--plot")
        plot_format(plot_path, "--plot")
        if args.json and Path(plot_path).absolute() == Path(args.json).absolute():
            raise PPSegError(f"--plot {plot_path}: is the --json file too; give another name")
        if importlib.util.find_spec("matplotlib") is None:
            raise PPSegError("--plot needs matplotlib, which is not installed: pip install matplotlib")

    dataset = open_click_dataset(args.data, list_file=args.list, split_mode=args.split_mode,
                                 min_area=args.min_area, limit=args.limit, background=args.background)
    cv2.setNumThreads(args.threads)
    predictor, model_text = load_predictor(args.model, threads=args.threads, device=args.device)
    print(f"model: {model_text}")
    print(f"data: {dataset.description}: {len(dataset)} object(s) in {dataset.num_images} image(s)")
    info = dataset.to_dict()
    results = evaluate_noc(dataset, predictor, max_clicks=args.max_clicks, threshold=args.threshold,
                           model=model_text, dataset_info=info, progress=sys.stderr.isatty())
    results.extra["model_spec"] = args.model
    results.extra["options"] = {"max_clicks": args.max_clicks, "threshold": args.threshold, "limit": args.limit,
                                "split_mode": args.split_mode, "min_area": args.min_area, "background": args.background,
                                "threads": args.threads,
                                "device": args.device}
    print(results.table())
    print(f"{results.num_objects} object(s) in {results.seconds:.1f} s")
    if args.json:
        write_text_atomic(args.json, results.to_json() + "\n")
        print(f"scores: {args.json}")
    if plot_path is not None:
        results.plot(plot_path)
        print(f"plot: {plot_path}")
    return 0
