"""`ppseg humanseg`: outputs, compositing, ONNX and torch models, temporal stabilisation, bad input.

Most tests use a synthetic clip (a textured red disc moving over a still textured background)
and a person model whose output the test controls: it finds the red pixels, optionally with
per-frame noise, so "right" and "stable" have exact answers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppseg.apps.compositing import composite, parse_background
from ppseg.apps.humanseg import HumanSeg, PersonModel, load_person_model, run_humanseg
from ppseg.apps.media import open_source, write_frame
from ppseg.apps.stabilize import flicker_score
from ppseg.cli import main
from ppseg.errors import ConfigError

W, H, N = 160, 120, 24
REPO = Path(__file__).resolve().parents[1]


def _background(seed: int = 0) -> np.ndarray:
    """A still, textured (optical flow needs texture), blue-green-grey BGR scene."""
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 2.0)
    bg = np.empty((H, W, 3), np.uint8)
    bg[..., 0] = 90 + noise[..., 0] // 3   # B
    bg[..., 1] = 80 + noise[..., 1] // 3   # G
    bg[..., 2] = 20 + noise[..., 2] // 6   # R (low: the "person" is red)
    return bg


def disc_mask(cx: float, cy: float = H / 2, r: float = 22) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def make_frames(step: float = 2.5, n: int = N) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (BGR) and true masks of a textured red disc moving ``step`` px/frame to the right."""
    bg = _background()
    rng = np.random.default_rng(1)
    tex = cv2.GaussianBlur(rng.integers(0, 60, (H, W), dtype=np.uint8), (0, 0), 1.5)
    frames, masks = [], []
    for t in range(n):
        m = disc_mask(40 + step * t)
        f = bg.copy()
        shift = int(round(step * t))
        moving_tex = np.roll(tex, shift, axis=1)  # the texture moves with the disc
        f[m] = np.stack([20 + moving_tex[m] // 3, 30 + moving_tex[m] // 2, 190 + moving_tex[m]], axis=-1)
        frames.append(f)
        masks.append(m)
    return frames, masks


def write_video(path: Path, frames: list[np.ndarray], fps: float = 24.0) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for f in frames:
        w.write(f)
    w.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


class RedModel(PersonModel):
    """The "person" is the red pixels; ``noise`` adds per-pixel Gaussian noise to the probability."""

    name = "red"

    def __init__(self, noise: float = 0.0, seed: int = 0, fail_after: int | None = None,
                 error: type[BaseException] = RuntimeError) -> None:
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.fail_after = fail_after
        self.error = error
        self.calls = 0

    def network_hw(self, frame_hw):
        return frame_hw[0] // 2, frame_hw[1] // 2

    def predict(self, image_rgb):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise self.error("model crashed")
        r, g = image_rgb[..., 0].astype(np.int16), image_rgb[..., 1].astype(np.int16)
        p = ((r > 140) & (g < 110)).astype(np.float32) * 0.8 + 0.1
        if self.noise:
            p += self.rng.normal(0.0, self.noise, p.shape).astype(np.float32)
        return np.clip(p, 0.0, 1.0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    frames, masks = make_frames()
    path = write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames)
    return path, read_video(path), masks


# ----------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("output", ["mask", "alpha", "composite"])
def test_video_outputs_have_every_frame_at_the_input_size(output, clip, tmp_path):
    path, _, masks = clip
    out = tmp_path / f"{output}.mp4"
    result = run_humanseg(RedModel(), path, out, output=output, background="color:0,0,255")
    frames = read_video(out)
    assert result.frames == len(frames) == N
    assert all(f.shape == (H, W, 3) for f in frames)
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind
    if output != "composite":  # mask / matte: white on the disc, black elsewhere
        ious = [iou(f[..., 0] > 127, m) for f, m in zip(frames, masks)]
        assert min(ious) > 0.85, ious


def test_composite_puts_the_background_where_the_mask_is_zero(clip, tmp_path):
    path, decoded, masks = clip
    out = tmp_path / "comp.mp4"
    run_humanseg(RedModel(), path, out, output="composite", background="color:0,0,255", stabilize=False)
    kernel = np.ones((9, 9), np.uint8)
    for f_in, f_out, m in list(zip(decoded, read_video(out), masks))[::5]:
        far = cv2.dilate(m.astype(np.uint8), kernel) == 0
        inside = cv2.erode(m.astype(np.uint8), kernel) == 1
        blue = np.array([255, 0, 0], np.float32)  # BGR of color:0,0,255
        assert np.abs(f_out[far].astype(np.float32) - blue).mean() < 12  # mp4v re-encoding tolerance
        assert np.abs(f_out[inside].astype(np.float32) - f_in[inside]).mean() < 12


def test_composite_blends_with_the_matte():
    fg = np.full((4, 4, 3), 200, np.uint8)
    bg = np.full((4, 4, 3), 100, np.uint8)
    a = np.array([[0, 255, 128, 64]] * 4, np.uint8)
    out = composite(fg, bg, a)
    af = a[..., None].astype(np.float32)
    expected = (200 * af + 100 * (255 - af)) / 255
    assert np.abs(out.astype(np.float32) - expected).max() <= 1


def test_backgrounds(tmp_path):
    frame = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    assert parse_background("color:10,20,30").render(frame)[0, 0].tolist() == [30, 20, 10]  # BGR
    blurred = parse_background("blur:41").render(frame)
    assert blurred.shape == frame.shape and blurred.std() < frame.std() / 3
    img = tmp_path / "bg.png"
    cv2.imwrite(str(img), np.full((30, 90, 3), (0, 255, 0), np.uint8))
    bg = parse_background(f"image:{img}").render(frame)
    assert bg.shape == frame.shape and (bg == (0, 255, 0)).all()


def test_images_folder_and_single_image(tmp_path):
    frames, masks = make_frames(n=3)
    src = tmp_path / "imgs"
    (src / "sub").mkdir(parents=True)
    cv2.imwrite(str(src / "a.jpg"), frames[0])
    cv2.imwrite(str(src / "sub" / "b.png"), frames[1])
    res = run_humanseg(RedModel(), src, tmp_path / "out", output="alpha")
    assert res.frames == 2 and res.flicker is None
    a = cv2.imread(str(tmp_path / "out" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == (H, W) and iou(a > 127, masks[0]) > 0.85
    assert cv2.imread(str(tmp_path / "out" / "sub" / "b.png"), cv2.IMREAD_UNCHANGED).shape == (H, W)
    one = tmp_path / "one.png"
    run_humanseg(RedModel(), src / "a.jpg", one, output="composite", background="blur:15")
    assert cv2.imread(str(one)).shape == (H, W, 3)


def test_written_images_keep_the_frame_colours(tmp_path):
    frame = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    write_frame(tmp_path / "f.png", frame)  # BGR in, the same BGR back from OpenCV
    assert np.array_equal(cv2.imread(str(tmp_path / "f.png"), cv2.IMREAD_UNCHANGED), frame)
    write_frame(tmp_path / "g.png", frame[..., 0])
    assert np.array_equal(cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED), frame[..., 0])
    frames, masks = make_frames(n=1)
    cv2.imwrite(str(tmp_path / "in.png"), frames[0])
    run_humanseg(RedModel(), tmp_path / "in.png", tmp_path / "c.png", output="composite", background="color:0,0,255")
    far = cv2.dilate(masks[0].astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    blue = np.array([255, 0, 0], np.int16)  # BGR of color:0,0,255 (not red: the file is not channel-swapped)
    assert np.abs(cv2.imread(str(tmp_path / "c.png"))[far].astype(np.int16) - blue).max() <= 2  # feathered edge


# ----------------------------------------------------------------------------- stabilisation
def _masks(model: PersonModel, frames: list[np.ndarray], stabilize: bool) -> list[np.ndarray]:
    seg = HumanSeg(model, stabilize=stabilize)
    return [seg.probability(f) > 0.5 for f in frames]


def test_flicker_score():
    a, b = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    still = np.ones((4, 4), bool)
    assert flicker_score([a, a, a], still) == 0.0
    assert flicker_score([a, b, a], still) == 1.0
    half = still.copy()
    half[:2] = False
    c = a.copy()
    c[:2] = 255  # changes only where the scene moves: not flicker
    assert flicker_score([a, c, a], half) == 0.0
    assert flicker_score([a, b], [half]) == 1.0


def test_stabilisation_reduces_flicker_on_a_still_scene():
    frames = [make_frames(step=0.0, n=1)[0][0]] * 20  # nothing moves
    noisy = lambda: RedModel(noise=0.3, seed=5)  # noqa: E731 - the same noise sequence for both runs
    still = np.ones_like(_masks(noisy(), frames[:1], False)[0])
    off = flicker_score(_masks(noisy(), frames, stabilize=False), still)
    on = flicker_score(_masks(noisy(), frames, stabilize=True), still)
    assert off > 0.05  # the noise really makes the raw masks flicker
    assert on < off / 4, (on, off)


def test_stabilisation_follows_motion_without_lag(clip):
    _, decoded, masks = clip
    seg = HumanSeg(RedModel(noise=0.1, seed=2), stabilize=True)
    ious = []
    for f, m in zip(decoded, masks):
        p = seg.probability(f)
        ious.append(iou(cv2.resize(p, (W, H)) > 0.5, m))
    assert min(ious[1:]) > 0.9, ious  # a lagging or ghosting history would fall behind the moving disc


# ----------------------------------------------------------------------------- real models, CLI
@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> tuple[Path, Path]:
    """(weights file, softmax model.onnx) of a randomised PP-HumanSegV1-Lite."""
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    import ppseg
    from ppseg.weights import atomic_save, weights_file
    from ppseg.export import export_onnx
    from helpers.weights import randomize

    root = tmp_path_factory.mktemp("models")
    model = randomize(ppseg.create_model("pp_humanseg_lite_v1", num_classes=2), seed=3).eval()
    weights = root / "w.pt"
    atomic_save(weights_file("pp_humanseg_lite_v1", {"num_classes": 2}, model.state_dict(),
                             segmentor={"mean": [0.5] * 3, "std": [0.5] * 3}), weights)
    with torch.no_grad():
        res = export_onnx(model, root / "onnx", model_name="pp_humanseg_lite_v1", model_kwargs={"num_classes": 2},
                          class_names=["background", "person"], palette=[[0, 0, 0], [255, 255, 255]],
                          mean=[0.5] * 3, std=[0.5] * 3, output_op="softmax",
                          resize=[{"type": "Resize", "target_size": [64, 48]}])
    return weights, res.onnx_path


def test_onnx_and_torch_models_agree(tiny_models, clip):
    weights, onnx = tiny_models
    frame = clip[1][3]
    ort_model = load_person_model(onnx, threads=1)
    torch_model = load_person_model(weights, threads=1, input_size=(64, 48))
    assert ort_model.network_hw((H, W)) == torch_model.network_hw((H, W)) == (48, 64)
    assert ort_model.network_hw((W, H)) == (64, 48)  # a portrait frame turns the landscape target
    small = cv2.cvtColor(cv2.resize(frame, (64, 48)), cv2.COLOR_BGR2RGB)
    a, b = ort_model.predict(small), torch_model.predict(small)
    assert a.shape == b.shape == (48, 64) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert 0.0 <= a.min() and a.max() <= 1.0 and a.std() > 1e-3  # not a constant map


@pytest.mark.parametrize("which", ["onnx", "torch"])
def test_cli_on_a_video(which, tiny_models, clip, tmp_path, capsys):
    weights, onnx = tiny_models
    out = tmp_path / "out.mp4"
    rc = main(["humanseg", "--model", str(onnx if which == "onnx" else weights), "--input", str(clip[0]),
               "--out", str(out), "--background", "color:0,255,0", "--threads", "1", "--progress", "off",
               *(["--input-size", "64", "48"] if which == "torch" else [])])
    assert rc == 0
    line = capsys.readouterr().out
    assert f"{N} frame(s)" in line and "frames/s" in line and "flicker" in line
    assert len(read_video(out)) == N


def test_onnx_path_needs_no_torch(tiny_models, clip, tmp_path):
    weights, onnx = tiny_models
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "from ppseg.cli import main\n"
            f"args = ['--input', {str(clip[0])!r}, '--out', {str(tmp_path / 'o.mp4')!r}, '--output', 'mask', "
            "'--max-frames', '5', '--progress', 'off']\n"
            f"ok = main(['humanseg', '--model', {str(onnx)!r}, *args])\n"
            f"refused = main(['humanseg', '--model', {str(weights)!r}, *args])\n"
            "sys.exit(10 * ok + refused)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr  # ONNX: 0; the weights file: 1, with a way out
    assert len(read_video(tmp_path / "o.mp4")) == 5
    assert "needs PyTorch" in r.stderr and "model.onnx" in r.stderr


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_exit_1_with_one_line(tiny_models, clip, tmp_path, capsys):
    _, onnx = tiny_models
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    base = ["humanseg", "--model", str(onnx), "--out", str(tmp_path / "o.mp4"), "--progress", "off"]
    cases = [
        (["--input", str(tmp_path / "missing.mp4")], "input not found"),
        (["--input", str(junk)], "cannot read video"),
        (["--input", "7"], "webcam 7: not available"),
        (["--input", str(clip[0]), "--background", "color:1,2"], "expected color:R,G,B"),
        (["--input", str(clip[0]), "--background", "blur:4"], "odd integer"),
        (["--input", str(clip[0]), "--background", "image:/nonexistent.png"], "file not found"),
        (["--input", str(clip[0]), "--background", "sky"], "expected color:R,G,B, image:PATH or blur"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 1, extra
        err = capsys.readouterr().err.strip()
        assert message in err and err.startswith("ppseg humanseg: error:"), (extra, err)
    assert main(["humanseg", "--model", str(tmp_path / "nope.onnx"), "--input", str(clip[0]),
                 "--out", str(tmp_path / "o.mp4")]) == 1
    assert "model not found" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_a_failure_midway_leaves_no_output(clip, tmp_path):
    out = tmp_path / "o.mp4"
    out.write_bytes(b"previous result")
    with pytest.raises(RuntimeError, match="model crashed"):
        run_humanseg(RedModel(fail_after=5), clip[0], out, output="mask")
    assert out.read_bytes() == b"previous result"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4"]  # temp file removed


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failure_midway_in_a_folder_or_an_image_leaves_no_output(error, tmp_path):
    frames, _ = make_frames(n=4)
    src = tmp_path / "imgs"
    (src / "sub").mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(src / ("sub" if i % 2 else ".") / f"{i}.png"), f)
    out = tmp_path / "new" / "masks"
    with pytest.raises(error):  # two images written (to the staging folder), then the model fails
        run_humanseg(RedModel(fail_after=2, error=error), src, out, output="mask")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]  # no staging folder, no new/
    with pytest.raises(error):  # a single image into new folders: neither the file nor the folders
        run_humanseg(RedModel(fail_after=0, error=error), src / "0.png", tmp_path / "a" / "b" / "o.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]
    res = run_humanseg(RedModel(), src, out, output="mask")  # and when all succeed, everything is there
    assert res.frames == 4 and sorted(str(p.relative_to(out)) for p in res.outputs) == [
        "0.png", "2.png", "sub/1.png", "sub/3.png"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["masks"]


def test_a_video_that_cannot_be_read_back_is_not_kept(clip, tmp_path, monkeypatch):
    """OpenCV's writer reports no write errors: a full disk shows as a file that does not read back."""
    from ppseg.apps import media
    from ppseg.errors import PPSegError

    release = media.VideoSink.commit

    def full_disk(self):
        self.writer.release()
        data = self.tmp.read_bytes()
        self.tmp.write_bytes(data[: len(data) // 2])  # what a full disk leaves: no index at the end
        return release(self)

    monkeypatch.setattr(media.VideoSink, "commit", full_disk)
    with pytest.raises(PPSegError, match="cannot be read back.*disk full"):
        run_humanseg(RedModel(), clip[0], tmp_path / "o.mp4", output="mask")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_discards_a_video_but_keeps_a_webcam_recording(clip, tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        run_humanseg(RedModel(fail_after=5, error=KeyboardInterrupt), clip[0], out, output="mask")
    assert list(tmp_path.iterdir()) == []
    webcam = open_source(clip[0])
    webcam.kind = "webcam"  # a camera stream: Ctrl-C is how a recording ends
    result = run_humanseg(RedModel(fail_after=5, error=KeyboardInterrupt), webcam, out, output="mask")
    assert result.interrupted and result.frames == 5 and len(read_video(out)) == 5


def test_bad_arguments():
    with pytest.raises(ConfigError, match="--output"):
        run_humanseg(RedModel(), "x.mp4", "o.mp4", output="matte")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="feather"):
        HumanSeg(RedModel(), feather=-1)
