"""Put a trained model into the zoo: fp16 weights + its model card, in src/ppseg/zoo/.

    python scripts/pack_zoo_model.py runs/click_mnv3_lite/best_model.pt --name click_mnv3_lite --card card.json

The weights file keeps the model name, kwargs and meta (task, normalisation, interactive settings)
and drops everything a deployment does not need (optimizer state, history); floating-point tensors
are stored as fp16 (loaded back as float32). The card (JSON) must say what the model is for
(``task``), what it is (``model``) and how it was made (``data``, ``recipe``, ``command``); the
weights file's SHA-256 and size are added to it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import torch

from ppseg.weights import atomic_save, load_file, weights_file

ZOO = Path(__file__).resolve().parents[1] / "src" / "ppseg" / "zoo"
REQUIRED = ("task", "model", "summary", "data", "recipe", "command")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("--name", required=True)
    ap.add_argument("--card", required=True, help="the model card (JSON)")
    ap.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE",
                    help="interactive settings to record instead of the run's (e.g. min_crop_size=200)")
    args = ap.parse_args()
    ckpt = load_file(args.weights)
    card = json.loads(Path(args.card).read_text())
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise SystemExit(f"{args.card}: the card lacks {missing}")
    if card["model"] != ckpt["model"]:
        raise SystemExit(f"{args.card}: says model {card['model']!r} but the weights hold {ckpt['model']!r}")
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()}
    meta = {k: v for k, v in (ckpt.get("meta") or {}).items() if k not in ("history", "config")}
    meta["zoo"] = args.name
    if args.settings:
        from ppseg.interactive.session import InteractiveSettings

        settings = dict((meta.get("interactive") or {}).get("settings") or {})
        for item in args.settings:
            key, _, value = item.partition("=")
            settings[key] = json.loads(value)
        meta["interactive"] = {**(meta.get("interactive") or {}),
                               "settings": InteractiveSettings.from_dict(settings, "--settings").to_dict()}
    out = ZOO / f"{args.name}.pt"
    atomic_save(weights_file(ckpt["model"], ckpt.get("model_kwargs", {}), state, **meta), out)
    card["weights"] = out.name
    card["weights_sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    card["weights_mb"] = round(out.stat().st_size / 2**20, 2)
    card["parameters"] = int(sum(v.numel() for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))))
    (ZOO / f"{args.name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out} ({card['weights_mb']} MB) and {ZOO / (args.name + '.json')}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
