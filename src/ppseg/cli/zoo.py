"""The models shipped inside ppseg (trained weights + model cards).

Examples:
    ppseg zoo list
    ppseg zoo show click_mnv3_lite
    ppseg click-eval --model zoo:click_mnv3_lite --data DIR
"""

from __future__ import annotations

import argparse
import json

HELP = "list the shipped trained models (use them as --model zoo:NAME)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "show"), help="list the models, or show one model card")
    p.add_argument("name", nargs="?", help="the model to show (zoo:NAME or NAME)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..zoo import get_entry, zoo_entries

    if args.action == "show":
        if not args.name:
            raise ConfigError("ppseg zoo show needs a model name (see ppseg zoo list)")
        entry = get_entry(args.name)
        print(json.dumps(entry.card, indent=2))
        return 0
    entries = zoo_entries()
    if args.json:
        print(json.dumps([{"name": e.name, "task": e.task, "model": e.model, "size_mb": round(e.size_mb, 2),
                           "summary": e.summary} for e in entries], indent=2))
        return 0
    if not entries:
        print("no models are shipped with this ppseg")
        return 0
    rows = [("name", "task", "model", "MB", "summary")] + [
        (f"zoo:{e.name}", e.task, e.model, f"{e.size_mb:.1f}", e.summary) for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])
    return 0
