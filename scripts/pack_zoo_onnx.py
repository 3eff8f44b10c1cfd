"""Ship a zoo model's ONNX graph next to its weights, so it runs without torch.

    python scripts/pack_zoo_onnx.py click_mnv3_lite

Exports ``zoo:NAME`` with ``weights_fp16=True`` (float16 storage, float32 compute: half the size,
see ppseg.export.compact) to ``src/ppseg/zoo/onnx/NAME.onnx`` + its sidecar ``NAME.json``, and
records the graph, its SHA-256 and the check against torch in the model card (``onnx``,
``onnx_sha256``, ``onnx_check``). ``load_click_predictor("zoo:NAME")`` uses the graph when torch is
not installed (``pip install "ppseg[annotate]"``) or when asked to (``prefer_onnx=True``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from ppseg.export import export_click_onnx
from ppseg.zoo import ZOO_DIR, get_entry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    args = ap.parse_args()
    entry = get_entry(args.name, task="interactive")
    with tempfile.TemporaryDirectory() as tmp:
        result = export_click_onnx(entry.weights, Path(tmp) / "export", weights_fp16=True)
        (ZOO_DIR / "onnx").mkdir(exist_ok=True)
        onnx_path = ZOO_DIR / "onnx" / f"{entry.name}.onnx"
        shutil.copyfile(result.onnx_path, onnx_path)
        shutil.copyfile(result.sidecar_path, onnx_path.with_suffix(".json"))
    card_path = ZOO_DIR / f"{entry.name}.json"
    card = json.loads(card_path.read_text())
    card["onnx"] = f"onnx/{onnx_path.name}"
    card["onnx_sha256"] = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    card["onnx_mb"] = round(onnx_path.stat().st_size / 2**20, 2)
    card["onnx_check"] = {"weights": "float16 storage, float32 compute",
                          "max_prob_diff_vs_torch": float(f"{result.check['max_prob_diff']:.3g}")}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"{onnx_path} ({card['onnx_mb']} MB), max |prob diff| vs torch {result.check['max_prob_diff']:.2e}")


if __name__ == "__main__":
    main()
