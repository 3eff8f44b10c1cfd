"""Opening a huge image in ``ppseg annotate`` and serving its tiles, as a table.

    python benchmarks/annotate_tiles.py                  # a 10000x10000 8-bit RGB PNG (100 MP)
    python benchmarks/annotate_tiles.py --size 6000 --kind gray16 --tiles 60

The picture (smooth colour fields with texture and mild noise, so the PNG and the tiles compress
like a photo, not like a flat test card) is written to a temp folder, then measured in a fresh
child process so that the peak RSS is that of opening and serving only: ``open_image`` (header
check + decode), the first coarse tile (the whole pyramid built down to one tile, then encoded),
``tile()`` at level 0 and level 2 (cut + window + encode; the level is built before timing),
``region()`` of 1024x1024 (the click model's crop) and the peak RSS of that process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_picture(path: Path, size: int, kind: str) -> None:
    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8), (0, 0), 3)
    img = cv2.resize(cv2.normalize(small, None, 0, 255, cv2.NORM_MINMAX), (size, size), interpolation=cv2.INTER_CUBIC)
    del small
    texture = rng.integers(-12, 13, (997, 997, 3), dtype=np.int16)  # prime period: no exact repeats per tile
    reps = -(-size // 997)
    for r in range(reps):  # add the texture block row by block row (no full-size int16 copy)
        rows = slice(r * 997, min(size, (r + 1) * 997))
        band = np.tile(texture[: rows.stop - rows.start], (1, reps, 1))[:, :size]
        img[rows] = np.clip(img[rows].astype(np.int16) + band, 0, 255).astype(np.uint8)
    if kind == "gray16":
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        del img
        ok = cv2.imwrite(str(path), gray.astype(np.uint16) * 64 + 1000)
    else:
        ok = cv2.imwrite(str(path), img)
    if not ok:
        raise SystemExit(f"cannot write {path}")


def measure(path: Path, tiles: int) -> dict:
    from ppseg.apps.annotate.imaging import TilePyramid, open_image

    out: dict = {}
    t = time.perf_counter()
    img = open_image(path)
    out["decode_s"] = time.perf_counter() - t
    out["kind"], out["size"] = img.kind, f"{img.width}x{img.height}"
    t = time.perf_counter()
    pyr = TilePyramid(img)
    data, media = pyr.tile(pyr.levels - 1, 0, 0)
    out["first_coarse_tile_s"] = time.perf_counter() - t
    out["levels"] = pyr.levels
    rng = np.random.default_rng(1)
    for level in (0, 2):
        cols, rows = pyr.tile_count(level)
        pyr.level_array(level)  # built before timing
        ms, sizes, media = [], [], ""
        for _ in range(tiles):
            tx, ty = int(rng.integers(0, cols)), int(rng.integers(0, rows))
            t = time.perf_counter()
            data, media = pyr.tile(level, tx, ty)
            ms.append(1e3 * (time.perf_counter() - t))
            sizes.append(len(data))
        out[f"tile_l{level}"] = {"p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                                 "media": media, "kb": float(np.mean(sizes)) / 1024}
    x0, y0 = img.width // 3, img.height // 3
    t = time.perf_counter()
    reg = img.region(x0, y0, x0 + 1024, y0 + 1024)
    out["region_1024_ms"] = 1e3 * (time.perf_counter() - t)
    assert reg.shape == (1024, 1024, 3)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10000, help="side of the square test image (px)")
    ap.add_argument("--kind", choices=("rgb", "gray16"), default="rgb")
    ap.add_argument("--tiles", type=int, default=100, help="random tiles timed per level")
    ap.add_argument("--measure", help=argparse.SUPPRESS)  # child mode: measure this file, print JSON
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.tiles)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"big_{args.kind}.png"
        t = time.perf_counter()
        make_picture(path, args.size, args.kind)
        made = time.perf_counter() - t
        mb = path.stat().st_size / 2**20
        res = subprocess.run([sys.executable, __file__, "--measure", str(path), "--tiles", str(args.tiles)],
                             capture_output=True, text=True, env=os.environ.copy())
        if res.returncode:
            raise SystemExit(res.stderr)
        r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{r['size']} {args.kind} PNG, {mb:.0f} MiB on disk (written in {made:.1f} s), kind {r['kind']}, "
          f"{r['levels']} levels, tile 512")
    rows = [
        ("decode (open_image)", f"{r['decode_s']:.2f} s"),
        ("first coarse tile (pyramid built + encode)", f"{r['first_coarse_tile_s']:.2f} s"),
    ]
    for level in (0, 2):
        t = r[f"tile_l{level}"]
        rows.append((f"tile level {level} ({t['media']}, {t['kb']:.0f} KiB) p50 / p90",
                     f"{t['p50_ms']:.1f} / {t['p90_ms']:.1f} ms"))
    rows += [("region(1024x1024)", f"{r['region_1024_ms']:.1f} ms"), ("peak RSS", f"{r['peak_rss_mb']:.0f} MiB")]
    w1, w2 = max(len(a) for a, _ in rows), max(len(b) for _, b in rows)
    print(f"| {'what'.ljust(w1)} | {'result'.ljust(w2)} |\n|{'-' * (w1 + 2)}|{'-' * (w2 + 2)}|")
    for a, b in rows:
        print(f"| {a.ljust(w1)} | {b.ljust(w2)} |")


if __name__ == "__main__":
    main()
