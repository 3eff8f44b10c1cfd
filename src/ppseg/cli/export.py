"""Export a trained model to ONNX with a sidecar (model.onnx + model.json).

The sidecar carries everything deployment needs (input layout, colour order,
resize policy, mean/std, output op, class names, palette); run the result
without torch via ``ppseg.deploy.Predictor``. Before anything is written the
graph passes ``onnx.checker`` and an ONNX Runtime run compared with torch.

A click model (interactive segmentation, ``task: interactive``) is recognised from its
weights file and needs no config: its graph takes ``image`` (RGB 0..1) and
``coord_features`` and returns mask logits (``ppseg.deploy.InteractivePredictor``
runs it); the semantic-only flags (--output-op, --uint8-input, --input-shape,
--quantize, --calib-data, --calib-images) are refused for it.

Examples:
    ppseg export -c CFG --model output/camvid/best_model.pt --out export/
    ppseg export --model output/click/best_model.pt --out export_click/
    ppseg export -c CFG --model M.pt --output-op vim --uint8-input --out export_vim/
    ppseg export -c CFG --model M.pt --input-shape 1 3 512 512 --out export_512/
    ppseg export -c CFG --model M.pt --quantize int8 --calib-data images/ --out export_int8/
"""

from __future__ import annotations

import argparse
import json

from .common import add_config_args, load_config_args

HELP = "export a model to ONNX with a deployment sidecar"


def add_arguments(p: argparse.ArgumentParser) -> None:
    # -c is optional here: a click model's weights file says everything; a semantic model needs it (checked in run)
    add_config_args(p, required=False,
                    help="YAML config file (required for semantic models; not needed for a click model's weights)")
    w = p.add_mutually_exclusive_group(required=True)
    w.add_argument("--model", help="weights file (best_model.pt, a checkpoint, a run directory, or ppseg convert output)")
    w.add_argument("--random-weights", action="store_true",
                   help="export untrained weights, the same every time (seed 0; for speed tests only, the masks mean nothing)")
    p.add_argument("--out", required=True, help="output folder for model.onnx and model.json")
    p.add_argument("--output-op", default=None, choices=("none", "softmax", "argmax", "vim"),
                   help="graph output: logits (none), probabilities, labels (argmax), or labels by VIM "
                        "(PP-MobileSeg's fast low-resolution post-processing); default argmax")
    s = p.add_mutually_exclusive_group()
    s.add_argument("--input-shape", type=int, nargs=4, metavar=("N", "C", "H", "W"), default=None,
                   help="fixed input shape (images are resized to H x W)")
    s.add_argument("--dynamic", action="store_true",
                   help="dynamic batch, height and width (the default; images follow the config's val resize)")
    p.add_argument("--uint8-input", action="store_true",
                   help="the graph takes raw RGB bytes (N H W 3 uint8) and normalises inside")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (13..20, default 17)")
    p.add_argument("--quantize", choices=("int8",), default=None, help="INT8 static quantisation (QDQ)")
    p.add_argument("--calib-data", default=None, metavar="DIR", help="calibration images for --quantize")
    p.add_argument("--calib-images", type=int, default=None, help="at most this many calibration images (default 64)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the export report as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.io import list_images, read_image
    from ..engine import build
    from ..errors import ConfigError
    from ..export import export_onnx
    from ..semantic.segmentor import build_segmentor, load_segmentor

    from ..fileio import check_output_path, write_text_atomic

    cfg = load_config_args(args) if args.config is not None else None
    check_output_path(args.out, "--out", "dir")
    if args.json is not None:
        check_output_path(args.json, "--json")
    ckpt = _click_weights(args.model) if args.model else None
    if ckpt is not None or (cfg is not None and cfg.get("task") == "interactive"):
        return _run_click(args, cfg, ckpt)
    if cfg is None:
        if not args.model:
            raise ConfigError("-c/--config is required with --random-weights (the config says which model to build)")
        raise ConfigError(f"-c/--config is required: {args.model} holds a semantic segmentation model, whose "
                          "config gives the classes, palette and resize (only a click model's weights file exports "
                          "without one)")
    if args.output_op is None:
        args.output_op = "argmax"
    if args.calib_images is None:
        args.calib_images = 64
    if args.quantize and not args.calib_data:
        raise ConfigError("--quantize int8 needs --calib-data DIR (a few dozen representative images)")
    if args.calib_data and not args.quantize:
        raise ConfigError("--calib-data is only used with --quantize int8")
    if args.calib_images < 1:
        raise ConfigError(f"--calib-images must be >= 1, got {args.calib_images}")
    calib = list_images(args.calib_data)[: args.calib_images] if args.calib_data else []
    if args.calib_data and not calib:
        raise ConfigError(f"--calib-data {args.calib_data}: no images found")
    for image in calib:  # decoded once now, so a broken one is one line before the export runs
        read_image(image)
    key = "val_dataset" if cfg.get("val_dataset") else "train_dataset"
    if not cfg.get(key):
        raise ConfigError(f"{cfg.path}: needs a val_dataset section (num_classes, class names, palette, transforms)")
    meta = build.dataset_meta(cfg, key)
    name, kwargs = build.model_spec(cfg, meta.num_classes)
    if args.model:
        segmentor = load_segmentor(args.model, config=cfg, num_classes=meta.num_classes)
    else:
        torch.manual_seed(0)  # --random-weights: the same random model every time (speed tests compare like with like)
        segmentor = build_segmentor(cfg, build.build_model(cfg, meta.num_classes)[2])
    model = segmentor.model
    ignored = [s for s, on in (("flip", segmentor.flip), ("scales", segmentor.scales != (1.0,)),
                               ("mode slide", segmentor.mode == "slide")) if on]
    if ignored:
        print(f"note: the exported graph is whole-image inference without test-time augmentation "
              f"({', '.join(ignored)} in the config's segmentor section are not exported)")
    mean = [float(v) / 255.0 for v in segmentor.mean.flatten().tolist()]
    std = [float(v) / 255.0 for v in segmentor.std.flatten().tolist()]
    transforms = cfg[key].get("transforms") or []
    result = export_onnx(
        model, args.out, model_name=name, model_kwargs=kwargs, class_names=meta.class_names,
        palette=meta.palette.tolist(), mean=mean, std=std, output_op=args.output_op,
        input_shape=args.input_shape, uint8_input=args.uint8_input, resize=transforms, opset=args.opset,
        source_checkpoint=args.model, quantize=args.quantize, calib_images=calib)
    if args.random_weights:
        print("note: exported with random weights (--random-weights)")
    c = result.check
    agree = c.get("label_agreement")
    detail = f"labels agree {agree:.4%}" if agree is not None else f"max |diff| {c.get('max_abs_diff', 0):.2e}"
    print(f"{result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) + {result.sidecar_path.name}: "
          f"onnx.checker ok, ONNX Runtime vs torch: {detail}"
          + (f", INT8 ({result.sidecar.quantization['calibration_images']} calibration images)" if args.quantize else ""))
    if args.json:
        write_text_atomic(args.json, json.dumps({"onnx": str(result.onnx_path), "sidecar": str(result.sidecar_path),
                                               "check": c}, indent=2))
    return 0


#: flags of the semantic export that mean nothing for a click model: (attribute, flag)
_SEMANTIC_ONLY = (("output_op", "--output-op"), ("uint8_input", "--uint8-input"), ("input_shape", "--input-shape"),
                  ("quantize", "--quantize"), ("calib_data", "--calib-data"), ("calib_images", "--calib-images"))


def _click_weights(path: str) -> dict | None:
    """The weights file at ``path`` when it holds a click model (meta ``task: interactive``, or a
    registered click model), else ``None``; unreadable files raise the loader's one-line error."""
    from ..registry import MODELS, model_task
    from ..weights import load_file

    ckpt = load_file(path)
    meta = ckpt.get("meta") or {}
    name = ckpt.get("model")
    if meta.get("task") == "interactive" or (isinstance(name, str) and name in MODELS
                                             and model_task(name) == "interactive"):
        return ckpt
    return None


def _run_click(args: argparse.Namespace, cfg, ckpt: dict | None) -> int:  # type: ignore[no-untyped-def]
    """``ppseg export`` of a click model (see the module docstring)."""
    import torch

    from ..errors import ConfigError
    from ..export import export_click_onnx
    from ..fileio import write_text_atomic
    from ..interactive.session import InteractiveSettings

    what = f"{args.model} holds a click model" if args.model else f"{cfg.path} is a click-model (interactive) config"
    for attr, flag in _SEMANTIC_ONLY:
        if getattr(args, attr) not in (None, False):
            raise ConfigError(f"{flag} applies to semantic segmentation exports only; {what}, whose graph takes "
                              "image + coord_features and returns mask logits")
    settings = None
    if cfg is not None:
        if cfg.get("task") != "interactive":
            raise ConfigError(f"{what}, but {cfg.path} is a {cfg.get('task') or 'semantic'} config; "
                              "export it without -c (the weights file says everything) or with its interactive config")
        section = cfg.get("interactive") or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{cfg.where('interactive')}: expected a section, got {section!r}")
        # the weights file's own settings (what training recorded) win; else the config's
        if ckpt is None or ((ckpt.get("meta") or {}).get("interactive") or {}).get("settings") is None:
            settings = InteractiveSettings.from_dict(section.get("settings"), cfg.where("interactive.settings"))
    if args.model:
        if cfg is not None:
            from ..engine import build

            name, _ = build.model_spec(cfg)
            if ckpt is not None and ckpt.get("model") != name:
                raise ConfigError(f"{args.model} holds '{ckpt.get('model')}', but {cfg.path} builds '{name}'")
        result = export_click_onnx(args.model, args.out, opset=args.opset, settings=settings)
    else:
        from ..engine import build
        from ..interactive.predictor import ClickSegmentor

        torch.manual_seed(0)  # --random-weights: the same random model every time
        name, kwargs, model = build.build_model(cfg)
        result = export_click_onnx(ClickSegmentor(model), args.out, opset=args.opset, settings=settings,
                                   model_name=name, model_kwargs=kwargs,
                                   source={"config": str(cfg.path), "random_weights": True})
        print("note: exported with random weights (--random-weights)")
    c = result.check
    sizes = " and ".join(k for k in c if k != "max_prob_diff")
    print(f"{result.onnx_path} ({result.onnx_path.stat().st_size / 1e6:.1f} MB) + {result.sidecar_path.name}: "
          f"click model {result.sidecar.model} (prev_input {result.sidecar.prev_input}), onnx.checker ok, "
          f"ONNX Runtime vs torch at {sizes}: max |prob diff| {c['max_prob_diff']:.2e}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"onnx": str(result.onnx_path), "sidecar": str(result.sidecar_path),
                                               "task": "interactive", "check": c}, indent=2))
    return 0
