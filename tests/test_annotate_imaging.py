"""ppseg annotate: opening images (8-bit, 16-bit, float, DICOM), window/level, tile pyramid, cache."""

from __future__ import annotations

import os
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ppseg.apps.annotate import imaging
from ppseg.apps.annotate.imaging import (
    IMAGE_SUFFIXES_ANNOTATE,
    ImageCache,
    OpenedImage,
    TilePyramid,
    Window,
    apply_window,
    open_image,
)
from ppseg.data.io import read_image
from ppseg.errors import ConfigError, DataError, PPSegError


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth RGB test picture with some texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1) * 255, yy / max(h - 1, 1) * 255, (xx + yy) % 64 * 4], axis=-1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _save_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _lin_exact(x, width, level):
    y = ((np.asarray(x, np.float64) - level) / width + 0.5) * 255
    return np.rint(np.clip(y, 0, 255)).astype(np.uint8)


def _assert_windowed(actual, values, width, level):
    """``actual`` is DICOM LINEAR_EXACT of ``values``; a value on a rounding tie (x.5) may go either way."""
    expect = _lin_exact(values, width, level)
    assert actual.shape == expect.shape and actual.dtype == np.uint8
    diff = np.abs(actual.astype(int) - expect)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.02


# ----------------------------------------------------------------------------- suffixes, window

def test_suffixes():
    for s in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".dcm"):
        assert s in IMAGE_SUFFIXES_ANNOTATE
    assert "" not in IMAGE_SUFFIXES_ANNOTATE
    assert len(set(IMAGE_SUFFIXES_ANNOTATE)) == len(IMAGE_SUFFIXES_ANNOTATE)


def test_window_validation_and_query():
    assert Window(400, 40) == Window(width=400.0, level=40.0)
    for bad in (0, -1, float("nan"), float("inf"), "5", True):
        with pytest.raises(ConfigError, match="window width"):
            Window(bad, 0)
    with pytest.raises(ConfigError, match="window level"):
        Window(1, float("nan"))
    assert Window.from_query(None, None) is None
    assert Window.from_query("", "") is None
    assert Window.from_query("400", "-40.5") == Window(400, -40.5)
    with pytest.raises(ConfigError, match="both"):
        Window.from_query("400", None)
    with pytest.raises(ConfigError, match="ww must be a number"):
        Window.from_query("wide", "3")
    with pytest.raises(ConfigError, match="positive"):
        Window.from_query("0", "3")


def test_apply_window_math_all_dtypes():
    win = Window(width=2000, level=2000)
    xs = [0, 999, 1000, 1500, 2000, 2001, 2999, 3000, 4000, 65535]
    expect = _lin_exact(xs, 2000, 2000)
    assert list(expect[:4]) == [0, 0, 0, 64] and expect[4] == 128 and list(expect[-3:]) == [255, 255, 255]
    for dtype in (np.uint16, np.int32, np.float32, np.float64, np.uint32):
        out = apply_window(np.array(xs, dtype), win)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, expect, err_msg=str(dtype))
    # int16 with negatives (CT values), through the LUT of the uint16 view
    ct = np.array([[-1024, -160, 0], [40, 240, 3071]], np.int16)
    _assert_windowed(apply_window(ct, Window(400, 40)), ct, 400, 40)
    _assert_windowed(apply_window(ct.astype(np.float32), Window(400, 40)), ct, 400, 40)
    # uint8 and int8
    u8 = np.arange(256, dtype=np.uint8)
    _assert_windowed(apply_window(u8, Window(100, 100)), u8, 100, 100)
    i8 = np.arange(-128, 128, dtype=np.int8)
    _assert_windowed(apply_window(i8, Window(10, -5)), i8, 10, -5)
    # floats below 1 (a float TIFF in 0..1), NaN black, inf clipped; the input is not modified
    f = np.array([0.0, 0.25, 0.5, 0.75, 1.0, np.nan, np.inf, -np.inf], np.float32)
    before = f.copy()
    out = apply_window(f, Window(0.5, 0.5))
    np.testing.assert_array_equal(out, [0, 0, 128, 255, 255, 0, 255, 0])
    np.testing.assert_array_equal(f, before)
    # shape kept, multi-channel
    c = np.random.default_rng(0).integers(0, 4096, (7, 5, 3)).astype(np.uint16)
    assert apply_window(c, Window(4096, 2048)).shape == (7, 5, 3)
    with pytest.raises(TypeError):
        apply_window(c, (4096, 2048))


def test_apply_window_large_float_in_blocks():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 100, (3000, 700)).astype(np.float32)  # several row blocks
    out = apply_window(a, Window(300, 10))
    _assert_windowed(out, a, 300, 10)


# --------------------------------------------------------------------------------- 8-bit images

@pytest.mark.parametrize("mode", ["rgb", "gray", "rgba", "palette", "jpeg", "bmp", "webp", "la"])
def test_8bit_images_match_read_image(tmp_path, mode):
    rgb = _photo(37, 53)
    if mode == "rgb":
        path = _save_rgb(tmp_path / "a.png", rgb)
    elif mode == "gray":
        path = tmp_path / "a.png"
        Image.fromarray(rgb[..., 0]).save(path)
    elif mode == "rgba":
        path = tmp_path / "a.png"
        rgba = np.dstack([rgb, np.random.default_rng(3).integers(0, 256, rgb.shape[:2], dtype=np.uint8)])
        Image.fromarray(rgba, "RGBA").save(path)
    elif mode == "la":
        path = tmp_path / "a.png"
        Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA").save(path)
    elif mode == "palette":
        path = tmp_path / "a.png"
        Image.fromarray(rgb).quantize(16).save(path)
    elif mode == "jpeg":
        path = _save_rgb(tmp_path / "a.jpg", rgb)
    elif mode == "bmp":
        path = _save_rgb(tmp_path / "a.bmp", rgb)
    else:
        path = _save_rgb(tmp_path / "a.webp", rgb)
    img = open_image(path)
    assert img.kind == "rgb" and (img.width, img.height) == (53, 37)
    assert img.default_window is None and img.value_range is None and not img.windowed
    out = img.rgb()
    assert out.shape == (37, 53, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, read_image(path))  # same pixels and geometry as training reads
    if mode == "rgb":
        np.testing.assert_array_equal(out, rgb)
    if mode == "rgba":
        np.testing.assert_array_equal(out, rgb)  # alpha dropped, colours kept
    if mode == "palette":
        np.testing.assert_array_equal(out, np.asarray(Image.open(path).convert("RGB")))
    if mode == "gray":
        assert np.array_equal(out[..., 0], rgb[..., 0]) and np.array_equal(out[..., 0], out[..., 2])
    assert img.rgb(Window(10, 10)) is out  # a photo ignores windows; no copy
    assert not out.flags.writeable


def test_exif_orientation_like_read_image(tmp_path):
    rgb = _photo(20, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW
    path = tmp_path / "o.jpg"
    Image.fromarray(rgb).save(path, exif=exif)
    img = open_image(path)
    assert (img.width, img.height) == (20, 30)
    np.testing.assert_array_equal(img.rgb(), read_image(path))


def test_non_ascii_path(tmp_path):
    d = tmp_path / "图像 é"
    d.mkdir()
    path = _save_rgb(d / "ü ñ.png", _photo(8, 9))
    assert open_image(path).rgb().shape == (8, 9, 3)


def test_region(tmp_path):
    rgb = _photo(50, 70)
    img = open_image(_save_rgb(tmp_path / "a.png", rgb))
    r = img.region(10, 5, 30, 25)
    np.testing.assert_array_equal(r, rgb[5:25, 10:30])
    assert r.flags.writeable and r.flags.c_contiguous and not np.shares_memory(r, img.pixels)
    np.testing.assert_array_equal(img.region(-10, -10, 5, 1000), rgb[0:50, 0:5])  # clipped
    for bad in ((70, 0, 80, 10), (10, 10, 10, 20), (0, 60, 10, 70)):
        with pytest.raises(ValueError, match="outside"):
            img.region(*bad)


# ------------------------------------------------------------------------------- 16-bit images

def test_16bit_png_window_and_percentiles(tmp_path):
    vals = (np.arange(100 * 120, dtype=np.uint32) * 5 % 60000).astype(np.uint16).reshape(100, 120)
    vals[0, 0], vals[0, 1] = 0, 65535
    path = tmp_path / "g16.png"
    assert cv2.imwrite(str(path), vals)
    img = open_image(path)
    assert img.kind == "gray16" and img.windowed and img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, vals)
    assert img.value_range == (0.0, 65535.0)
    p1, p99 = np.percentile(vals, [1, 99])  # small image: the subsample is the whole image
    assert img.default_window.width == pytest.approx(p99 - p1)
    assert img.default_window.level == pytest.approx((p1 + p99) / 2)
    out = img.rgb()
    assert out.shape == (100, 120, 3) and out.dtype == np.uint8
    _assert_windowed(out[..., 0], vals, img.default_window.width, img.default_window.level)
    win = Window(1000, 30000)
    _assert_windowed(img.rgb(win)[..., 1], vals, 1000, 30000)
    np.testing.assert_array_equal(img.region(7, 3, 50, 40, win), img.rgb(win)[3:40, 7:50])
    assert img.window_json() == {"width": img.default_window.width, "level": img.default_window.level,
                                 "min": 0.0, "max": 65535.0}
    assert img.window_json(win)["width"] == 1000


def test_16bit_tiff_gray_and_colour(tmp_path):
    rng = np.random.default_rng(5)
    gray = rng.integers(100, 4000, (40, 60)).astype(np.uint16)
    assert cv2.imwrite(str(tmp_path / "g.tif"), gray)
    img = open_image(tmp_path / "g.tif")
    assert img.kind == "gray16"
    np.testing.assert_array_equal(img.pixels, gray)
    assert img.value_range == (float(gray.min()), float(gray.max()))

    colour = rng.integers(0, 60000, (30, 20, 3)).astype(np.uint16)  # RGB
    assert cv2.imwrite(str(tmp_path / "c.tiff"), colour[..., ::-1])
    img = open_image(tmp_path / "c.tiff")
    assert img.kind == "gray16" and img.channels == 3
    np.testing.assert_array_equal(img.pixels, colour)
    win = Window(30000, 30000)
    _assert_windowed(img.rgb(win), colour, 30000, 30000)  # each channel windowed

    c16 = tmp_path / "c16.png"
    assert cv2.imwrite(str(c16), colour[..., ::-1])
    np.testing.assert_array_equal(open_image(c16).pixels, colour)


def test_float_tiff(tmp_path):
    f = np.linspace(-1.5, 2.5, 50 * 40, dtype=np.float32).reshape(50, 40)
    f[3, 3] = np.nan
    path = tmp_path / "f.tif"
    assert cv2.imwrite(str(path), f)
    img = open_image(path)
    assert img.kind == "gray16" and img.pixels.dtype == np.float32
    assert img.value_range == pytest.approx((-1.5, 2.5))
    assert 0 < img.default_window.width < 4
    out = img.rgb(Window(1.0, 0.5))
    assert out[3, 3, 0] == 0  # NaN black
    finite = np.isfinite(f)
    _assert_windowed(out[..., 0][finite], f[finite], 1.0, 0.5)


def test_constant_16bit_image_has_a_window(tmp_path):
    path = tmp_path / "c.png"
    assert cv2.imwrite(str(path), np.full((10, 10), 700, np.uint16))
    img = open_image(path)
    assert img.value_range == (700.0, 700.0)
    assert img.default_window == Window(1.0, 700.0)
    assert img.rgb().shape == (10, 10, 3)


# ------------------------------------------------------------------------------------------ DICOM

def _write_dicom(path: Path, pixels: np.ndarray, *, photometric="MONOCHROME2", slope=None, intercept=None,
                 center=None, width=None, frames: int | None = None, preamble=True, transfer_syntax=None,
                 pixel_bytes: bytes | None = None) -> Path:
    pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT image storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    arr = np.asarray(pixels)
    shape = arr.shape[1:] if frames else arr.shape
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.SamplesPerPixel = 3 if len(shape) == 3 else 1
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if frames:
        ds.NumberOfFrames = frames
    if slope is not None:
        ds.RescaleSlope = slope
    if intercept is not None:
        ds.RescaleIntercept = intercept
    if center is not None:
        ds.WindowCenter = center
    if width is not None:
        ds.WindowWidth = width
    ds.PixelData = pixel_bytes if pixel_bytes is not None else arr.tobytes()
    if pixel_bytes is not None:
        ds["PixelData"].VR = "OB"
    if not preamble:
        ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    else:
        ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_rescale_and_window(tmp_path):
    raw = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) % 3000
    path = _write_dicom(tmp_path / "ct.dcm", raw, slope=2, intercept=-1024, center=[40, 300], width=[400, 1500])
    img = open_image(path)
    assert img.kind == "dicom" and img.windowed and not img.invert
    hu = raw.astype(np.float32) * 2 - 1024
    np.testing.assert_array_equal(img.pixels, hu)
    assert img.value_range == (float(hu.min()), float(hu.max()))
    assert img.default_window == Window(400, 40)  # the first of WindowWidth / WindowCenter
    _assert_windowed(img.rgb()[..., 2], hu, 400, 40)
    assert img.transfer_syntax == "1.2.840.10008.1.2.1"

    # integer intercept only: kept integer (int16), not float
    path2 = _write_dicom(tmp_path / "ct2.dcm", raw, slope=1, intercept=-1024)
    img2 = open_image(path2)
    assert img2.pixels.dtype == np.int16
    np.testing.assert_array_equal(img2.pixels, raw.astype(np.int32) - 1024)
    p1, p99 = np.percentile(raw.astype(np.int32) - 1024, [1, 99])  # no window in the file: percentiles
    assert img2.default_window == Window(p99 - p1, (p1 + p99) / 2)


def test_dicom_signed_and_monochrome1(tmp_path):
    raw = (np.arange(30 * 20, dtype=np.int16).reshape(30, 20) - 300) * 3
    m2 = open_image(_write_dicom(tmp_path / "m2.dcm", raw, center=0, width=1000))
    m1 = open_image(_write_dicom(tmp_path / "m1.dcm", raw, photometric="MONOCHROME1", center=0, width=1000))
    np.testing.assert_array_equal(m1.pixels, raw)  # values and window stay in the file's units
    assert m1.invert and m1.default_window == m2.default_window == Window(1000, 0)
    assert m1.value_range == m2.value_range == (float(raw.min()), float(raw.max()))
    np.testing.assert_array_equal(m1.rgb(), 255 - m2.rgb())  # low values white
    np.testing.assert_array_equal(m1.region(2, 3, 10, 12), 255 - m2.region(2, 3, 10, 12))
    t1 = TilePyramid(m1, 16).tile_array(0, 0, 0)
    t2 = TilePyramid(m2, 16).tile_array(0, 0, 0)
    np.testing.assert_array_equal(t1, 255 - t2)


def test_dicom_multiframe_first_frame_and_preamble_detection(tmp_path):
    frames = np.stack([np.full((8, 9), 100 * (k + 1), np.uint16) for k in range(3)])
    frames[0, 0, 0] = 7
    path = _write_dicom(tmp_path / "mf.dcm", frames, frames=3)
    img = open_image(path)
    assert (img.width, img.height) == (9, 8)
    np.testing.assert_array_equal(img.pixels[0, :3], [7, 100, 100])
    # a DICOM file without a suffix (or with another one) is recognised by its "DICM" preamble
    plain = tmp_path / "IM0001"
    plain.write_bytes(path.read_bytes())
    assert open_image(plain).kind == "dicom"
    # a .dcm without the 128-byte preamble (a bare data set) still opens
    bare = _write_dicom(tmp_path / "bare.dcm", frames[0], preamble=False)
    assert bare.read_bytes()[128:132] != b"DICM"
    np.testing.assert_array_equal(open_image(bare).pixels, frames[0])


def test_dicom_rgb_8bit_is_shown_as_a_photo(tmp_path):
    rgb = _photo(12, 16)
    img = open_image(_write_dicom(tmp_path / "us.dcm", rgb, photometric="RGB"))
    assert img.kind == "dicom" and not img.windowed and img.window_json() is None
    np.testing.assert_array_equal(img.rgb(), rgb)


def test_dicom_compressed_without_decoder(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000

    data = encapsulate([b"\xff\x4f\xff\x51" + bytes(200)])  # a broken JPEG 2000 codestream
    path = _write_dicom(tmp_path / "j2k.dcm", np.zeros((16, 16), np.uint16), transfer_syntax=JPEG2000,
                        pixel_bytes=data)
    with pytest.raises(DataError) as ei:
        open_image(path)
    msg = str(ei.value)
    assert "j2k.dcm" in msg and "JPEG 2000" in msg and "\n" not in msg


def test_dicom_errors(tmp_path, monkeypatch):
    pytest.importorskip("pydicom")
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"this is not dicom at all" * 10)
    with pytest.raises(DataError, match="bad.dcm"):
        open_image(bad)
    big = _write_dicom(tmp_path / "big.dcm", np.zeros((100, 100), np.uint16))
    with pytest.raises(DataError, match="over the limit"):
        open_image(big, max_pixels=5000)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # pydicom not installed
    with pytest.raises(DataError, match=r'big\.dcm.*pip install "ppseg\[annotate\]"'):
        open_image(big)


# ----------------------------------------------------------------------------------------- errors

def test_file_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.png.*no such file"):
        open_image(tmp_path / "missing.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png.*empty"):
        open_image(empty)
    junk = tmp_path / "junk.png"
    junk.write_bytes(os.urandom(500))
    with pytest.raises(DataError, match=r"junk\.png.*not a decodable image"):
        open_image(junk)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt"):
        open_image(text)
    good = _save_rgb(tmp_path / "good.png", _photo(64, 64))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])  # truncated in the pixel data
    with pytest.raises(DataError, match=r"cut\.png"):
        open_image(cut)
    with pytest.raises(PPSegError):  # every error is a PPSegError with one line
        open_image(junk)
    with pytest.raises(ConfigError):
        open_image(good, max_pixels=0)


def test_big_files_decode_without_stderr_capture(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "_CAPTURE_MAX_BYTES", 0)  # every file counts as big
    path = _save_rgb(tmp_path / "a.png", _photo(20, 20))
    np.testing.assert_array_equal(open_image(path).rgb(), _photo(20, 20))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG" + os.urandom(300))
    with pytest.raises(DataError, match="junk.png"):
        open_image(junk)


def test_too_many_pixels(tmp_path):
    path = _save_rgb(tmp_path / "big.png", _photo(100, 100))
    with pytest.raises(DataError, match=r"big\.png.*100x100 \(10,000 pixels\) is over the limit of 5,000 pixels"):
        open_image(path, max_pixels=5000)
    assert open_image(path, max_pixels=10000).width == 100


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A valid tiny PNG whose IHDR (with a correct CRC) claims ``width x height``."""
    ok, buf = cv2.imencode(".png", np.zeros((1, 1), np.uint8))
    data = bytearray(buf.tobytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_huge_header_refused_before_decoding(tmp_path, monkeypatch):
    path = _png_claiming(tmp_path / "bomb.png", 60000, 50000)
    assert imaging._header_size(path) == (60000, 50000)

    def no_decode(*a, **k):
        raise AssertionError("decoded a file that is over the limit")

    monkeypatch.setattr(imaging.cv2, "imdecode", no_decode)
    monkeypatch.setattr(imaging.cv2, "imread", no_decode)
    t = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.png.*60000x50000 \(3000 megapixels\) is over the limit"):
        open_image(path)
    assert time.perf_counter() - t < 2
    assert Image.MAX_IMAGE_PIXELS is not None  # PIL's own limit restored


# -------------------------------------------------------------------------------------- pyramid

def test_pyramid_levels_and_sizes(tmp_path):
    img = open_image(_save_rgb(tmp_path / "a.png", _photo(700, 1300)))
    pyr = TilePyramid(img)
    assert pyr.TILE == 512 and pyr.tile_size == 512
    assert pyr.levels == 3
    assert [pyr.level_size(k) for k in range(3)] == [(1300, 700), (650, 350), (325, 175)]
    assert pyr.tile_count(0) == (3, 2) and pyr.tile_count(2) == (1, 1)
    odd = TilePyramid(open_image(_save_rgb(tmp_path / "o.png", _photo(5, 1025))), 512)
    assert [odd.level_size(k) for k in range(odd.levels)] == [(1025, 5), (513, 3), (257, 2)]
    small = TilePyramid(open_image(_save_rgb(tmp_path / "s.png", _photo(512, 100))))
    assert small.levels == 1 and small.tile_count(0) == (1, 1)
    with pytest.raises(ConfigError):
        TilePyramid(img, 4)


def test_pyramid_levels_are_area_downsampled(tmp_path):
    rgb = _photo(300, 410)
    pyr = TilePyramid(open_image(_save_rgb(tmp_path / "a.png", rgb)), 64)
    prev = rgb
    for k in range(1, pyr.levels):
        w, h = pyr.level_size(k)
        expect = cv2.resize(prev, (w, h), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(pyr.level_array(k), expect)
        prev = expect
    assert max(pyr.level_size(pyr.levels - 1)) <= 64 < max(pyr.level_size(pyr.levels - 2))


def _assemble(pyr: TilePyramid, level: int, window=None) -> np.ndarray:
    cols, rows = pyr.tile_count(level)
    return np.concatenate([np.concatenate([pyr.tile_array(level, tx, ty, window) for tx in range(cols)], axis=1)
                           for ty in range(rows)], axis=0)


def test_tiles_reassemble_levels_rgb(tmp_path):
    rgb = _photo(200, 333)
    pyr = TilePyramid(open_image(_save_rgb(tmp_path / "a.png", rgb)), 64)
    for level in range(pyr.levels):
        np.testing.assert_array_equal(_assemble(pyr, level), pyr.level_array(level))
        w, h = pyr.level_size(level)
        cols, rows = pyr.tile_count(level)
        last = pyr.tile_array(level, cols - 1, rows - 1)  # edge tile: smaller
        assert last.shape[:2] == (h - (rows - 1) * 64, w - (cols - 1) * 64)
    # encoded tiles: PNG (exact) at level 0, JPEG q90 (close) above
    data, media = pyr.tile(0, 2, 1)
    assert media == "image/png"
    dec = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(dec, rgb[64:128, 128:192])
    data, media = pyr.tile(1, 0, 0)
    assert media == "image/jpeg" and data[:2] == b"\xff\xd8"
    dec = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    ref = pyr.level_array(1)[:64, :64]
    assert dec.shape == ref.shape
    assert np.abs(dec.astype(int) - ref).mean() < 6  # the test picture is noisy


def test_tiles_16bit_windowed(tmp_path):
    vals = (np.arange(150 * 170, dtype=np.uint32).reshape(150, 170) * 3).astype(np.uint16)
    path = tmp_path / "g.png"
    assert cv2.imwrite(str(path), vals)
    img = open_image(path)
    pyr = TilePyramid(img, 64)
    assert pyr.level_array(1).dtype == np.uint16  # raw levels; the window is applied per tile
    win = Window(20000, 40000)
    for level in range(pyr.levels):
        np.testing.assert_array_equal(_assemble(pyr, level, win), apply_window(pyr.level_array(level), win))
    data, media = pyr.tile(1, 1, 0, win)
    assert media == "image/png"
    dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert dec.ndim == 2  # a grayscale PNG
    np.testing.assert_array_equal(dec, apply_window(pyr.level_array(1)[:64, 64:128], win))
    # default window when none is given
    np.testing.assert_array_equal(pyr.tile_array(0, 0, 0), apply_window(vals[:64, :64], img.default_window))


def test_tiles_windowing_touches_only_the_tile(tmp_path, monkeypatch):
    path = tmp_path / "g.png"
    assert cv2.imwrite(str(path), np.zeros((1000, 1000), np.uint16))
    pyr = TilePyramid(open_image(path), 128)
    seen = []
    real = imaging.apply_window
    monkeypatch.setattr(imaging, "apply_window", lambda v, w: (seen.append(v.shape), real(v, w))[1])
    pyr.tile(0, 3, 2)
    pyr.tile(0, 7, 7)  # the corner tile: 104 x 104
    pyr.image.region(100, 100, 300, 200)
    assert seen == [(128, 128), (104, 104), (100, 200)]


def test_tiles_out_of_range(tmp_path):
    pyr = TilePyramid(open_image(_save_rgb(tmp_path / "a.png", _photo(100, 150))), 64)
    assert pyr.levels == 3 and pyr.tile_count(0) == (3, 2) and pyr.tile_count(1) == (2, 1)
    for args in ((-1, 0, 0), (3, 0, 0), (0, 3, 0), (0, 0, 2), (0, -1, 0), (1, 2, 0), (2, 0, 1), (True, 0, 0),
                 ("0", 0, 0), (0, 0.0, 0)):
        with pytest.raises(PPSegError, match="a.png"):
            pyr.tile(*args)
    with pytest.raises(PPSegError):
        pyr.level_size(3)
    assert pyr.tile(1, 1, 0)[1] == "image/jpeg" and pyr.tile(2, 0, 0)[1] == "image/jpeg"


def test_large_image_open_and_first_coarse_tile(tmp_path):
    h = w = 6000
    yy, xx = np.mgrid[0:h:8, 0:w:8]
    small = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx ^ yy) & 255)], axis=-1).astype(np.uint8)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), big)
    del big, small
    t0 = time.perf_counter()
    img = open_image(path)
    t1 = time.perf_counter()
    pyr = TilePyramid(img)
    data, media = pyr.tile(pyr.levels - 1, 0, 0)
    t2 = time.perf_counter()
    data0, _ = pyr.tile(0, 5, 5)
    t3 = time.perf_counter()
    region = img.region(1000, 1000, 2024, 2024)
    t4 = time.perf_counter()
    print(f"\n6000x6000 PNG: open {t1 - t0:.2f} s, first coarse tile {t2 - t1:.2f} s "
          f"(levels {pyr.levels}), level-0 tile {1e3 * (t3 - t2):.1f} ms, region 1024^2 {1e3 * (t4 - t3):.1f} ms")
    assert (img.width, img.height) == (6000, 6000) and pyr.levels == 5
    assert media == "image/jpeg" and data and data0 and region.shape == (1024, 1024, 3)
    assert t2 - t0 < 20


# ---------------------------------------------------------------------------------------- cache

def test_cache_lru_and_reopen(tmp_path):
    paths = [_save_rgb(tmp_path / f"{k}.png", _photo(10, 10, k)) for k in range(4)]
    cache = ImageCache(max_items=3)
    a_img, a_pyr = cache.get(paths[0])
    assert isinstance(a_img, OpenedImage) and isinstance(a_pyr, TilePyramid)
    assert cache.get(paths[0])[0] is a_img and cache.get(str(paths[0]))[1] is a_pyr
    cache.get(paths[1])
    cache.get(paths[2])
    cache.get(paths[0])  # 0 is now the most recent: 1 goes first
    cache.get(paths[3])
    assert len(cache) == 3 and paths[1] not in cache and paths[0] in cache
    # a changed file is reopened
    _save_rgb(paths[0], _photo(12, 11, 9))
    st = paths[0].stat()
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    img = cache.get(paths[0])[0]
    assert img is not a_img and (img.width, img.height) == (11, 12)
    cache.drop(paths[0])
    assert paths[0] not in cache
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ConfigError):
        ImageCache(max_items=0)


def test_cache_errors_not_cached(tmp_path):
    cache = ImageCache()
    path = tmp_path / "x.png"
    path.write_bytes(b"junk")
    with pytest.raises(DataError, match="x.png"):
        cache.get(path)
    assert len(cache) == 0
    _save_rgb(path, _photo(5, 5))
    assert cache.get(path)[0].width == 5


def test_cache_max_bytes(tmp_path):
    paths = [_save_rgb(tmp_path / f"{k}.png", _photo(100, 100, k)) for k in range(3)]
    cache = ImageCache(max_items=3, max_bytes=2 * 100 * 100 * 3)
    for p in paths:
        cache.get(p)
    assert len(cache) == 2 and paths[0] not in cache


def test_cache_threads_open_once(tmp_path, monkeypatch):
    path = _save_rgb(tmp_path / "a.png", _photo(50, 50))
    calls = []
    real = imaging.open_image

    def slow_open(p, **kw):
        calls.append(p)
        time.sleep(0.05)
        return real(p, **kw)

    monkeypatch.setattr(imaging, "open_image", slow_open)
    cache = ImageCache()
    results, errors = [], []

    def worker():
        try:
            results.append(cache.get(path))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(calls) == 1
    assert all(r[0] is results[0][0] for r in results)


def test_module_does_not_import_torch():
    import subprocess

    code = ("import sys; import ppseg.apps.annotate.imaging; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
