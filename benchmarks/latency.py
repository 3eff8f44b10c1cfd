"""CPU inference latency (via ``ppseg bench``) and training throughput of ppseg models, as tables.

    python benchmarks/latency.py                                  # PP-MobileSeg Base + Tiny, 512x512, 1 and 2 threads
    python benchmarks/latency.py --models pp_mobileseg_tiny --size 512 512 --threads 1 --runs 20
    python benchmarks/latency.py --backends torch,onnxruntime,paddle --ops vim
    python benchmarks/latency.py --train                          # also training images/s (batch 4, AdamW, 2 threads)
    python benchmarks/latency.py --train --no-inference           # training throughput only
    python benchmarks/latency.py --json out.json

Inference rows come from :func:`ppseg.bench.run_benchmark` (the library behind
``ppseg bench``): the whole path from an H x W x 3 uint8 image to the label map,
median and p90 ms over --runs after --warmup, every (backend, threads) pair in a
fresh process, for each post-processing in --ops (``argmax``: full-resolution
logits + argmax; ``vim``: the reference's VIM on low-resolution logits; models
without low-resolution logits skip ``vim``). Backends: ``torch`` (ppseg.Segmentor),
``onnxruntime`` (exported once, ppseg.deploy.Predictor) and, when ``paddle`` and
``paddleseg`` are importable (optional, never a dependency), ``paddle``: the
PaddleSeg reference model timed the same way in the same run, with the ratio printed.

Training throughput runs the trainer's step on random data (no loader): the model's
recipe config (loss: 0.8 CE + 0.2 Lovász MixedLoss; AdamW with its param groups;
schedule), 150 classes, labels made of blocks of 25 classes per batch, through the same
forward/loss functions as ``ppseg train`` (the fused low-resolution CE + Lovász path;
``PPSEG_FUSED_LOSS=0`` for the plain one).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

import ppseg
from ppseg.bench import BenchConfig, format_table, paddle_available, parse_backends, run_benchmark

REFERENCE_TRAIN_IMG_S = {"pp_mobileseg_tiny": 1.78, "pp_mobileseg_base": 1.05}  # measured on this machine (issue 3)


def inference_rows(args: argparse.Namespace) -> list[dict]:
    w, h = args.size
    backends = parse_backends(args.backends) if args.backends else \
        ("torch", "onnxruntime") + (("paddle",) if paddle_available() else ())
    rows: list[dict] = []
    for name in args.models:
        model = ppseg.create_model(name, num_classes=args.num_classes)
        for op in args.ops:
            if op == "vim" and not callable(getattr(model, "forward_lowres", None)):
                print(f"({name}: no low-resolution logits, vim skipped)")
                continue
            cfg = BenchConfig(name, {"num_classes": args.num_classes}, (1, 3, h, w), threads=tuple(args.threads),
                              backends=backends, output_op=op, uint8_input=args.uint8_input, ort_opt=args.ort_opt,
                              runs=args.runs, warmup=args.warmup, channels_last=args.channels_last)
            rows += run_benchmark(cfg, progress=lambda s: print(s, flush=True))
    return rows


TRAIN_CONFIGS = {"pp_mobileseg_tiny": "configs/pp_mobileseg/tiny_ade20k_512x512_80k.yml",
                 "pp_mobileseg_base": "configs/pp_mobileseg/base_ade20k_512x512_80k.yml"}
"""The recipe whose loss, optimizer (param groups) and segmentor the training benchmark uses."""


def train_throughput(name: str, size: tuple[int, int], batch: int, steps: int, threads: int,
                     channels_last: bool, amp: bool, num_classes: int, config: str | None = None,
                     profile: str | None = None) -> float:
    """Training images/s of ``name`` with its recipe's loss, optimizer and schedule.

    The step is the trainer's: :func:`ppseg.semantic.task.train_forward` (low-resolution
    logits for the loss when :func:`~ppseg.semantic.task.lowres_loss_applies`), the
    config's losses through :func:`ppseg.losses.compute_losses`, ``zero_grad(set_to_none)``,
    backward, optimizer and scheduler step (no EMA, no data loading: random images and
    labels made of blocks of 25 classes per batch). ``PPSEG_FUSED_LOSS=0`` measures the
    plain (unfused) loss path. ``profile``: write a torch.profiler table (self CPU time) of
    the timed steps to this file.
    """
    from pathlib import Path

    from ppseg.config import load_config
    from ppseg.engine import build
    from ppseg.semantic.segmentor import build_segmentor
    from ppseg.semantic.task import lowres_loss_applies, train_forward
    from ppseg.losses import compute_losses

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg_path = config or TRAIN_CONFIGS.get(name)
    if cfg_path is None:
        raise SystemExit(f"--train: no recipe config known for {name}; pass --train-config")
    cfg = load_config(Path(__file__).resolve().parents[1] / cfg_path if not Path(cfg_path).exists() else cfg_path)
    _, _, model = build.build_model(cfg, num_classes)
    seg = build_segmentor(cfg, model).train()
    losses, coef = build.build_losses(cfg)
    optimizer, scheduler = build.optim_spec(cfg).build(seg.model, int(cfg["iters"]))
    w, h = size
    x = torch.rand(batch, 3, h, w) * 255.0
    # Realistic labels: blocks of ~25 distinct classes per batch (an ADE20K crop holds about
    # that many), not per-pixel noise over all classes (which makes Lovász sort 150 maps).
    present = torch.randperm(num_classes)[:25]
    blocks = present[torch.randint(0, len(present), (batch, 1, 8, 8))].float()
    y = F.interpolate(blocks, size=(h, w), mode="nearest")[:, 0].long()
    if channels_last:
        seg = seg.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    lowres = lowres_loss_applies(seg.model, losses, "bf16" if amp else "off", 1)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            outputs = train_forward(seg, seg, x, y, lowres)
        loss, _ = compute_losses([o.float() for o in outputs], y, losses, coef)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()

    step()
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            for _ in range(steps):
                step()
            elapsed = time.perf_counter() - t
        Path(profile).write_text(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        return batch * steps / elapsed
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["pp_mobileseg_base", "pp_mobileseg_tiny"])
    p.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=150)
    p.add_argument("--ops", nargs="+", default=["argmax", "vim"], choices=("argmax", "vim", "none", "softmax"),
                   help="post-processing / ONNX output ops to time (default argmax vim)")
    p.add_argument("--backends", default=None,
                   help="comma-separated torch,onnxruntime,paddle (default torch,onnxruntime, plus paddle if installed)")
    p.add_argument("--uint8-input", action="store_true", help="ONNX Runtime: uint8 NHWC graph input")
    p.add_argument("--ort-opt", default="all", choices=("disable", "basic", "extended", "all"))
    p.add_argument("--channels-last", action="store_true", help="torch: channels-last memory format for inference")
    p.add_argument("--no-inference", action="store_true", help="skip the inference latency table")
    p.add_argument("--train", action="store_true", help="also measure training images/s")
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--train-threads", type=int, default=2)
    p.add_argument("--train-settings", nargs="+", default=["contiguous", "channels-last", "channels-last+bf16"],
                   choices=("contiguous", "channels-last", "contiguous+bf16", "channels-last+bf16"),
                   help="memory format (+ bf16 autocast) of the training rows")
    p.add_argument("--train-config", default=None, help="recipe config for --train (default: the model's ADE20K one)")
    p.add_argument("--train-profile", default=None,
                   help="write torch.profiler tables of the timed training steps to <this>.<model>.<setting>.txt")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    size = tuple(args.size)

    rows: list[dict] = []
    if not args.no_inference:
        rows = inference_rows(args)
        print(f"\nInference latency, image -> label map, batch 1, {size[0]}x{size[1]}, {args.num_classes} classes, "
              f"random weights (torch {torch.__version__}, {'channels-last' if args.channels_last else 'contiguous'})")
        print(format_table(rows))

    train_rows = []
    if args.train:
        import os

        fused = os.environ.get("PPSEG_FUSED_LOSS", "1") not in ("0", "false", "off", "no")
        print(f"\nTraining throughput: batch {args.train_batch}, {size[0]}x{size[1]}, recipe loss + optimizer, "
              f"{args.train_threads} threads, {'fused' if fused else 'plain (PPSEG_FUSED_LOSS=0)'} loss path")
        print(f"{'model':<22} {'setting':<28} {'img/s':>7} {'reference':>10} {'ratio':>7}")
        for name in args.models:
            for setting_name in args.train_settings:
                cl, amp = setting_name.startswith("channels-last"), setting_name.endswith("+bf16")
                prof = f"{args.train_profile}.{name}.{setting_name}.txt" if args.train_profile else None
                ips = train_throughput(name, size, args.train_batch, args.train_steps, args.train_threads, cl, amp,
                                       args.num_classes, args.train_config, prof)
                setting = ("channels-last" if cl else "contiguous") + (" + bf16 autocast" if amp else "")
                ref = REFERENCE_TRAIN_IMG_S.get(name)
                train_rows.append({"model": name, "setting": setting, "img_s": ips, "reference_img_s": ref})
                ratio = f"{ips / ref:.2f}x" if ref else ""
                print(f"{name:<22} {setting:<28} {ips:>7.2f} {ref if ref else '':>10} {ratio:>7}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"inference": rows, "training": train_rows}, f, indent=2)


if __name__ == "__main__":
    main()
