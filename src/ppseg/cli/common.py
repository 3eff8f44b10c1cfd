"""Arguments and loading steps shared by the commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - nothing heavy is imported by `ppseg --help`
    from ..config import Config


def add_config_args(p: argparse.ArgumentParser, required: bool = True, help: str = "YAML config file") -> None:
    p.add_argument("-c", "--config", required=required, default=None, help=help)
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --opts iters=1000 optimizer.weight_decay=0.0")


def add_inference_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("inference mode (defaults: the config's segmentor section)")
    g.add_argument("--aug-eval", "--aug-pred", dest="aug", action="store_true",
                   help="test-time augmentation with --scales and --flip")
    g.add_argument("--scales", type=float, nargs="+", default=None, help="test-time scales, e.g. 0.75 1.0 1.25")
    g.add_argument("--flip", action="store_true", help="also predict the horizontally flipped image")
    g.add_argument("--fusion", choices=("logits", "softmax"), default=None,
                   help="combine augmentations by averaging logits (2.8+) or summing softmax (2.1-2.7)")
    g.add_argument("--postprocess", choices=("argmax", "vim", "vim_exact"), default=None,
                   help="labels from full-resolution logits (argmax) or VIM from low-resolution logits "
                        "(vim: the reference's approximation; vim_exact: identical to argmax, faster)")
    g.add_argument("--slide", action="store_true", help="sliding-window inference")
    g.add_argument("--crop-size", type=int, nargs=2, metavar=("W", "H"), default=None)
    g.add_argument("--stride", type=int, nargs=2, metavar=("W", "H"), default=None)
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--num-workers", type=int, default=None, help="data-loading workers (default: the config's)")


def inference_overrides(args: argparse.Namespace) -> dict:
    if args.num_workers is not None and args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0 (0: read in this process), got {args.num_workers}")
    over: dict = {}
    if args.aug:
        over["scales"] = tuple(args.scales) if args.scales else (1.0,)
        over["flip"] = bool(args.flip)
    elif args.scales or args.flip:
        raise ConfigError("--scales/--flip need --aug-eval (or --aug-pred)")
    if args.fusion:
        over["fusion"] = args.fusion
    if args.postprocess:
        over["postprocess"] = args.postprocess
    if args.slide:
        if not args.crop_size or not args.stride:
            raise ConfigError("--slide needs --crop-size W H and --stride W H")
        over.update(mode="slide", crop_size=tuple(args.crop_size), stride=tuple(args.stride))
    elif args.crop_size or args.stride:
        raise ConfigError("--crop-size/--stride need --slide")
    return over


def load_config_args(args: argparse.Namespace) -> "Config":
    from ..config import load_config
    from ..engine import build

    cfg = load_config(args.config, args.opts)
    build.check_top_level(cfg)
    return cfg
