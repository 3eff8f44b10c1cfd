"""`make demo`: train, evaluate and predict on the bundled 10-image CamVid sample.

Runs the same three commands a user would type, so the output shows them:

    ppseg train   -c configs/demo/camvid_mini.yml
    ppseg val     -c configs/demo/camvid_mini.yml --model output/demo/best_model.pt
    ppseg predict -c configs/demo/camvid_mini.yml --model output/demo/best_model.pt \
                  --input examples/camvid_mini/images/val --save-dir output/demo/predict
    ppseg export  -c configs/demo/camvid_mini.yml --model output/demo/best_model.pt --out output/demo/export

and finally runs the exported model with the torch-free ``ppseg.deploy.Predictor``
and compares its labels with those of ``ppseg predict``.
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


def deploy_check() -> None:
    """The exported model through the torch-free predictor gives the labels `ppseg predict` wrote."""
    import numpy as np
    from PIL import Image

    from ppseg.deploy import Predictor

    print("\n$ python -c 'from ppseg.deploy import Predictor; ...'", flush=True)
    predictor = Predictor(REPO / RUN / "export" / "model.onnx", threads=1)
    same = total = 0
    for path, labels in predictor.predict_dir(REPO / "examples" / "camvid_mini" / "images" / "val"):
        ref = np.asarray(Image.open(REPO / RUN / "predict" / "labels" / f"{path.stem}.png"))
        same, total = same + int((labels == ref).sum()), total + ref.size
    print(f"ONNX Runtime labels equal ppseg predict's on {100 * same / total:.3f} % of pixels")


def main() -> int:
    start = time.perf_counter()
    shutil.rmtree(REPO / RUN, ignore_errors=True)
    try:
        ppseg("train", "-c", CONFIG)
        ppseg("val", "-c", CONFIG, "--model", str(RUN / "best_model.pt"),
              "--confusion-matrix", str(RUN / "confusion_matrix.png"))
        ppseg("predict", "-c", CONFIG, "--model", str(RUN / "best_model.pt"),
              "--input", "examples/camvid_mini/images/val", "--save-dir", str(RUN / "predict"))
        ppseg("export", "-c", CONFIG, "--model", str(RUN / "best_model.pt"), "--out", str(RUN / "export"))
        deploy_check()
    except subprocess.CalledProcessError as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    out = REPO / RUN
    print(f"\nDemo finished in {time.perf_counter() - start:.0f} s. Outputs:")
    print(f"  run directory      {out}  (train.log, curves.png, best_model.pt, checkpoints/)")
    print(f"  confusion matrix   {out / 'confusion_matrix.png'}")
    print(f"  predictions        {out / 'predict'}/{{labels,pseudo_color,overlay}}/")
    print(f"  ONNX + sidecar     {out / 'export'}/{{model.onnx,model.json}}  (run with ppseg.deploy.Predictor)")
    print("This is a 150-iteration run on 8 tiny images, a smoke test of the toolkit, not a trained model;")
    print("see the README for real training on CamVid.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
