"""Check a dataset before training: missing or unreadable files, size mismatches,
label values outside [0, num_classes) plus the ignore value, 0/255 masks, RGB or
palette labels, and the per-class pixel histogram.

Give a config (its train_dataset and val_dataset are checked) or a directory
(file lists train.txt/val.txt, images/ + labels/, Cityscapes or ADE20K layouts
are recognised). Exit code 1 when any error is found.

Examples:
    ppseg check-data configs/lraspp/lraspp_mobilenetv3_large_camvid.yml
    ppseg check-data ../shared/data/camvid --num-classes 11 --ignore-index 11
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check a dataset (config or directory) for problems"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="CONFIG_OR_DIR", help="a YAML config, a dataset directory, or a file list")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides (with a config)")
    p.add_argument("--num-classes", type=int, default=None, help="for a directory: the number of classes "
                   "(default: inferred from the labels)")
    p.add_argument("--ignore-index", type=int, default=None, help="for a directory: the ignore value in the label files")
    p.add_argument("--num-workers", type=int, default=2, help="threads reading files")


def _specs_from_config(path: str, opts: list[str]) -> list:
    from ..config import check_keys, load_config, signature_params
    from ..data.check import DatasetSpec
    from ..data.datasets import DATASETS
    from ..engine import build

    cfg = load_config(path, opts)
    build.check_top_level(cfg)
    specs = []
    for key, mode in (("train_dataset", "train"), ("val_dataset", "val")):
        if not cfg.get(key):
            continue
        section = build.section(cfg, key)  # a mapping, or one error naming the key
        kind = section.get("type")
        if kind not in DATASETS:
            build.build_typed(section, DATASETS, cfg, key)  # raises the did-you-mean error
        kwargs = {k: v for k, v in section.items() if k not in ("type", "transforms")}
        check_keys(kwargs, signature_params(DATASETS[kind]), cfg, key)
        specs.append(DatasetSpec(f"{key} ({cfg.path})", kind, {**kwargs, "mode": mode}))
    if not specs:
        from ..errors import ConfigError

        raise ConfigError(f"{cfg.path}: no train_dataset or val_dataset section to check")
    return specs


def run(args: argparse.Namespace) -> int:
    from ..data.check import ERROR, check_dataset, discover
    from ..errors import ConfigError, DataError

    if args.num_workers < 0:
        raise ConfigError(f"--num-workers must be >= 0, got {args.num_workers}")
    target = Path(args.target)
    if target.suffix in (".yml", ".yaml"):
        given = [o for o, v in (("--num-classes", args.num_classes), ("--ignore-index", args.ignore_index))
                 if v is not None]
        if given:
            raise ConfigError(f"{'/'.join(given)}: for a dataset directory or file list; with a config, set "
                              f"num_classes / ignore_index in its dataset sections (or --opts "
                              "train_dataset.num_classes=N)")
        specs = _specs_from_config(args.target, args.opts)
    else:
        if args.opts:
            raise ConfigError(f"--opts needs a config (.yml); {args.target} is not one")
        specs = discover(args.target)
        for s in specs:
            if args.num_classes is not None:
                s.kwargs["num_classes"] = args.num_classes
            if args.ignore_index is not None:
                s.kwargs["ignore_index"] = args.ignore_index
    failed = []
    for spec in specs:
        report = check_dataset(spec, num_workers=args.num_workers, progress=sys.stderr.isatty())
        print(report.format())
        print()
        if not report.ok:
            failed.append(report)
    if failed:  # the report is on stdout; stderr gets the one line every failing command gives
        errors = [p for r in failed for p in r.problems if p.severity == ERROR]
        first = errors[0] if errors else None
        where = f"; first: {first.kind} {first.path}: {first.detail}" if first else ""
        raise DataError(f"{len(errors)} error(s) in {len(failed)} of {len(specs)} dataset(s) (report above){where}")
    return 0
