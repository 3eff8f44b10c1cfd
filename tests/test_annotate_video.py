"""``ppseg annotate``'s video part: frame extraction, optical-flow mask warping, propagation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppseg.apps.annotate import video as V
from ppseg.apps.annotate.records import AnnotatedObject
from ppseg.apps.annotate.video import (MANIFEST, Propagator, backward_flow, extract_frames, mask_iou,
                                       propagation_iou, warp_mask)
from ppseg.errors import PPSegError

H, W, N, R = 64, 96, 20, 16


def _texture(rng: np.random.Generator, h: int, w: int, blur: int) -> np.ndarray:
    t = rng.uniform(0, 255, (h, w, 3)).astype(np.float32)
    t = cv2.GaussianBlur(t, (0, 0), blur)
    t = (t - t.min()) / (t.max() - t.min() + 1e-6) * 255
    return t.astype(np.uint8)


def _centre(t: int) -> tuple[float, float]:
    """(row, col) of the disc in frame t: left to right, a little up and down."""
    return 32.0 + 4.0 * np.sin(t / 4.0), 20.0 + 3.0 * t


def _disc(t: int) -> np.ndarray:
    cy, cx = _centre(t)
    yy, xx = np.mgrid[0:H, 0:W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= R * R


def _clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured disc moving across a textured background that pans slowly: RGB frames, masks."""
    rng = np.random.default_rng(0)
    bg = _texture(rng, H + 8, W + 40, 2.0)
    fg = _texture(rng, 2 * R + 3, 2 * R + 3, 1.0)
    bg[..., 0] //= 2  # a greenish-blue background, a reddish disc
    fg[..., 0] = 128 + fg[..., 0] // 2
    fg[..., 1] //= 2
    frames, masks = [], []
    for t in range(N):
        frame = bg[4:4 + H, t:t + W].copy()  # the camera pans one pixel a frame
        cy, cx = _centre(t)
        m = _disc(t)
        yy, xx = np.nonzero(m)
        fy = np.clip(yy - int(round(cy)) + R + 1, 0, 2 * R + 2)
        fx = np.clip(xx - int(round(cx)) + R + 1, 0, 2 * R + 2)
        frame[yy, xx] = fg[fy, fx]
        frames.append(frame)
        masks.append(m)
    return frames, masks


@pytest.fixture(scope="module")
def clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    return _clip()


@pytest.fixture(scope="module")
def video_file(tmp_path_factory: pytest.TempPathFactory, clip) -> Path:
    path = tmp_path_factory.mktemp("video") / "disc.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H), True)
    assert writer.isOpened()
    for f in clip[0]:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


# =============================================================================== extraction
def test_extract_frames_count_manifest_and_reuse(tmp_path, video_file, monkeypatch):
    out = tmp_path / "proj" / "frames"
    files = extract_frames(video_file, out, progress=False)
    assert [f.name for f in files] == [f"{i:06d}.jpg" for i in range(N)]
    assert all(f.parent == out and f.is_file() for f in files)
    assert _read(files[0]).shape == (H, W, 3)
    man = json.loads((out / MANIFEST).read_text())
    assert (man["frames"], man["width"], man["height"], man["video"]) == (N, W, H, video_file.name)
    assert _leftovers(out.parent) == []

    # a complete extraction of the same video is reused without decoding
    def no_decode(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(V, "open_source", no_decode)
    assert extract_frames(video_file, out, progress=False) == files
    # an incomplete one (a frame missing) or a changed video is extracted again
    monkeypatch.undo()
    files[5].unlink()
    assert extract_frames(video_file, out, progress=False) == files and files[5].is_file()
    st = video_file.stat()
    os.utime(video_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    calls = []
    real = V.open_source
    monkeypatch.setattr(V, "open_source", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert extract_frames(video_file, out, progress=False) == files
    assert len(calls) == 1 and _leftovers(out.parent) == []


@pytest.mark.parametrize("content", [b"", b"this is not a video at all\n" * 50])
def test_extract_refuses_non_videos_naming_the_file(tmp_path, content):
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(content)
    out = tmp_path / "frames"
    with pytest.raises(PPSegError, match="clip.mp4"):
        extract_frames(bad, out, progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []
    with pytest.raises(PPSegError, match="missing.mp4"):
        extract_frames(tmp_path / "missing.mp4", out, progress=False)


def test_extract_limit_and_failures_leave_nothing(tmp_path, video_file, monkeypatch):
    out = tmp_path / "sub" / "frames"
    with pytest.raises(PPSegError, match=r"limit of 5 frames \(max_frames\)"):
        extract_frames(video_file, out, max_frames=5, progress=False)
    assert not out.exists() and not out.parent.exists()  # the parent made for it is removed too

    # a write failing half-way: no frame folder, no staging folder
    real = cv2.imwrite
    count = [0]

    def failing(path, img, params=()):
        count[0] += 1
        return False if count[0] == 4 else real(path, img, params)

    monkeypatch.setattr(V.cv2, "imwrite", failing)
    with pytest.raises(PPSegError, match="000003.jpg"):
        extract_frames(video_file, out, progress=False)
    assert not out.exists() and not out.parent.exists()

    # ... and an older complete extraction there is left as it was
    monkeypatch.undo()
    files = extract_frames(video_file, out, progress=False)
    st = video_file.stat()
    os.utime(video_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    count[0] = 0
    monkeypatch.setattr(V.cv2, "imwrite", failing)
    with pytest.raises(PPSegError):
        extract_frames(video_file, out, progress=False)
    assert all(f.is_file() for f in files) and json.loads((out / MANIFEST).read_text())["frames"] == N
    assert _leftovers(out.parent) == []


def test_extract_refuses_a_foreign_folder(tmp_path, video_file):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(PPSegError, match="not a frame folder"):
        extract_frames(video_file, out, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"


# =============================================================================== warp
def test_warp_mask_follows_the_motion(clip):
    frames, masks = clip
    for t in (3, 10):
        warped = warp_mask(frames[t], frames[t + 1], masks[t])
        assert warped.dtype == bool and warped.shape == (H, W)
        assert mask_iou(warped, masks[t + 1]) > 0.8
        assert mask_iou(warped, masks[t + 1]) > mask_iou(masks[t], masks[t + 1])
    # a uniform translation of the whole frame (the flow given by the caller, without the check)
    rng = np.random.default_rng(1)
    big = _texture(rng, H + 10, W + 10, 1.5)
    a, b = big[:H, :W], big[3:3 + H, 5:5 + W]  # content moves 3 up, 5 left
    m = np.zeros((H, W), bool)
    m[20:40, 30:60] = True
    moved = np.zeros((H, W), bool)
    moved[17:37, 25:55] = True
    flow = backward_flow(a, b)
    assert np.allclose(np.median(flow.reshape(-1, 2), axis=0), [5, 3], atol=0.5)
    assert mask_iou(warp_mask(a, b, m, flow, photo_tolerance=None), moved) > 0.8
    assert not warp_mask(a, b, np.zeros((H, W), bool)).any()
    with pytest.raises(ValueError):
        warp_mask(a, b, m[:10])


# =============================================================================== propagation
def _run(prop: Propagator, frames, start, end, objects, **kw):
    got: dict[int, list[AnnotatedObject]] = {}
    written = prop.run(lambda i: frames[i], start, end, objects, on_frame=lambda i, o: got.__setitem__(i, o), **kw)
    return written, got


def test_run_warp_only_forward_backward_stop_cancel(clip):
    frames, masks = clip
    prop = Propagator(None)
    assert not prop.refine
    start = AnnotatedObject.from_mask(7, 3, masks[0], track=11)
    written, got = _run(prop, frames, 0, N - 1, [start])
    assert written == list(range(1, N)) and sorted(got) == written
    for objs in got.values():
        assert [(o.id, o.label, o.track, o.source) for o in objs] == [(7, 3, 11, "propagated")]
    iou = propagation_iou([got[i][0].mask(H, W) for i in written], [masks[i] for i in written])
    assert iou > 0.8, iou

    # backward from the last frame
    last = AnnotatedObject.from_mask(1, 2, masks[N - 1], track=5)
    written, got = _run(prop, frames, N - 1, 0, [last])
    assert written == list(range(N - 2, -1, -1))
    assert propagation_iou([got[i][0].mask(H, W) for i in written], [masks[i] for i in written]) > 0.8
    assert got[0][0].track == 5 and got[0][0].label == 2

    # stops before a frame annotated by hand; cancel stops before the next frame
    written, _ = _run(prop, frames, 0, N - 1, [start], stop=lambda i: i == 8)
    assert written == list(range(1, 8))
    written, _ = _run(prop, frames, 10, 0, [start], stop=lambda i: i in (3, 12))
    assert written == [9, 8, 7, 6, 5, 4]
    cancel = threading.Event()
    seen: list[int] = []

    def on_frame(i, objs):
        seen.append(i)
        if i == 4:
            cancel.set()

    assert prop.run(lambda i: frames[i], 0, N - 1, [start], on_frame=on_frame, cancel=cancel) == [1, 2, 3, 4]
    assert seen == [1, 2, 3, 4]
    assert prop.run(lambda i: frames[i], 5, 5, [start]) == []
    assert prop.run(lambda i: frames[i], 0, 5, []) == []


def test_objects_that_vanish_are_dropped(clip):
    frames, masks = clip
    tiny = np.zeros((H, W), bool)
    tiny[2:5, 2:5] = True  # 9 pixels: below min_area
    objs = [AnnotatedObject.from_mask(1, 1, masks[0]), AnnotatedObject.from_mask(2, 1, tiny)]
    prop = Propagator(None, min_area=20)
    out = prop.step(frames[0], frames[1], objs)
    assert [o.id for o in out] == [1] and prop.last_outcomes == ["warped", "dropped"]
    # when the last object vanishes, that frame gets no objects and the run ends
    written, got = _run(prop, frames, 0, N - 1, [objs[1]])
    assert written == [1] and got[1] == []


class _FakeSession:
    def __init__(self, owner, image, prior):
        self.owner, self.image, self.prior = owner, image, prior
        self.clicks: list[tuple[float, float, bool]] = []
        owner.sessions.append(self)

    def set_prior(self, mask):
        self.prior = mask

    def click(self, y, x, positive=True):
        self.clicks.append((y, x, positive))

    @property
    def mask(self):
        return self.owner.answer(self.prior)


class _FakePredictor:
    """A click predictor stand-in: ``answer(prior) -> mask`` is what the model 'predicts'."""

    def __init__(self, answer):
        self.answer = answer
        self.sessions: list[_FakeSession] = []

    def session(self, image, prior=None):
        return _FakeSession(self, image, prior)


def test_refine_uses_the_click_model_and_the_guard(clip):
    frames, masks = clip
    obj = AnnotatedObject.from_mask(4, 2, masks[5], track=9)
    warped = warp_mask(frames[5], frames[6], masks[5])
    kernel = np.ones((3, 3), np.uint8)

    # a model that grows the prior by a pixel: trusted, its mask is the result
    fake = _FakePredictor(lambda prior: cv2.dilate(prior.astype(np.uint8), kernel).astype(bool))
    prop = Propagator(fake, min_area=20)
    out = prop.step(frames[5], frames[6], [obj])
    assert prop.last_outcomes == ["refined"]
    (s,) = fake.sessions
    assert s.image.shape[:2] == s.prior.shape and s.image.shape[2] == 3 and s.image.dtype == np.uint8
    assert s.prior.sum() == warped.sum()  # the crop holds the whole warped mask
    assert len(s.clicks) == 1 and s.clicks[0][2] is True
    y, x = int(s.clicks[0][0]), int(s.clicks[0][1])
    assert s.prior[y, x]  # a positive click inside the warped mask ...
    dist = cv2.distanceTransform(np.pad(s.prior.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    assert dist[y, x] >= dist.max() - 1e-3  # ... at its deepest point
    assert np.array_equal(out[0].mask(H, W), cv2.dilate(warped.astype(np.uint8), kernel).astype(bool))
    assert (out[0].id, out[0].label, out[0].track, out[0].source) == (4, 2, 9, "propagated")

    # a model that answers something else entirely: the warped mask is kept
    def elsewhere(prior):
        m = np.zeros_like(prior)
        m[:6, :6] = True
        return m

    prop = Propagator(_FakePredictor(elsewhere), min_area=20)
    out = prop.step(frames[5], frames[6], [obj])
    assert prop.last_outcomes == ["guarded"]
    assert np.array_equal(out[0].mask(H, W), warped)
    # ... and refine=False never calls it
    fake = _FakePredictor(elsewhere)
    out = Propagator(fake, refine=False).step(frames[5], frames[6], [obj])
    assert fake.sessions == [] and np.array_equal(out[0].mask(H, W), warped)


def test_propagation_iou_and_settings():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    b[:2] = True
    c = a.copy()
    c[:1] = True
    assert propagation_iou([a, b], [a, b]) == 1.0  # empty vs empty counts 1
    assert propagation_iou([c, a], [b, b]) == pytest.approx((0.5 + 0.0) / 2)
    with pytest.raises(ValueError):
        propagation_iou([a], [a, a])
    with pytest.raises(PPSegError):
        Propagator(None, min_area=0)
    with pytest.raises(PPSegError):
        Propagator(None, flow_method="magic")


def test_video_module_does_not_import_torch():
    code = "import sys, ppseg.apps.annotate.video; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
