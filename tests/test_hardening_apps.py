"""Hostile input for ``ppseg humanseg``, table-driven (issue 13): every case exits 1 with exactly one
stderr line naming the culprit, no traceback, and nothing left behind (no output, no hidden staging
folder or temp file next to ``--out``, inputs untouched). The stderr-noise tests run the command in
a subprocess: libpng / OpenCV / ffmpeg write to file descriptor 2, which capsys does not see.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppseg.cli import main

W, H, N = 64, 48, 48  # small frames; 48 frames so that a cut video is clearly short
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- bad files, made here
def write_clip(path: Path, n: int = N, fps: float = 24.0) -> Path:
    """A clip of textured noise (large frames in bytes: a cut removes many of them) with OpenCV's mp4v writer."""
    rng = np.random.default_rng(0)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    for _ in range(n):
        w.write(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    w.release()
    assert path.stat().st_size > 10_000
    return path


def faststart(data: bytes) -> bytes:
    """The mp4 with its ``moov`` (frame index) moved before ``mdat`` (the frames), as streaming
    files are, chunk offsets patched: cut, it still opens and claims all its frames."""
    boxes, i = [], 0
    while i < len(data):
        size, kind = struct.unpack(">I4s", data[i:i + 8])
        size = struct.unpack(">Q", data[i + 8:i + 16])[0] if size == 1 else (size or len(data) - i)
        boxes.append((kind, data[i:i + size]))
        i += size
    moov = bytearray(next(b for k, b in boxes if k == b"moov"))

    def patch(start: int, end: int) -> None:
        j = start
        while j < end:
            size, kind = struct.unpack(">I4s", moov[j:j + 8])
            if kind in (b"trak", b"mdia", b"minf", b"stbl"):
                patch(j + 8, j + size)
            elif kind in (b"stco", b"co64"):
                fmt, w = (">I", 4) if kind == b"stco" else (">Q", 8)
                (n,) = struct.unpack(">I", moov[j + 12:j + 16])
                for o in range(j + 16, j + 16 + n * w, w):
                    moov[o:o + w] = struct.pack(fmt, struct.unpack(fmt, moov[o:o + w])[0] + len(moov))
            j += size

    patch(8, len(moov))
    return (b"".join(b for k, b in boxes if k == b"ftyp") + bytes(moov)
            + b"".join(b for k, b in boxes if k not in (b"ftyp", b"moov")))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def frame_png(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".png", rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def png_with_bad_iccp(seed: int = 0) -> bytes:
    """A valid PNG with a broken colour profile: it decodes, and libpng warns "iCCP: ..." on stderr."""
    png = frame_png(seed)
    return png[:33] + png_chunk(b"iCCP", b"bad\x00\x00" + zlib.compress(b"garbage" * 10)) + png[33:]


def png_with_bad_chunk(seed: int = 0) -> bytes:
    """A PNG whose first chunk after the header has a mangled type: libpng errors out ("IDA[AB]...")."""
    png = bytearray(frame_png(seed))
    png[40] ^= 0xFF
    return bytes(png)


def tree(*roots: Path) -> dict[str, bytes | None]:
    """Every path under ``roots`` (hidden ones too) with the bytes of files: a snapshot to compare."""
    snap: dict[str, bytes | None] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            snap[str(p)] = p.read_bytes() if p.is_file() else None
    return snap


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Good and bad models: 2-class weights / model.onnx, 3-class weights / model.onnx, junk files."""
    pytest.importorskip("onnxruntime")
    torch = pytest.importorskip("torch")
    import ppseg
    from helpers.weights import randomize
    from ppseg.export import export_onnx
    from ppseg.weights import atomic_save, weights_file

    root = tmp_path_factory.mktemp("models")
    paths: dict[str, Path] = {}
    for classes in (2, 3):
        model = randomize(ppseg.create_model("pp_humanseg_lite_v1", num_classes=classes), seed=3).eval()
        paths[f"pt{classes}"] = root / f"w{classes}.pt"
        atomic_save(weights_file("pp_humanseg_lite_v1", {"num_classes": classes}, model.state_dict(),
                                 segmentor={"mean": [0.5] * 3, "std": [0.5] * 3}), paths[f"pt{classes}"])
        with torch.no_grad():
            res = export_onnx(model, root / f"onnx{classes}", model_name="pp_humanseg_lite_v1",
                              model_kwargs={"num_classes": classes}, class_names=[str(c) for c in range(classes)],
                              palette=[[c * 60] * 3 for c in range(classes)], mean=[0.5] * 3, std=[0.5] * 3,
                              output_op="softmax", resize=[{"type": "Resize", "target_size": [64, 48]}])
        paths[f"onnx{classes}"] = res.onnx_path
        if classes == 2:  # a dynamic graph with no resize in its sidecar: the app picks the network size
            with torch.no_grad():
                paths["onnx_dynamic"] = export_onnx(
                    model, root / "onnx_dynamic", model_name="pp_humanseg_lite_v1", model_kwargs={"num_classes": 2},
                    class_names=["background", "person"], palette=[[0] * 3, [255] * 3], mean=[0.5] * 3,
                    std=[0.5] * 3, output_op="softmax").onnx_path
    (root / "junk").mkdir()
    paths["junk_onnx"] = root / "junk" / "text.onnx"  # not ONNX, no sidecar
    paths["junk_onnx"].write_text("this is not an onnx graph\n")
    (root / "junk_car").mkdir()
    paths["junk_onnx_car"] = root / "junk_car" / "model.onnx"  # not ONNX, next to a real sidecar
    paths["junk_onnx_car"].write_bytes(b"\x08\x07garbage" * 50)
    (root / "junk_car" / "model.json").write_bytes((paths["onnx2"].parent / "model.json").read_bytes())
    paths["junk_pt"] = root / "junk" / "text.pt"
    paths["junk_pt"].write_text("not a checkpoint\n")
    paths["empty_pt"] = root / "junk" / "empty.pt"
    paths["empty_pt"].write_bytes(b"")
    paths["png_pt"] = root / "junk" / "image.pt"
    paths["png_pt"].write_bytes(frame_png())
    paths["dir_onnx"] = root / "folder.onnx"
    paths["dir_onnx"].mkdir()
    paths["run_dir"] = root / "empty_run"
    paths["run_dir"].mkdir()
    return paths


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Good and bad inputs: images, folders, videos (whole, cut, corrupt, fake)."""
    root = tmp_path_factory.mktemp("inputs")
    p: dict[str, Path] = {"root": root}
    p["image"] = root / "frame.png"
    p["image"].write_bytes(frame_png(0))
    p["jpg"] = root / "photo.jpg"
    cv2.imwrite(str(p["jpg"]), cv2.imdecode(np.frombuffer(frame_png(1), np.uint8), cv2.IMREAD_COLOR))
    p["broken_image"] = root / "broken.png"
    p["broken_image"].write_bytes(b"not a png" * 50)
    p["empty_image"] = root / "empty.png"
    p["empty_image"].write_bytes(b"")
    p["iccp_image"] = root / "iccp.png"
    p["iccp_image"].write_bytes(png_with_bad_iccp())
    p["empty_dir"] = root / "empty_dir"
    p["empty_dir"].mkdir()
    (root / "empty_dir" / "notes.txt").write_text("no images here")
    # a folder whose second image is broken: the first one must not be left in --out
    p["bad_dir"] = root / "bad_dir"
    (p["bad_dir"] / "sub").mkdir(parents=True)
    (p["bad_dir"] / "a.png").write_bytes(frame_png(0))
    (p["bad_dir"] / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 100)
    (p["bad_dir"] / "sub" / "c.png").write_bytes(frame_png(2))
    p["libpng_dir"] = root / "libpng_dir"
    p["libpng_dir"].mkdir()
    (p["libpng_dir"] / "a.png").write_bytes(png_with_bad_iccp(0))
    (p["libpng_dir"] / "b.png").write_bytes(png_with_bad_chunk(1))
    p["huge_dir"] = root / "huge_dir"  # a header that claims 30000x30000 pixels, after a good image
    p["huge_dir"].mkdir()
    (p["huge_dir"] / "a.png").write_bytes(frame_png(0))
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    (p["huge_dir"] / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                                          + png_chunk(b"IDAT", zlib.compress(b"\x00" * 8)) + png_chunk(b"IEND", b""))
    p["twins_dir"] = root / "twins_dir"  # a.jpg and a.png would both become a.png
    p["twins_dir"].mkdir()
    (p["twins_dir"] / "a.png").write_bytes(frame_png(0))
    (p["twins_dir"] / "a.jpg").write_bytes(p["jpg"].read_bytes())
    p["video"] = write_clip(root / "clip.mp4")
    data = p["video"].read_bytes()
    p["cut_mp4"] = root / "cut.mp4"  # index at the end, cut off: does not open at all
    p["cut_mp4"].write_bytes(data[: len(data) // 2])
    fast = faststart(data)
    p["cut_fast_mp4"] = root / "cut_fast.mp4"  # index first: opens, claims 48 frames, has about half
    p["cut_fast_mp4"].write_bytes(fast[: len(fast) // 2])
    p["corrupt_mp4"] = root / "corrupt.mp4"  # the second half of the frames overwritten with zeros
    mdat, moov = data.find(b"mdat"), data.find(b"moov")
    mid = mdat + (moov - mdat) // 2
    p["corrupt_mp4"].write_bytes(data[:mid] + b"\0" * (moov - 8 - mid) + data[moov - 8:])
    mkv = write_clip(root / "clip.mkv")
    p["cut_mkv"] = root / "cut.mkv"
    p["cut_mkv"].write_bytes(mkv.read_bytes()[: mkv.stat().st_size // 2])
    p["fake_mp4"] = root / "fake.mp4"
    p["fake_mp4"].write_text("not a video at all\n" * 50)
    p["empty_mp4"] = root / "empty.mp4"
    p["empty_mp4"].write_bytes(b"")
    return p


def test_the_bad_videos_are_what_they_claim(inputs):
    """The fixtures themselves: whole clips read fully, cut / corrupt ones open and claim 48 frames
    but give clearly fewer (else the truncation cases below would test nothing)."""
    def read(path: Path) -> tuple[bool, int, int]:
        cap = cv2.VideoCapture(str(path))
        count, n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
        while cap.read()[0]:
            n += 1
        return cap.isOpened() or n > 0, count, n

    assert read(inputs["video"]) == (True, N, N)
    assert read(inputs["root"] / "clip.mkv")[2] == N
    for name in ("cut_fast_mp4", "corrupt_mp4", "cut_mkv"):
        opened, count, n = read(inputs[name])
        assert opened and count == N and 0 < n < N * 0.8, (name, count, n)
    assert read(inputs["cut_mp4"])[2] == 0


# ----------------------------------------------------------------------------- the table
#: (id, argv extras builder (m: models, i: inputs, o: output folder), needles in the one error line).
#: The base command is ``humanseg --model onnx2 --input image --out o/out.png`` unless overridden.
CASES: list[tuple[str, object, list[str]]] = [
    # --model
    ("model-missing", lambda m, i, o: {"--model": o / "nope.onnx"}, ["nope.onnx", "model not found"]),
    ("model-onnx-not-onnx", lambda m, i, o: {"--model": m["junk_onnx"]}, ["text.onnx"]),
    ("model-onnx-not-onnx-with-sidecar", lambda m, i, o: {"--model": m["junk_onnx_car"]}, ["model.json"]),
    ("model-onnx-is-a-folder", lambda m, i, o: {"--model": m["dir_onnx"]}, ["folder.onnx", "not a file"]),
    ("model-onnx-3-classes", lambda m, i, o: {"--model": m["onnx3"]}, ["model.onnx", "2 classes", "has 3"]),
    ("model-pt-3-classes", lambda m, i, o: {"--model": m["pt3"]}, ["w3.pt", "2 classes", "has 3"]),
    ("model-pt-not-a-checkpoint", lambda m, i, o: {"--model": m["junk_pt"]}, ["text.pt"]),
    ("model-pt-empty", lambda m, i, o: {"--model": m["empty_pt"]}, ["empty.pt"]),
    ("model-pt-is-a-png", lambda m, i, o: {"--model": m["png_pt"]}, ["image.pt"]),
    ("model-run-dir-without-weights", lambda m, i, o: {"--model": m["run_dir"]}, ["empty_run"]),
    ("model-empty-string", lambda m, i, o: {"--model": ""}, ["--model", "empty"]),
    # --input
    ("input-missing", lambda m, i, o: {"--input": i["root"] / "missing.mp4"}, ["missing.mp4", "not found"]),
    ("input-empty-string", lambda m, i, o: {"--input": ""}, ["--input", "empty"]),
    ("input-empty-folder", lambda m, i, o: {"--input": i["empty_dir"], "--out": o / "out"},
     ["empty_dir", "no images"]),
    ("input-folder-with-a-broken-image", lambda m, i, o: {"--input": i["bad_dir"], "--out": o / "out"},
     ["b.png", "cannot read image"]),
    ("input-folder-libpng-error", lambda m, i, o: {"--input": i["libpng_dir"], "--out": o / "out"},
     ["b.png", "libpng error"]),
    ("input-folder-with-a-huge-image", lambda m, i, o: {"--input": i["huge_dir"], "--out": o / "out"},
     ["z.png", "30000x30000", "PPSEG_MAX_IMAGE_PIXELS"]),
    ("input-broken-image", lambda m, i, o: {"--input": i["broken_image"]}, ["broken.png", "cannot read image"]),
    ("input-empty-image", lambda m, i, o: {"--input": i["empty_image"]}, ["empty.png", "empty"]),
    ("input-cut-mp4", lambda m, i, o: {"--input": i["cut_mp4"], "--out": o / "out.mp4"},
     ["cut.mp4", "cannot read video"]),
    ("input-cut-streaming-mp4", lambda m, i, o: {"--input": i["cut_fast_mp4"], "--out": o / "out.mp4"},
     ["cut_fast.mp4", "truncated or corrupt", f"of its {N} frames"]),
    ("input-corrupt-mp4", lambda m, i, o: {"--input": i["corrupt_mp4"], "--out": o / "out.mp4"},
     ["corrupt.mp4", "truncated or corrupt", f"of its {N} frames"]),
    ("input-cut-mkv", lambda m, i, o: {"--input": i["cut_mkv"], "--out": o / "out.mp4"},
     ["cut.mkv", "truncated or corrupt", f"of its {N} frames"]),
    ("input-cut-mp4-torch", lambda m, i, o: {"--model": m["pt2"], "--input": i["cut_fast_mp4"],
                                             "--out": o / "out.mp4"}, ["cut_fast.mp4", "truncated"]),
    ("input-text-with-video-suffix", lambda m, i, o: {"--input": i["fake_mp4"], "--out": o / "out.mp4"},
     ["fake.mp4", "cannot read video"]),
    ("input-empty-video", lambda m, i, o: {"--input": i["empty_mp4"], "--out": o / "out.mp4"},
     ["empty.mp4", "cannot read video"]),
    ("input-missing-webcam", lambda m, i, o: {"--input": "9", "--out": o / "out.mp4"}, ["webcam 9"]),
    # --out
    ("out-video-onto-a-folder", lambda m, i, o: {"--input": i["video"], "--out": o / "adir.mp4"},
     ["--out", "adir.mp4", "is a folder"]),
    ("out-image-onto-a-folder-named-png", lambda m, i, o: {"--out": o / "adir.png"},
     ["--out", "adir.png", "is a folder"]),
    ("out-folder-onto-a-file", lambda m, i, o: {"--input": i["bad_dir"], "--out": o / "afile"},
     ["--out", "afile", "not a folder"]),
    ("out-image-under-a-file", lambda m, i, o: {"--out": o / "afile" / "x.png"}, ["--out", "which is a file"]),
    ("out-video-under-a-file", lambda m, i, o: {"--input": i["video"], "--out": o / "afile" / "sub" / "x.mp4"},
     ["--out", "which is a file"]),
    ("out-folder-under-a-file", lambda m, i, o: {"--input": i["bad_dir"], "--out": o / "afile" / "masks"},
     ["--out", "which is a file"]),
    ("out-image-for-a-video", lambda m, i, o: {"--input": i["video"], "--out": o / "x.png"},
     ["--out", "x.png", "video output file"]),
    ("out-folder-for-a-video", lambda m, i, o: {"--input": i["video"], "--out": o / "adir"},
     ["--out", "adir", "video output file"]),
    ("out-video-for-images", lambda m, i, o: {"--input": i["bad_dir"], "--out": o / "x.mp4"},
     ["--out", "x.mp4", "needs a folder"]),
    ("out-video-for-an-image", lambda m, i, o: {"--out": o / "x.mp4"}, ["--out", "x.mp4", "an image needs"]),
    ("out-overwrites-the-input-image", lambda m, i, o: {"--out": i["image"]}, ["--out", "overwrite the input"]),
    ("out-overwrites-the-input-folder", lambda m, i, o: {"--input": i["bad_dir"], "--out": i["bad_dir"]},
     ["--out", "overwrite the input", "a.png"]),
    ("out-overwrites-the-input-video", lambda m, i, o: {"--input": i["video"], "--out": i["video"]},
     ["--out", "is the input video"]),
    ("out-two-inputs-one-name", lambda m, i, o: {"--input": i["twins_dir"], "--out": o / "out"},
     ["--out", "a.jpg", "a.png", "both"]),
    ("out-target-is-a-folder", lambda m, i, o: {"--input": i["bad_dir"], "--out": o / "has_a_png_dir"},
     ["--out", "a.png", "is a folder"]),
    ("out-empty-string", lambda m, i, o: {"--out": ""}, ["--out", "empty"]),
    # --background
    ("background-color-two-values", lambda m, i, o: {"--background": "color:1,2"}, ["--background", "color:R,G,B"]),
    ("background-color-out-of-range", lambda m, i, o: {"--background": "color:300,0,0"}, ["--background", "0..255"]),
    ("background-color-words", lambda m, i, o: {"--background": "color:red"}, ["--background", "color:R,G,B"]),
    ("background-blur-even", lambda m, i, o: {"--background": "blur:4"}, ["--background", "odd integer"]),
    ("background-blur-huge", lambda m, i, o: {"--background": "blur:999999"}, ["--background", "1001"]),
    ("background-blur-word", lambda m, i, o: {"--background": "blur:soft"}, ["--background", "odd integer"]),
    ("background-image-missing", lambda m, i, o: {"--background": f"image:{o / 'sky.png'}"},
     ["--background", "sky.png", "not found"]),
    ("background-image-is-a-folder", lambda m, i, o: {"--background": f"image:{o / 'adir'}"},
     ["--background", "adir", "not a file"]),
    ("background-image-broken", lambda m, i, o: {"--background": f"image:{i['broken_image']}"},
     ["--background", "broken.png"]),
    ("background-image-empty", lambda m, i, o: {"--background": "image:"}, ["--background", "image:PATH"]),
    ("background-unknown", lambda m, i, o: {"--background": "sky"}, ["--background", "'sky'"]),
    # numbers
    ("input-size-zero", lambda m, i, o: {"--model": m["pt2"], "--input-size": ["0", "0"]}, ["--input-size"]),
    ("input-size-huge", lambda m, i, o: {"--model": m["pt2"], "--input-size": ["100000", "100000"]},
     ["--input-size", "2048"]),
    ("input-size-negative", lambda m, i, o: {"--input-size": ["-64", "48"]}, ["--input-size"]),
    ("fps-negative", lambda m, i, o: {"--input": i["video"], "--out": o / "o.mp4", "--fps": "-1"}, ["--fps"]),
    ("fps-zero", lambda m, i, o: {"--input": i["video"], "--out": o / "o.mp4", "--fps": "0"}, ["--fps"]),
    ("fps-nan", lambda m, i, o: {"--input": i["video"], "--out": o / "o.mp4", "--fps": "nan"}, ["--fps"]),
    ("fps-inf", lambda m, i, o: {"--input": i["video"], "--out": o / "o.mp4", "--fps": "inf"}, ["--fps"]),
    ("fps-huge", lambda m, i, o: {"--input": i["video"], "--out": o / "o.mp4", "--fps": "1e9"}, ["--fps", "1000"]),
    ("feather-negative", lambda m, i, o: {"--feather": "-1"}, ["--feather"]),
    ("feather-nan", lambda m, i, o: {"--feather": "nan"}, ["--feather"]),
    ("feather-inf", lambda m, i, o: {"--feather": "inf"}, ["--feather"]),
    ("feather-huge", lambda m, i, o: {"--feather": "1e9"}, ["--feather", "1000"]),
    ("threads-zero", lambda m, i, o: {"--threads": "0"}, ["--threads"]),
    ("threads-huge", lambda m, i, o: {"--threads": "100000"}, ["--threads", "256"]),
    ("max-frames-zero", lambda m, i, o: {"--max-frames": "0"}, ["--max-frames"]),
    ("max-frames-negative", lambda m, i, o: {"--input": i["video"], "--out": o / "o.mp4", "--max-frames": "-5"},
     ["--max-frames"]),
]


def build_argv(case, models, inputs, out_root: Path) -> list[str]:
    _, extras, _ = case
    opts: dict[str, object] = {"--model": models["onnx2"], "--input": inputs["image"], "--out": out_root / "out.png"}
    opts.update(extras(models, inputs, out_root))  # type: ignore[operator]
    argv = ["humanseg", "--progress", "off"]
    for k, v in opts.items():
        argv += [k, *v] if isinstance(v, list) else [k, str(v)]
    return argv


@pytest.fixture
def out_root(tmp_path) -> Path:
    """The output side: an existing file, folders (one named like a video, one like an image) and a
    folder whose ``a.png`` is a folder."""
    o = tmp_path / "o"
    (o / "adir").mkdir(parents=True)
    (o / "adir.mp4").mkdir()
    (o / "adir.png").mkdir()
    (o / "has_a_png_dir" / "a.png").mkdir(parents=True)
    (o / "afile").write_text("precious")
    return o


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(case, models, inputs, out_root, capsys):
    argv = build_argv(case, models, inputs, out_root)
    before = tree(out_root, inputs["root"])
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 1, (argv, out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("ppseg humanseg: error: "), lines[0]
    for needle in case[2]:
        assert needle in lines[0], (needle, lines[0])
    assert tree(out_root, inputs["root"]) == before  # no output, no staging folder, no temp file; inputs as they were


def test_a_failed_folder_run_keeps_the_previous_results(models, inputs, tmp_path, capsys):
    out = tmp_path / "masks"
    out.mkdir()
    (out / "a.png").write_bytes(b"previous a")
    (out / "old.png").write_bytes(b"previous old")
    argv = ["humanseg", "--model", str(models["onnx2"]), "--input", str(inputs["bad_dir"]), "--out", str(out),
            "--output", "mask", "--progress", "off"]
    assert main(argv) == 1
    assert "b.png" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks"]  # no .masks.partial-* left
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {"a.png": b"previous a", "old.png": b"previous old"}


def test_a_good_folder_run_goes_through_the_staging_folder(models, inputs, tmp_path, capsys):
    """The same folder without its broken image: every output, mirrored sub-folders, nothing hidden."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes((inputs["bad_dir"] / "a.png").read_bytes())
    (src / "sub" / "c.png").write_bytes((inputs["bad_dir"] / "sub" / "c.png").read_bytes())
    (src / "d.png").write_bytes(png_with_bad_iccp(3))  # decodes (libpng only warns)
    out = tmp_path / "new" / "masks"
    assert main(["humanseg", "--model", str(models["onnx2"]), "--input", str(src), "--out", str(out),
                 "--output", "mask", "--progress", "off"]) == 0
    assert "3 files under" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["a.png", "d.png", "sub", "sub/c.png"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["masks"]
    assert cv2.imread(str(out / "sub" / "c.png"), cv2.IMREAD_UNCHANGED).shape == (H, W)


def test_a_truncated_video_leaves_no_output_and_max_frames_before_the_cut_is_fine(models, inputs, tmp_path, capsys):
    out = tmp_path / "deep" / "er" / "o.mp4"
    argv = ["humanseg", "--model", str(models["onnx2"]), "--input", str(inputs["cut_fast_mp4"]), "--out", str(out),
            "--progress", "off"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cut_fast.mp4: truncated or corrupt video: read" in err and f"of its {N} frames" in err
    assert list(tmp_path.iterdir()) == []  # neither the temp video nor the folders made for it
    assert main([*argv, "--max-frames", "5"]) == 0  # the frames asked for are all there
    assert "5 frame(s)" in capsys.readouterr().out and out.is_file()


def test_a_whole_video_is_not_called_truncated(models, inputs, tmp_path, capsys):
    for name in ("clip.mp4", "clip.mkv"):
        out = tmp_path / f"{name}.mp4"
        assert main(["humanseg", "--model", str(models["onnx2"]), "--input", str(inputs["root"] / name),
                     "--out", str(out), "--output", "mask", "--progress", "off"]) == 0
        assert f"{N} frame(s)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- nothing but our line on stderr
def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m ppseg`` in a fresh process (ffmpeg's log level is set once per process), with no
    OPENCV_* / PPSEG_DEBUG settings inherited (in-process runs above set OPENCV_* in this one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCV_", "PPSEG_DEBUG"))}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "ppseg", *args], capture_output=True, text=True, timeout=300,
                          env=env)


NOISE_CASES = [
    # (id, input, out name, needles): libpng, ffmpeg (demuxer, decoder) and OpenCV (V4L2) all speak up here
    ("libpng-error", "libpng_dir", "out", ["b.png", "libpng error"]),
    ("ffmpeg-not-a-video", "fake_mp4", "o.mp4", ["fake.mp4", "cannot read video"]),
    ("ffmpeg-cut-mp4", "cut_mp4", "o.mp4", ["cut.mp4", "cannot read video"]),
    ("ffmpeg-decode-errors", "corrupt_mp4", "o.mp4", ["corrupt.mp4", "truncated or corrupt"]),
    ("opencv-no-webcam", "9", "o.mp4", ["webcam 9"]),
]


@pytest.mark.parametrize("case", NOISE_CASES, ids=[c[0] for c in NOISE_CASES])
def test_stderr_has_exactly_our_line(case, models, inputs, tmp_path):
    _, source, out_name, needles = case
    src = inputs[source] if source in inputs else source
    r = run_cli("humanseg", "--model", str(models["onnx2"]), "--input", str(src), "--out", str(tmp_path / out_name),
                "--progress", "off")
    lines = r.stderr.splitlines()
    assert r.returncode == 1, r.stderr
    assert len(lines) == 1 and lines[0].startswith("ppseg humanseg: error: "), r.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_a_libpng_warning_on_a_good_image_is_not_shown(models, inputs, tmp_path):
    r = run_cli("humanseg", "--model", str(models["onnx2"]), "--input", str(inputs["iccp_image"]),
                "--out", str(tmp_path / "o.png"), "--progress", "off")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "1 frame(s)" in r.stdout and (tmp_path / "o.png").is_file()


def test_debug_shows_the_native_messages(models, inputs, tmp_path):
    """--debug shows the traceback (and leaves OpenCV's and ffmpeg's log levels alone)."""
    r = run_cli("--debug", "humanseg", "--model", str(models["onnx2"]), "--input", str(inputs["fake_mp4"]),
                "--out", str(tmp_path / "o.mp4"), "--progress", "off")
    assert r.returncode == 1 and "Traceback" in r.stderr and "DataError" in r.stderr


def test_a_dynamic_onnx_model_does_not_get_a_huge_frame_at_full_size(models):
    """No resize in the sidecar, no --input-size: the frame's own size, but at most 2048 on the long
    side (a decodable 8000x6000 photo would otherwise go to the network whole)."""
    from ppseg.apps.humanseg import MAX_NETWORK_SIDE, load_person_model

    model = load_person_model(models["onnx_dynamic"], threads=1)
    assert model.network_hw((H, W)) == (H, W)
    assert model.network_hw((6000, 8000)) == (1536, MAX_NETWORK_SIDE)
    assert model.network_hw((9000, 1000)) == (MAX_NETWORK_SIDE, 228)
    assert load_person_model(models["onnx_dynamic"], input_size=(64, 48)).network_hw((6000, 8000)) == (48, 64)


def test_capture_native_stderr_restores_fd2_and_keeps_the_text(tmp_path):
    from ppseg.data.io import capture_native_stderr, read_image_quiet
    from ppseg.errors import DataError

    bad = tmp_path / "b.png"
    bad.write_bytes(png_with_bad_chunk())
    with pytest.raises(DataError, match=r"b\.png.*libpng error"):
        read_image_quiet(bad)
    good = tmp_path / "g.png"
    good.write_bytes(png_with_bad_iccp())
    assert read_image_quiet(good).shape == (H, W, 3)
    saved = os.fstat(2)
    with capture_native_stderr() as native:
        os.write(2, b"from C\n")
        with capture_native_stderr() as inner:  # nested: runs uncaptured by itself, lands in the outer one
            os.write(2, b"inner\n")
    assert native.text == "from C\ninner\n" and inner.text == ""
    after = os.fstat(2)
    assert (saved.st_dev, saved.st_ino) == (after.st_dev, after.st_ino)  # fd 2 is what it was
