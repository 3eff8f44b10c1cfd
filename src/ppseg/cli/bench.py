"""Inference latency, throughput, size and memory of a model: torch, ONNX Runtime, PaddleSeg.

Times the whole path from an H x W x 3 uint8 RGB array to the label map
(normalisation, network and post-processing), median and p90 over --runs after
--warmup, each (backend, threads) pair in a fresh process. ONNX Runtime runs the
model exported once with `ppseg export` (fixed --input-shape) through
ppseg.deploy.Predictor. The paddle backend times the PaddleSeg reference model
in the same run (optional: pip install paddlepaddle==2.6.2 paddleseg==2.8.0).
Weights are random unless --weights is given: speed only, the labels mean nothing.

Columns: median / p90 ms per call (N images, wall clock), cpu ms (median process
CPU time per call: on a busy machine a steadier figure for 1 thread; with more
threads it adds up all threads, spin-waits included), img/s, classes out (distinct
labels in the output: VIM's cost grows with them; random weights light up far more
classes than a trained model on a real image), parameters and GFLOPs
(torch FlopCounterMode, 2 per multiply-add, per image), peak MB (the process's peak
RSS) and +MB (above its RSS once the runtime was imported), vs paddle (the paddle
row's median / this row's: > 1 is faster than the reference).

Examples:
    ppseg bench --model pp_mobileseg_tiny --input-shape 1 3 512 512 --threads 1,2
    ppseg bench --model pp_mobileseg_base --input-shape 1 3 512 512 --output-op vim --uint8-input \\
        --backends onnxruntime,paddle --json bench.json
    ppseg bench -c configs/pp_liteseg/pp_liteseg_t_camvid.yml --input-shape 1 3 720 960 --backends onnxruntime \\
        --quantize int8 --calib-data data/camvid/images/train
    ppseg bench -c configs/pp_mobileseg/tiny_camvid.yml --weights output/best_model.pt --output-op vim \\
        --uint8-input --input-shape 1 3 512 512 --images data/camvid/images/val/0001TP_008550.png
"""

from __future__ import annotations

import argparse
import json

HELP = "benchmark inference latency (torch, ONNX Runtime, optionally the PaddleSeg reference)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..bench.config import ORT_OPT_LEVELS, OUTPUT_OPS

    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--model", help="a registered model name (ppseg.list_models())")
    m.add_argument("-c", "--config", help="YAML config: its model, classes and normalisation")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (with -c)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="number of classes (default: the model's default, or the config's dataset)")
    p.add_argument("--weights", default=None, help="ppseg weights file (default: random weights)")
    p.add_argument("--input-shape", type=int, nargs=4, required=True, metavar=("N", "C", "H", "W"),
                   help="input batch shape, e.g. 1 3 512 512 (N images of H x W)")
    p.add_argument("--threads", default="1", help="comma-separated thread counts, e.g. 1,2 (default 1)")
    p.add_argument("--backends", default="torch,onnxruntime",
                   help="comma-separated: torch, onnxruntime, paddle (default torch,onnxruntime)")
    p.add_argument("--output-op", default="argmax", choices=OUTPUT_OPS,
                   help="post-processing: argmax (default), vim (low-resolution VIM), or for ONNX Runtime "
                        "none/softmax (the graph returns logits/probabilities, argmax in numpy)")
    p.add_argument("--uint8-input", action="store_true",
                   help="ONNX Runtime: the graph takes raw RGB bytes and normalises inside")
    p.add_argument("--ort-opt", default="all", choices=ORT_OPT_LEVELS,
                   help="ONNX Runtime graph optimisation level (default all)")
    p.add_argument("--quantize", choices=("int8",), default=None, help="ONNX Runtime: INT8 static quantisation")
    p.add_argument("--calib-data", default=None, metavar="DIR", help="calibration images for --quantize")
    p.add_argument("--calib-images", type=int, default=64, help="at most this many calibration images (default 64)")
    p.add_argument("--images", default=None, metavar="PATH",
                   help="time on these images (a file or a folder; resized to the input shape) instead of "
                        "synthetic ones: with trained --weights, the real classes-present count VIM's cost depends on")
    p.add_argument("--channels-last", action="store_true", help="torch: channels-last memory format")
    p.add_argument("--runs", type=int, default=20, help="timed runs (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results as JSON")


def config_from_args(args: argparse.Namespace):  # -> BenchConfig
    from ..bench.config import BenchConfig, parse_backends, parse_threads
    from ..errors import ConfigError

    from ..config import MAX_CLASSES

    if args.num_classes is not None and not 1 <= args.num_classes <= MAX_CLASSES:
        raise ConfigError(f"--num-classes must be in [1, {MAX_CLASSES}], got {args.num_classes}")
    if args.calib_images < 1:
        raise ConfigError(f"--calib-images must be >= 1, got {args.calib_images}")
    if args.quantize and not args.calib_data:
        raise ConfigError("--quantize int8 needs --calib-data DIR (a few dozen representative images)")
    if args.calib_data and not args.quantize:
        raise ConfigError("--calib-data is only used with --quantize int8")
    if args.opts and not args.config:
        raise ConfigError("--opts needs -c CONFIG")
    calib: list[str] = []
    if args.calib_data:
        from ..data.io import list_images

        calib = [str(p) for p in list_images(args.calib_data)[: args.calib_images]]
        if not calib:
            raise ConfigError(f"--calib-data {args.calib_data}: no images found")
    images: list[str] = []
    if args.images:
        from pathlib import Path

        from ..data.io import list_images

        if Path(args.images).is_file():
            images = [str(args.images)]
        elif Path(args.images).is_dir():
            images = [str(p) for p in list_images(args.images)][: max(1, args.input_shape[0])]
        if not images:
            raise ConfigError(f"--images {args.images}: no such image file, or no images in that folder")
    extra: dict = {}
    if args.config:
        from ..config import load_config
        from ..engine import build

        cfg = load_config(args.config, args.opts)
        build.check_top_level(cfg)
        key = "val_dataset" if cfg.get("val_dataset") else "train_dataset"
        meta = build.dataset_meta(cfg, key) if cfg.get(key) else None
        n = args.num_classes or (meta.num_classes if meta else None)
        name, kwargs = build.model_spec(cfg, None)
        if n is not None:
            kwargs["num_classes"] = n
        from ..semantic.segmentor import segmentor_kwargs

        seg = segmentor_kwargs(cfg)
        mean, std = tuple(seg.get("mean", (0.5,) * 3)), tuple(seg.get("std", (0.5,) * 3))
        names = meta.class_names if meta and meta.num_classes == n else None
        palette = meta.palette.tolist() if meta and meta.num_classes == n else None
        extra["config"] = str(args.config)
    else:
        from ..registry import get_factory

        get_factory(args.model)  # unknown model: one line with a suggestion
        name, kwargs = args.model, ({"num_classes": args.num_classes} if args.num_classes else {})
        mean, std, names, palette = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), None, None
    return BenchConfig(
        model=name, model_kwargs=kwargs, input_shape=tuple(args.input_shape), threads=parse_threads(args.threads),
        backends=parse_backends(args.backends), output_op=args.output_op, uint8_input=args.uint8_input,
        ort_opt=args.ort_opt, quantize=args.quantize, calib_images=tuple(calib), weights=args.weights,
        runs=args.runs, warmup=args.warmup, mean=mean, std=std, class_names=names, palette=palette,
        channels_last=args.channels_last, images=tuple(images), extra=extra)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_benchmark
    from ..bench.config import check_config
    from ..bench.report import format_table, rows_to_json

    from ..fileio import check_output_path, write_text_atomic

    cfg = config_from_args(args)
    check_config(cfg)
    if args.json is not None:
        check_output_path(args.json, "--json")
    rows = run_benchmark(cfg, progress=lambda s: print(s, flush=True))
    n, _, h, w = cfg.input_shape
    print(f"\nimage -> label map, {n} x {w}x{h} RGB uint8, {rows[0]['num_classes'] if rows else '?'} classes, "
          f"median/p90 of {cfg.runs} runs after {cfg.warmup} warm-up"
          + ("" if cfg.weights else ", random weights")
          + (f", {len(cfg.images)} real image(s)" if cfg.images else ", synthetic images"))
    print(format_table(rows))
    versions = sorted({r["version"] for r in rows if r.get("version")})
    if versions:
        print("versions: " + "; ".join(versions))
    if args.json:
        write_text_atomic(args.json, json.dumps(rows_to_json(rows, cfg), indent=2))
        print(f"wrote {args.json}")
    failed = [r for r in rows if r.get("error")]
    return 1 if failed else 0
