"""Arguments and loading steps shared by the commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - torch is imported by the commands that run, not by `ppseg --help`
    import torch

    from ..config import Config
    from ..segmentor import Segmentor


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", required=True, help="YAML config file")
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


def device_of(name: str) -> "torch.device":
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


# Model kwargs that change only training (regularisation, auxiliary heads): a checkpoint
# may differ from the config in these.
TRAINING_ONLY_KWARGS = ("drop", "aux_head")


def check_model_kwargs(name: str, config_kwargs: dict, ckpt: dict, path: str) -> None:
    """Refuse a checkpoint built with other inference-relevant kwargs (e.g. ``aam_gate_act``).

    Shapes alone cannot tell a sigmoid-gated model from a relu6-gated one.
    """
    from ..config import signature_params
    from ..registry import get_factory

    saved = ckpt.get("model_kwargs")
    if not isinstance(saved, dict) or ckpt.get("model") != name:
        return
    defaults = {k: d for k, (_, d) in signature_params(get_factory(name)).items()}
    for key in sorted(set(saved) | set(config_kwargs)):
        # num_classes comes from the dataset; the shape check below explains that mismatch
        if any(t in key for t in TRAINING_ONLY_KWARGS) or key not in defaults or key == "num_classes":
            continue
        a, b = saved.get(key, defaults[key]), config_kwargs.get(key, defaults[key])
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            a, b = list(a), list(b)
        if a != b:
            raise ConfigError(f"{path}: the checkpoint's model has {key}={a!r}, but the config builds {key}={b!r}; "
                              f"set model.{key}: {a!r} in the config (or --opts model.{key}={a})")


def load_segmentor(cfg: "Config", checkpoint: str, num_classes: int, args: argparse.Namespace) -> "Segmentor":
    """Build the config's model, load ``checkpoint`` into it, wrap it in a segmentor."""
    from ..engine import build
    from ..engine.checkpoint import load_file, load_weights

    name, kwargs, model = build.build_model(cfg, num_classes)
    ckpt = load_file(checkpoint)
    check_model_kwargs(name, kwargs, ckpt, checkpoint)
    load_weights(model, ckpt, Path(checkpoint), name)
    return build.build_segmentor(cfg, model, **inference_overrides(args)).eval()
