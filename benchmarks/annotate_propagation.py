"""Mean IoU of ``ppseg annotate``'s video mask propagation against true masks of moving objects.

    OMP_NUM_THREADS=1 python benchmarks/annotate_propagation.py                       # the table
    OMP_NUM_THREADS=1 python benchmarks/annotate_propagation.py --model /tmp/click_onnx/model.onnx
    OMP_NUM_THREADS=1 python benchmarks/annotate_propagation.py --juggle /tmp/juggle_sheet.jpg  # + a visual check

There is no video with per-frame masks in ``shared/data``, so the clips are built from real data
with exact masks: a real person (a Clothing Co-Parsing photo, ``label > 0``) cut out with their
pixel mask and composited onto a real street scene (a CamVid frame) that pans like a moving
camera, the person moving along a smooth path with a change of scale, a little rotation and a
smooth non-rigid (elastic) warp that changes over time; frames are JPEG-compressed (q90) as a
decoded video's would be. The true mask of each frame is the warped person mask.

Propagation starts from the first frame's true mask and runs through every frame (each frame's
mask comes from the previous frame's propagated one, as in the tool). Methods: (a) copy the
previous mask, (b) optical-flow warp only (:class:`~ppseg.apps.annotate.video.Propagator` without
a predictor), (c) warp + click-model refinement (the warped mask as prior, a positive click at its
deepest point), with variants of the flow and the guard. The click model is the ONNX export of
``zoo:click_mnv3_lite`` (ONNX Runtime, no torch) when ``--model`` is an .onnx (default
``/tmp/click_onnx/model.onnx``, made by ``ppseg export --model zoo:click_mnv3_lite --out /tmp/click_onnx``),
else the torch predictor.

``--juggle OUT.jpg`` also propagates a click-model mask of the juggler through the first 30 frames
of ``shared/data/video/juggle.mp4`` (no true masks: only a contact sheet to look at).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ppseg.apps.annotate.records import AnnotatedObject
from ppseg.apps.annotate.video import Propagator, extract_frames, mask_iou, propagation_iou

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
W, H = 480, 360


# =============================================================================== clips
def _person(idx: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB crop, bool mask) of CCP val photo ``idx`` (0-based in val.txt), cropped to the person."""
    lines = (DATA / "ccp" / "val.txt").read_text().split("\n")
    img_rel, lab_rel = lines[idx].split()
    img = cv2.cvtColor(cv2.imread(str(DATA / "ccp" / img_rel)), cv2.COLOR_BGR2RGB)
    mask = cv2.imread(str(DATA / "ccp" / lab_rel), cv2.IMREAD_GRAYSCALE) > 0
    # the largest part only (a clean single object)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = lab == k
    ys, xs = np.nonzero(mask)
    m = 10
    y0, y1, x0, x1 = max(ys.min() - m, 0), ys.max() + m + 1, max(xs.min() - m, 0), xs.max() + m + 1
    return img[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def _background(idx: int) -> np.ndarray:
    files = sorted((DATA / "camvid" / "images" / "val").glob("*.jpg"))
    img = cv2.cvtColor(cv2.imread(str(files[(idx * 17) % len(files)])), cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (800, 600), interpolation=cv2.INTER_AREA)


def make_clip(k: int, frames: int, rng: np.random.Generator, speed: float = 1.0
              ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Clip ``k``: (RGB frames, true bool masks), ``frames`` frames of ``H x W``; the motion is
    ``speed`` times faster."""
    obj, omask = _person(3 + 11 * k)
    bg = _background(k)
    oh, ow = omask.shape
    base = rng.uniform(170, 230) / oh  # person height in the frame
    # camera pan: the window moves across the larger background
    pan0 = rng.uniform([0, 0], [800 - W - 160, 600 - H - 100])
    pan_v = rng.uniform([60, 20], [160, 100]) * rng.choice([-1, 1], 2)
    pan0 = np.where(pan_v < 0, pan0 + np.abs(pan_v), pan0)
    # object path (frame coordinates of the object's centre)
    c0 = rng.uniform([150, 170], [330, 200])
    c_amp = rng.uniform([80, 20], [140, 50]) * rng.choice([-1, 1], 2)
    speed *= 0.6 + 0.2 * k  # clips get faster
    rot_amp = math.radians(rng.uniform(5, 10))
    elastic_amp = rng.uniform(4, 7) / base  # pixels of the frame
    ph = rng.uniform(0, 2 * np.pi, 4)
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    obj_rgba = np.dstack([obj.astype(np.float32), omask.astype(np.float32)])
    out_f, out_m = [], []
    for t in range(frames):
        u = t / max(frames - 1, 1)
        px, py = pan0 + pan_v * u
        frame_bg = bg[int(round(py)):int(round(py)) + H, int(round(px)):int(round(px)) + W].astype(np.float32)
        s = base * (1.0 + 0.25 * math.sin(2 * np.pi * u * speed * 0.7 + ph[0]))
        a = rot_amp * math.sin(2 * np.pi * u * speed * 0.9 + ph[1])
        cx = c0[0] + c_amp[0] * math.sin(np.pi * u * speed + ph[2]) * 0.8
        cy = c0[1] + c_amp[1] * math.sin(2 * np.pi * u * speed + ph[3])
        # inverse map: frame pixel -> object pixel (rotate, scale), then an elastic offset
        dx, dy = gx - cx, gy - cy
        ca, sa = math.cos(-a), math.sin(-a)
        qx = (ca * dx - sa * dy) / s + ow / 2
        qy = (sa * dx + ca * dy) / s + oh / 2
        wt = 2 * np.pi * u * speed
        qx = qx + elastic_amp * np.sin(qy / oh * 2 * np.pi * 1.5 + wt) * np.sin(qx / ow * np.pi + 0.3 * wt)
        qy = qy + elastic_amp * 0.6 * np.sin(qx / ow * 2 * np.pi + 1.3 * wt)
        warped = cv2.remap(obj_rgba, qx.astype(np.float32), qy.astype(np.float32), cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        alpha = warped[..., 3:4]
        img = frame_bg * (1 - alpha) + warped[..., :3] * alpha
        img = np.clip(img, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out_f.append(img)
        out_m.append(alpha[..., 0] >= 0.5)
    return out_f, out_m


# =============================================================================== methods
def run_copy(frames: list[np.ndarray], masks: list[np.ndarray]) -> tuple[list[np.ndarray], float]:
    return [masks[0]] * len(frames), 0.0


def run_propagator(prop: Propagator, frames: list[np.ndarray], masks: list[np.ndarray]
                   ) -> tuple[list[np.ndarray], float, dict[str, int]]:
    h, w = masks[0].shape
    out: dict[int, np.ndarray] = {0: masks[0]}
    outcomes: dict[str, int] = {}

    def on_frame(i: int, objs: list[AnnotatedObject]) -> None:
        out[i] = objs[0].mask(h, w) if objs else np.zeros((h, w), bool)
        for o in prop.last_outcomes:
            outcomes[o] = outcomes.get(o, 0) + 1

    start = AnnotatedObject.from_mask(1, 1, masks[0], track=1)
    t0 = time.perf_counter()
    prop.run(lambda i: frames[i], 0, len(frames) - 1, [start], on_frame=on_frame)
    ms = (time.perf_counter() - t0) * 1000 / max(len(frames) - 1, 1)
    pred = [out.get(i, np.zeros((h, w), bool)) for i in range(len(frames))]
    return pred, ms, outcomes


def load_predictor(spec: str):
    from ppseg.interactive import load_click_predictor

    if spec.endswith(".onnx") and not Path(spec).is_file():
        print(f"# {spec} not found: using the torch predictor of zoo:click_mnv3_lite", file=sys.stderr)
        spec = "zoo:click_mnv3_lite"
    p = load_click_predictor(spec, threads=1)
    kind = "ONNX Runtime" if spec.endswith(".onnx") else "torch"
    return p, f"{spec} ({kind}, 1 thread)"


# =============================================================================== juggle
def juggle_sheet(predictor, prop_kwargs: dict, out: Path, n: int = 30) -> None:
    video = DATA / "video" / "juggle.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        files = extract_frames(video, Path(tmp) / "frames", progress=False)[:n]
        frames = [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    h, w = frames[0].shape[:2]
    s = predictor.session(frames[0])
    for y, x, pos in JUGGLE_CLICKS:
        s.click(y, x, pos)
    start = AnnotatedObject.from_mask(1, 1, s.mask, track=1)
    masks = {0: s.mask}
    prop = Propagator(predictor, **prop_kwargs)
    t0 = time.perf_counter()
    prop.run(lambda i: frames[i], 0, n - 1, [start],
             on_frame=lambda i, objs: masks.__setitem__(i, objs[0].mask(h, w) if objs else np.zeros((h, w), bool)))
    ms = (time.perf_counter() - t0) * 1000 / (n - 1)
    tiles = []
    for i in range(0, n, 3):
        f = frames[i].copy()
        m = masks.get(i, np.zeros((h, w), bool))
        f[m] = (0.5 * f[m] + 0.5 * np.array([255, 0, 0])).astype(np.uint8)
        cnts, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(f, cnts, -1, (255, 255, 0), 3)
        f = cv2.resize(f, (w // 3, h // 3), interpolation=cv2.INTER_AREA)
        cv2.putText(f, str(i), (8, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
        tiles.append(f)
    while len(tiles) % 5:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[r:r + 5]) for r in range(0, len(tiles), 5)]
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    areas = [int(masks[i].sum()) for i in sorted(masks)]
    print(f"\njuggle.mp4 frames 0..{n - 1}: {ms:.0f} ms/frame, mask area frame 0 {areas[0]} px, "
          f"last {areas[-1]} px; contact sheet -> {out}")


#: clicks (row, col, positive) on juggle.mp4 frame 0 (1280x720) that select the juggler, chosen by
#: looking at the frame: torso, then the legs
JUGGLE_CLICKS = [(230, 700, True), (520, 700, True)]


# =============================================================================== main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="/tmp/click_onnx/model.onnx", help="click model (.onnx or zoo:NAME)")
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speed", type=float, default=1.0, help="motion speed factor (2: twice as fast)")
    ap.add_argument("--variants", action="store_true", help="also the flow / guard / click variants")
    ap.add_argument("--juggle", type=Path, default=None, help="write a contact sheet of juggle.mp4 here")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    clips = [make_clip(k, args.frames, rng, args.speed) for k in range(args.clips)]
    step_iou = np.mean([mask_iou(m[t - 1], m[t]) for _, m in clips for t in range(1, len(m))])
    predictor, pname = load_predictor(args.model)

    methods: list[tuple[str, object]] = [("(a) copy previous mask", None),
                                         ("(b) flow warp (default)", dict(refine=False))]
    if args.variants:
        methods += [("(b) flow warp, DIS medium", dict(refine=False, flow_method="dis_medium")),
                    ("(b) flow warp, DIS fast", dict(refine=False, flow_method="dis_fast")),
                    ("(b) flow warp, Farneback", dict(refine=False, flow_method="farneback")),
                    ("(b) flow warp, flow at 320 px", dict(refine=False, flow_side=320)),
                    ("(b) flow warp, no photo check", dict(refine=False, photo_tolerance=None)),
                    ("(b) flow warp, photo tol 12", dict(refine=False, photo_tolerance=12.0)),
                    ("(b) flow warp, photo tol 30", dict(refine=False, photo_tolerance=30.0))]
    methods.append(("(c) warp + refine (default)", dict()))
    if args.variants:
        methods += [("(c) refine, DIS medium", dict(flow_method="dis_medium")),
                    ("(c) refine, no guard", dict(guard_iou=0.0)),
                    ("(c) refine, guard 0.5", dict(guard_iou=0.5)),
                    ("(c) refine, guard 0.8", dict(guard_iou=0.8)),
                    ("(c) refine, 2 clicks", dict(clicks=2)),
                    ("(c) refine, context 1.5", dict(context=1.5)),
                    ("(c) refine, square crop", dict(square=True)),
                    ("(c) refine, no photo check", dict(photo_tolerance=None))]

    print(f"{args.clips} clips x {args.frames} frames, {W}x{H}, speed {args.speed:g} (IoU of consecutive true masks "
          f"{step_iou:.3f}); click model {pname}")
    header = f"{'method':34s} {'mean IoU':>9s} {'last-frame IoU':>15s} {'min clip':>9s} {'ms/frame':>9s}"
    print(header + "\n" + "-" * len(header))
    for name, kw in methods:
        ious, lasts, mss, outc = [], [], [], {}
        for frames, masks in clips:
            if kw is None:
                pred, ms = run_copy(frames, masks)
            else:
                prop = Propagator(predictor if kw.get("refine", True) else None, **kw)
                pred, ms, oc = run_propagator(prop, frames, masks)
                for k, v in oc.items():
                    outc[k] = outc.get(k, 0) + v
            ious.append(propagation_iou(pred[1:], masks[1:]))
            lasts.append(mask_iou(pred[-1], masks[-1]))
            mss.append(ms)
        extra = "  " + " ".join(f"{k}={v}" for k, v in sorted(outc.items())) if outc and "guarded" in outc else ""
        print(f"{name:34s} {np.mean(ious):9.3f} {np.mean(lasts):15.3f} {min(ious):9.3f} {np.mean(mss):9.1f}{extra}")
    print("(mean IoU over frames 1..N-1 of each clip, averaged over clips; frame 0 is the given mask)")
    if args.juggle:
        juggle_sheet(predictor, {}, args.juggle)


if __name__ == "__main__":
    main()
