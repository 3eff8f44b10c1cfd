"""Export a trained model to ONNX with a sidecar (model.onnx + model.json).

The sidecar carries everything deployment needs (input layout, colour order,
resize policy, mean/std, output op, class names, palette); run the result
without torch via ``ppseg.deploy.Predictor``. Before anything is written the
graph passes ``onnx.checker`` and an ONNX Runtime run compared with torch.

Examples:
    ppseg export -c CFG --model output/camvid/best_model.pt --out export/
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
    add_config_args(p)
    w = p.add_mutually_exclusive_group(required=True)
    w.add_argument("--model", help="weights file (best_model.pt, a checkpoint, a run directory, or ppseg convert output)")
    w.add_argument("--random-weights", action="store_true",
                   help="export untrained weights, the same every time (seed 0; for speed tests only, the masks mean nothing)")
    p.add_argument("--out", required=True, help="output folder for model.onnx and model.json")
    p.add_argument("--output-op", default="argmax", choices=("none", "softmax", "argmax", "vim"),
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
    p.add_argument("--calib-images", type=int, default=64, help="at most this many calibration images (default 64)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the export report as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.io import list_images, read_image
    from ..engine import build
    from ..errors import ConfigError
    from ..export import export_onnx
    from ..semantic.segmentor import build_segmentor, load_segmentor

    from ..fileio import check_output_path, write_text_atomic

    cfg = load_config_args(args)
    check_output_path(args.out, "--out", "dir")
    if args.json is not None:
        check_output_path(args.json, "--json")
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
