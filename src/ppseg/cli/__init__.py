"""The ``ppseg`` command line: ``ppseg <command> --help`` for each command."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import PPSegError
from . import bench, check_data, convert, export, humanseg, predict, train, val

COMMANDS = {"train": train, "val": val, "predict": predict, "check-data": check_data, "convert": convert,
            "export": export, "bench": bench, "humanseg": humanseg}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppseg", description="Fast segmentation: train, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"ppseg {__version__}")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        return int(args.run(args) or 0)
    except PPSegError as e:
        print(f"ppseg {args.command}: error: {e}", file=sys.stderr)
        return 1
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
