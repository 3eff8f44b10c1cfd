"""Convert an official checkpoint (PaddleSeg .pdparams or MMSeg .pth) into a ppseg weights file.

The file is read without running code from it. Every checkpoint tensor must be
used and every model tensor filled (BN num_batches_tracked is set to 0), or the
command names the first key that does not fit and writes nothing. num_classes is
read from the checkpoint's classifier unless given. The output works with
'ppseg val/predict --model' (config model of the same name and num_classes) and
with ppseg.load_segmentor().

Examples:
    ppseg convert --from paddle model.pdparams --model pp_mobileseg_base --out mobileseg_base_ade.pt
    ppseg convert --from paddle model.pdparams --model pp_mobileseg_tiny --out tiny.pt --opts aam_gate_act=relu6
    ppseg convert --from mmseg pp_mobileseg_mobilenetv3_3rdparty-base-ed0be681.pth --model pp_mobileseg_base \\
        --out base_mmseg.pt --num-classes 150
"""

from __future__ import annotations

import argparse

HELP = "convert a PaddleSeg .pdparams or MMSeg .pth checkpoint into a ppseg weights file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="source", required=True, choices=("paddle", "mmseg"),
                   help="checkpoint format: paddle (.pdparams) or mmseg (.pth)")
    p.add_argument("src", metavar="SRC", help="the checkpoint to convert")
    p.add_argument("--model", required=True, metavar="NAME", help="registry name, e.g. pp_mobileseg_tiny")
    p.add_argument("--out", required=True, metavar="DST", help="weights file to write, e.g. tiny_ade.pt")
    p.add_argument("--num-classes", type=int, default=None, metavar="N",
                   help="classes of the checkpoint (default: read from its classifier)")
    p.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE",
                   help="model constructor arguments, e.g. --opts aam_gate_act=relu6")


def run(args: argparse.Namespace) -> int:
    from ..config import parse_opts
    from ..convert.api import convert_checkpoint
    from ..errors import ConfigError

    from ..fileio import check_output_path

    check_output_path(args.out, "--out")
    kwargs: dict = {}
    for key, value in parse_opts(args.opts):
        if "." in key:
            raise ConfigError(f"--opts: '{key}': model arguments have no sub-keys")
        if key in kwargs:
            raise ConfigError(f"--opts: '{key}' given twice")
        kwargs[key] = value
    from ..config import MAX_CLASSES

    if args.num_classes is not None and not 1 <= args.num_classes <= MAX_CLASSES:
        raise ConfigError(f"--num-classes must be in [1, {MAX_CLASSES}], got {args.num_classes}")
    report = convert_checkpoint(args.src, source=args.source, model=args.model, out=args.out,
                                num_classes=args.num_classes, **kwargs)
    print(report.summary())
    return 0
