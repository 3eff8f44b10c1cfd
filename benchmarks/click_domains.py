"""EISeg's domain models, ppseg's way: NoC of the general click model on each domain's val split,
before and after fine-tuning on that domain, as a table (issue 14, item 7).

    python benchmarks/click_domains.py                       # roads, drive, membrane, cracks
    python benchmarks/click_domains.py --domains roads --limit 20 --json out.json

For each domain: ``ppseg click-eval`` of the general model (``zoo:click_mnv3_lite``) on the val
objects, ``ppseg train -c configs/interactive/domains/<domain>.yml`` (starts from the general
model: ``train.init_weights``), ``ppseg click-eval`` of the fine-tuned model on the same objects
with the same clicker, and OpenCV's GrabCut on them too. Objects are the connected components
of the domain's foreground class with the config's minimum area (thin structures: vessel trees,
crack lines, membrane networks, road networks).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DOMAINS = ("roads", "drive", "membrane", "cracks")


def click_eval(model: str, data: str, min_area: int, limit: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "ppseg", "click-eval", "--model", model, "--data", data, "--list", "val.txt",
           "--split-mode", "components", "--min-area", str(min_area), "--limit", str(limit), "--json", str(out)]
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    ap.add_argument("--model", default="zoo:click_mnv3_lite", help="the general model")
    ap.add_argument("--limit", type=int, default=40, help="val objects per domain")
    ap.add_argument("--out", default="runs/domains", help="run folders and JSON results")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out = REPO / args.out
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for d in args.domains:
        cfg_path = REPO / "configs" / "interactive" / "domains" / f"{d}.yml"
        src = yaml.safe_load(cfg_path.read_text())["val_dataset"]["sources"][0]
        data, area = str((REPO / src["dataset_root"]).resolve()), int(src["min_area"])
        before = click_eval(args.model, data, area, args.limit, out / f"{d}_before.json")
        grabcut = click_eval("opencv-grabcut", data, area, args.limit, out / f"{d}_grabcut.json")
        run = out / d
        subprocess.run([sys.executable, "-m", "ppseg", "train", "-c", str(cfg_path), "--save-dir", str(run),
                        "--opts", f"train.init_weights={args.model}"], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        after = click_eval(str(run / "last_model.pt"), data, area, args.limit, out / f"{d}_after.json")
        rows.append({"domain": d, "objects": before["num_objects"], "grabcut": grabcut, "before": before, "after": after})
        print(f"{d}: NoC@90 {before['noc90']:.2f} -> {after['noc90']:.2f} (GrabCut {grabcut['noc90']:.2f})", flush=True)
    print("\n| domain | objects | GrabCut NoC@85 / @90 | general model NoC@85 / @90 | fine-tuned NoC@85 / @90 | mIoU@5 general -> fine-tuned |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        g, b, a = r["grabcut"], r["before"], r["after"]
        print(f"| {r['domain']} | {r['objects']} | {g['noc85']:.2f} / {g['noc90']:.2f} | {b['noc85']:.2f} / {b['noc90']:.2f} | "
              f"{a['noc85']:.2f} / {a['noc90']:.2f} | {b['miou_at']['5']:.3f} -> {a['miou_at']['5']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
