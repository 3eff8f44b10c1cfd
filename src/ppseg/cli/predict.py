"""Predict label maps for images: label PNG, pseudo-colour PNG and an overlay per image.

Examples:
    ppseg predict -c CFG --model output/camvid/best_model.pt --input photo.jpg --save-dir out/
    ppseg predict -c CFG --model M.pt --input 'images/*.png' --save-dir out/ --aug-pred --flip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import add_config_args, add_inference_args, inference_overrides, load_config_args

HELP = "predict label maps and overlays for images"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--model", required=True, help="weights file (best_model.pt, a checkpoint, or a run directory)")
    p.add_argument("--input", required=True, help="an image file, a directory, or a glob pattern (quote it)")
    p.add_argument("--save-dir", required=True, help="output directory")
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0..1)")
    add_inference_args(p)


def run(args: argparse.Namespace) -> int:
    from ..engine import build
    from ..data.io import collect_images
    from ..data.transforms import build_transforms
    from ..semantic.predict import predict_files
    from ..semantic.segmentor import load_segmentor
    from ..errors import ConfigError

    from ..device import resolve_device

    from ..fileio import check_output_path

    cfg = load_config_args(args)
    inference_overrides(args)
    check_output_path(args.save_dir, "--save-dir", "dir")
    files = collect_images(args.input)
    if not 0 <= args.alpha <= 1:
        raise ConfigError(f"--alpha must be in [0, 1], got {args.alpha}")
    key = "val_dataset" if cfg.get("val_dataset") else "train_dataset"
    if not cfg.get(key):
        raise ConfigError(f"{cfg.path}: needs a val_dataset section (its transforms, num_classes and palette)")
    meta = build.dataset_meta(cfg, key)  # the dataset's files need not be here
    transforms = build_transforms(cfg[key].get("transforms"), cfg, f"{key}.transforms")
    segmentor = load_segmentor(args.model, config=cfg, num_classes=meta.num_classes, **inference_overrides(args))
    root = Path(args.input) if Path(args.input).is_dir() else None
    written = predict_files(segmentor, files, args.save_dir, transforms, meta.palette,
                            device=resolve_device(args.device, "--device"), root=root, alpha=args.alpha, progress=sys.stderr.isatty())
    out = Path(args.save_dir)
    print(f"{len(written)} image(s) -> {out / 'labels'}, {out / 'pseudo_color'}, {out / 'overlay'}")
    return 0
