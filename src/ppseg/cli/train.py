"""Train a model from a YAML config (iteration-based, resumable, multi-process with torchrun).

Examples:
    ppseg train -c configs/lraspp/lraspp_mobilenetv3_large_camvid.yml
    ppseg train -c CFG --opts iters=2000 batch_size=4 train.amp=bf16
    ppseg train -c CFG --resume                  # continue output/<name>/checkpoints/latest.pt
    torchrun --nproc_per_node 2 -m ppseg train -c CFG
"""

from __future__ import annotations

import argparse

from .common import add_config_args, load_config_args

HELP = "train a model from a config"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="resume from the run directory's checkpoints/latest.pt (or the file given)")
    p.add_argument("--save-dir", default=None, help="run directory (default: train.save_dir or output/<config name>)")


def run(args: argparse.Namespace) -> int:
    from ..engine.trainer import Trainer

    cfg = load_config_args(args)
    trainer = Trainer(cfg, resume=args.resume, save_dir=args.save_dir)
    try:
        run_dir = trainer.train()
    finally:
        from ..engine import dist

        dist.cleanup()
    print(f"run directory: {run_dir}")
    return 0
