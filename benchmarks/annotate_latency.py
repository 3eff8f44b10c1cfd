"""Click latency of ``ppseg annotate`` end to end, in a real browser: pointer down -> mask on screen.

    python benchmarks/annotate_latency.py                      # the shipped model, three image sizes
    python benchmarks/annotate_latency.py --model zoo:click_em_cells --clicks 30 --json lat.json

Starts ``ppseg annotate`` on a folder of photos (a 320x240 portrait from tests/data/annotate, a
480x360 CamVid street and a 1280x720 frame of juggle.mp4 when ../shared/data is there), opens the
page in headless Debian chromium (Playwright), and on each image makes rounds of clicks (positive,
then negative, then positive; Esc between rounds) the way a user does: each click waits for its
mask. The page measures each click from the pointerdown event to the animation frame after the mask
was drawn (``window.ppseg.stats``); the server reports its own time and the network's inference.
Prints one row per image: p50 / p90 end to end, server p50, inference p50.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def photos(folder: Path) -> list[str]:
    folder.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "data" / "annotate" / "person_2.jpg", folder / "a_portrait_240x320.jpg")
    camvid = sorted((SHARED / "camvid" / "images").rglob("*.jpg")) + sorted((SHARED / "camvid" / "images").rglob("*.png"))
    if camvid:
        cv2.imwrite(str(folder / "b_street_480x360.jpg"), cv2.imread(str(camvid[0])))
    clip = SHARED / "video" / "juggle.mp4"
    if clip.is_file():
        ok, frame = cv2.VideoCapture(str(clip)).read()
        if ok:
            cv2.imwrite(str(folder / "c_juggle_1280x720.jpg"), frame)
    return sorted(p.name for p in folder.iterdir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="click model (default: the shipped one)")
    ap.add_argument("--clicks", type=int, default=21, help="clicks per image (default 21)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with tempfile.TemporaryDirectory() as tmp:
        names = photos(Path(tmp) / "photos")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "ppseg", "annotate", str(Path(tmp) / "photos"), "--no-browser", "--port", str(port),
               "--out", str(Path(tmp) / "out")] + (["--model", args.model] if args.model else [])
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=os.environ.copy())
        rows = []
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                for _ in range(100):
                    try:
                        page.goto(f"http://127.0.0.1:{port}/")
                        break
                    except Exception:  # noqa: BLE001 - the server is still starting
                        time.sleep(0.3)
                page.wait_for_function("window.ppseg && window.ppseg.ready")
                for index, name in enumerate(names):
                    page.evaluate(f"window.ppseg.open({index})")
                    page.wait_for_function(f"window.ppseg.state.info && window.ppseg.state.info.index === {index}")
                    page.evaluate("window.ppseg.idle()")
                    info = page.evaluate("window.ppseg.state.info")
                    w, h = info["width"], info["height"]
                    rng = np.random.default_rng(index)
                    page.evaluate("window.ppseg.stats.clickLatencies.length = 0; window.ppseg.stats.serverMs.length = 0;"
                                  " window.ppseg.stats.inferMs.length = 0")
                    for k in range(args.clicks):
                        if k % 3 == 0 and k:
                            page.keyboard.press("Escape")
                            page.evaluate("window.ppseg.idle()")
                        x, y = float(rng.uniform(0.3, 0.7) * w), float(rng.uniform(0.3, 0.7) * h)
                        c = page.evaluate(f"window.ppseg.toClient({x}, {y})")
                        page.mouse.click(c["x"], c["y"], button="left" if k % 3 != 1 else "right")
                        page.evaluate("window.ppseg.idle()")
                    stats = page.evaluate("window.ppseg.stats")
                    lat, srv, inf = (np.asarray(stats[k], float) for k in ("clickLatencies", "serverMs", "inferMs"))
                    rows.append({"image": name, "size": f"{w}x{h}", "clicks": int(lat.size),
                                 "p50_ms": round(float(np.percentile(lat, 50)), 1),
                                 "p90_ms": round(float(np.percentile(lat, 90)), 1),
                                 "server_p50_ms": round(float(np.percentile(srv, 50)), 1),
                                 "infer_p50_ms": round(float(np.percentile(inf, 50)), 1)})
                    page.keyboard.press("Escape")
                browser.close()
        finally:
            server.kill()
            server.wait(10)
    print(f"click -> mask on screen, {args.model or 'zoo:click_mnv3_lite'}, ONNX Runtime "
          f"(threads: {'ONNX Runtime default' if 'OMP_NUM_THREADS' not in os.environ else os.environ['OMP_NUM_THREADS']})")
    print(f"{'image':26s} {'size':>9s} {'clicks':>6s} {'p50 ms':>7s} {'p90 ms':>7s} {'server p50':>10s} {'infer p50':>9s}")
    for r in rows:
        print(f"{r['image']:26s} {r['size']:>9s} {r['clicks']:6d} {r['p50_ms']:7.1f} {r['p90_ms']:7.1f} "
              f"{r['server_p50_ms']:10.1f} {r['infer_p50_ms']:9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
