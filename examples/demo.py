"""`make demo`: train, evaluate and predict on the bundled 10-image CamVid sample.

Runs the same three commands a user would type, so the output shows them:

    ppseg train   -c configs/demo/camvid_mini.yml
    ppseg val     -c configs/demo/camvid_mini.yml --model output/demo/best_model.pt
    ppseg predict -c configs/demo/camvid_mini.yml --model output/demo/best_model.pt \
                  --input examples/camvid_mini/images/val --save-dir output/demo/predict
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/demo/camvid_mini.yml"
RUN = Path("output/demo")


def ppseg(*args: str) -> None:
    print(f"\n$ ppseg {' '.join(shlex.quote(a) for a in args)}", flush=True)
    subprocess.run([sys.executable, "-m", "ppseg", *args], cwd=REPO, check=True)


def main() -> int:
    start = time.perf_counter()
    shutil.rmtree(REPO / RUN, ignore_errors=True)
    try:
        ppseg("train", "-c", CONFIG)
        ppseg("val", "-c", CONFIG, "--model", str(RUN / "best_model.pt"),
              "--confusion-matrix", str(RUN / "confusion_matrix.png"))
        ppseg("predict", "-c", CONFIG, "--model", str(RUN / "best_model.pt"),
              "--input", "examples/camvid_mini/images/val", "--save-dir", str(RUN / "predict"))
    except subprocess.CalledProcessError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    out = REPO / RUN
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s. Outputs:")
    print(f"  run directory      {out}  (train.log, curves.png, best_model.pt, checkpoints/)")
    print(f"  confusion matrix   {out / 'confusion_matrix.png'}")
    print(f"  predictions        {out / 'predict'}/{{labels,pseudo_color,overlay}}/")
    print("This is a 150-iteration run on 8 tiny images, a smoke test of the toolkit, not a trained model;")
    print("see the README for real training on CamVid.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
