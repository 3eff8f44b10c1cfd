"""The ``ppseg`` command line: ``ppseg <command> --help`` for each command."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .. import __version__
from ..errors import PPSegError
from ..fileio import describe_os_error
from . import annotate, bench, check_data, click_eval, convert, export, humanseg, predict, train, val, zoo

COMMANDS = {"train": train, "val": val, "predict": predict, "check-data": check_data, "convert": convert,
            "export": export, "bench": bench, "humanseg": humanseg, "click-eval": click_eval, "zoo": zoo,
            "annotate": annotate}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppseg", description="Fast segmentation: train, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"ppseg {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks instead of one-line errors (also PPSEG_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the time (redirections, test capture)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stdout

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging() -> None:
    logger = logging.getLogger("ppseg")
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _out_of_memory(e: RuntimeError) -> bool:
    """torch's allocation failures: ``torch.OutOfMemoryError`` (CUDA) and the CPU allocator's
    ``RuntimeError: ... can't allocate memory`` (neither is a ``MemoryError``)."""
    return type(e).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(e)


def quiet_native_libraries() -> None:
    """OpenCV's log and ffmpeg's messages off (``[ WARN:0@0.1] ...``, ``[mjpeg @ 0x...] overread 8``),
    so that ppseg's one-line error is the only line on stderr (``--debug`` keeps them). ffmpeg reads
    ``OPENCV_FFMPEG_LOGLEVEL`` when OpenCV first opens a video, so this runs before any command does;
    values the user set are kept. libpng's messages are captured around each decode instead
    (:func:`ppseg.data.io.capture_native_stderr`)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    if "cv2" in sys.modules and os.environ["OPENCV_LOG_LEVEL"].upper() == "OFF":  # imported already: no re-read
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def main(argv: list[str] | None = None) -> int:
    """Run a command. Expected failures (bad input, OS errors with their path, out of memory) are
    one line on stderr and exit code 1; ``--debug`` or ``PPSEG_DEBUG=1`` shows the traceback.
    Anything else is a bug in ppseg and keeps its traceback."""
    args = build_parser().parse_args(argv)
    setup_logging()
    debug = args.debug or os.environ.get("PPSEG_DEBUG", "") not in ("", "0")
    if not debug:
        quiet_native_libraries()

    def fail(message: str) -> int:
        if debug:
            raise
        print(f"ppseg {args.command}: error: {message}", file=sys.stderr)
        return 1

    try:
        return int(args.run(args) or 0)
    except PPSegError as e:
        return fail(str(e))
    except OSError as e:
        return fail(describe_os_error(e))
    except MemoryError:
        return fail("out of memory (try a smaller input, batch or image size)")
    except RuntimeError as e:
        if not _out_of_memory(e):
            raise
        return fail("out of memory (try a smaller input, batch or image size)")
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "torch":
            raise
        print(f"ppseg {args.command}: error: this command needs PyTorch, which is not installed: "
              "pip install 'ppseg[train]' (the torch-free runtime is ppseg.deploy)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ppseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
