"""Person segmentation for images, videos and webcams: masks, alpha mattes, background replacement.

The model is an exported ONNX file (`ppseg export ... --output-op softmax`; runs on ONNX
Runtime, no torch needed) or a ppseg weights file (runs on PyTorch). The person probability
is the softmax of class 1. Videos and webcams are stabilised over time by default: the
previous result is warped to the current frame with optical flow and fused with the new
prediction (--no-stabilize to turn it off).

Outputs (--output): mask (0/255), alpha (0..255 matte) or composite (the person over
--background color:R,G,B | image:PATH | blur[:K]). Images give a PNG each; videos and
webcams give a video (mp4v), written to a temp file and renamed when complete; a folder of
images is written to a hidden staging folder next to --out and moved into place when every
image succeeded. A failed run (a broken image, a truncated or corrupt video) leaves no output.

Examples:
    ppseg humanseg --model export/model.onnx --input call.mp4 --out call_blur.mp4
    ppseg humanseg --model export/model.onnx --input call.mp4 --out bg.mp4 --background image:beach.jpg
    ppseg humanseg --model best_model.pt --input photos/ --out masks/ --output mask
    ppseg humanseg --model export/model.onnx --input 0 --out webcam.mp4 --max-frames 300   # webcam 0
"""

from __future__ import annotations

import argparse
import sys

HELP = "person masks, alpha mattes and background replacement for images, videos, webcams"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="model.onnx from 'ppseg export' (ONNX Runtime) or a ppseg weights file / run directory (torch)")
    p.add_argument("--input", required=True,
                   help="an image, a folder of images, a video file, or a webcam index (0, 1...)")
    p.add_argument("--out", required=True,
                   help="video input: a video file (.mp4); image: a .png/.jpg file or a folder; folder: a folder")
    p.add_argument("--output", choices=("mask", "alpha", "composite"), default="composite",
                   help="what to write (default: composite)")
    p.add_argument("--background", default="blur", metavar="SPEC",
                   help="composite background: color:R,G,B | image:PATH | blur[:K] "
                        "(default: blur, K=31; K odd, 3..1001)")
    p.add_argument("--no-stabilize", dest="stabilize", action="store_false",
                   help="no temporal stabilisation of videos and webcams")
    p.add_argument("--feather", type=float, default=2.0, metavar="PX",
                   help="matte edge softness in pixels, 0..1000 (default 2)")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                   help="network input size, sides 8..2048 "
                        "(default: the exported model's, or the model's reference size)")
    p.add_argument("--threads", type=int, default=None, help="inference threads, 1..256 (default: all cores)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--fps", type=float, default=None,
                   help="output frame rate, 0.01..1000 (default: the input's, else 30)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar with frames/s (auto: when writing to a terminal)")


#: the most inference threads --threads takes (100000 crashes the process)
MAX_THREADS = 256


def run(args: argparse.Namespace) -> int:
    from ..apps.compositing import parse_background
    from ..apps.humanseg import check_feather, check_input_size, check_outputs, load_person_model, run_humanseg
    from ..apps.media import check_fps, open_source
    from ..errors import ConfigError

    # every option is checked before the input is opened, the input and --out before the model loads
    for option, value in (("--model", args.model), ("--input", args.input), ("--out", args.out)):
        if not value.strip():  # Path("") is the current folder
            raise ConfigError(f"{option} is empty")
    if args.threads is not None and not 1 <= args.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be in [1, {MAX_THREADS}], got {args.threads}")
    fps = check_fps(args.fps) if args.fps is not None else None
    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {args.max_frames}")
    feather = check_feather(args.feather)
    input_size = check_input_size(args.input_size)
    background = parse_background(args.background)  # bad specs fail before any model loading
    source = open_source(args.input, fps=fps)
    try:
        check_outputs(source, args.out, args.max_frames)
        if args.threads is not None:
            import cv2

            cv2.setNumThreads(args.threads)
        model = load_person_model(args.model, threads=args.threads, input_size=input_size)
        progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
        result = run_humanseg(model, source, args.out, output=args.output, background=background,
                              stabilize=args.stabilize if source.kind != "images" else False,
                              feather=feather, max_frames=args.max_frames, fps=fps, progress=progress)
    finally:
        source.close()
    where = result.outputs[0] if len(result.outputs) == 1 else f"{len(result.outputs)} files under {args.out}"
    line = (f"{result.frames} frame(s) in {result.seconds:.1f} s ({result.fps:.1f} frames/s, {model.backend}) "
            f"-> {where}")
    if result.flicker is not None:
        line += f"; flicker {result.flicker:.4f} (mean mask change on still pixels)"
    if result.interrupted:
        line += "; stopped by Ctrl-C"
    print(line)
    return 0
