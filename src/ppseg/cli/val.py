"""Evaluate a checkpoint on the config's val_dataset: mIoU, Acc, Kappa, Dice per class.

Examples:
    ppseg val -c CFG --model output/camvid/best_model.pt
    ppseg val -c CFG --model M.pt --aug-eval --scales 0.75 1.0 1.25 --flip
    ppseg val -c CFG --model M.pt --slide --crop-size 512 512 --stride 341 341
"""

from __future__ import annotations

import argparse
import sys
import json

from .common import add_config_args, add_inference_args, inference_overrides, load_config_args

HELP = "evaluate a checkpoint on the validation set"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--model", required=True, help="weights file (best_model.pt, a checkpoint, or a run directory)")
    add_inference_args(p)
    p.add_argument("--confusion-matrix", default=None, metavar="PNG", help="also save the confusion matrix image")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    from ..device import resolve_device
    from ..engine import build
    from ..engine.task import get_task
    from ..errors import ConfigError

    from ..fileio import check_output_path, write_text_atomic

    cfg = load_config_args(args)
    inference_overrides(args)  # validate flags before any work
    for option, value in (("--json", args.json), ("--confusion-matrix", args.confusion_matrix)):
        if value is not None:
            check_output_path(value, option)
    if not cfg.get("val_dataset"):
        raise ConfigError(f"{cfg.path}: no val_dataset section to evaluate on")
    dataset = build.build_dataset(cfg, "val_dataset", "val")
    opts = build.build_options(cfg)
    task = get_task(cfg.get("task", "semantic")).from_config(cfg, dataset, dataset)
    segmentor = task.load(args.model, **inference_overrides(args))
    device = resolve_device(args.device, "--device")
    segmentor.to(device)
    workers = opts.num_workers if args.num_workers is None else args.num_workers
    scores = task.evaluate(segmentor, dataset, device=device, num_workers=workers, progress=sys.stderr.isatty())
    print(scores.report)
    print(f"images: {len(dataset)}  mode: {segmentor.mode}  scales: {list(segmentor.scales)}  flip: {segmentor.flip}")
    if args.confusion_matrix:
        scores.artifacts["confusion_matrix"](args.confusion_matrix)
        print(f"confusion matrix: {args.confusion_matrix}")
    if args.json:
        write_text_atomic(args.json, json.dumps(scores.details, indent=2))
        print(f"metrics: {args.json}")
    return 0
