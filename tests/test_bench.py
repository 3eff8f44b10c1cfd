"""``ppseg bench``: the table, the JSON, and one clear line for every bad argument (no absolute speeds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ppseg
from ppseg.bench import config, reference, report, worker
from ppseg.cli import main
from ppseg.errors import ConfigError

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

MODEL = "lraspp_mobilenetv3_small"
FAST = ["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--runs", "2", "--warmup", "1"]


def test_cli_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json = tmp_path / "bench.json"
    assert main(["bench", *FAST, "--backends", "torch,onnxruntime", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    table = out[out.index("backend"):]
    lines = [ln for ln in table.splitlines() if ln.startswith(("torch ", "onnxruntime "))]
    assert [ln.split()[0] for ln in lines] == ["torch", "onnxruntime"], out
    assert all(MODEL in ln and "1x3x64x64" in ln for ln in lines)

    doc = json.loads(out_json.read_text())
    rows = doc["rows"]
    assert [r["runtime"] for r in rows] == ["torch", "onnxruntime"]
    expected_params = sum(p.numel() for p in ppseg.create_model(MODEL).parameters())
    for r in rows:
        assert "error" not in r, r
        assert r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] > 0
        assert r["images_per_s"] == pytest.approx(1000.0 / r["median_ms"])
        assert len(r["times_ms"]) == 2
        assert r["params"] == expected_params
        assert r["gflops"] > 0
        assert r["peak_rss_mb"] > 0 and 0 <= r["peak_delta_mb"] <= r["peak_rss_mb"]
        assert r["threads"] == 1 and r["input_shape"] == [1, 3, 64, 64]
        assert r["output_shape"] == [1, 64, 64] and r["labels_present"] >= 1  # a label map at the image size
    assert doc["config"]["model"] == MODEL and doc["config"]["runs"] == 2


@pytest.mark.parametrize("extra, message", [
    (["--model", "pp_mobileseg_tyni", "--input-shape", "1", "3", "64", "64"], "unknown model"),
    (["--model", MODEL, "--input-shape", "1", "4", "64", "64"], "--input-shape"),
    (["--model", MODEL, "--input-shape", "1", "3", "0", "64"], "--input-shape"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--backends", "torch,tensorrt"], "unknown backend"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--threads", "0"], "--threads"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--threads", "one"], "--threads"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--runs", "0"], "--runs"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--quantize", "int8"], "--calib-data"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--output-op", "vim"], "forward_lowres"),
    (["--model", MODEL, "--input-shape", "1", "3", "64", "64", "--images", "no/such/photo.png"], "--images"),
])
def test_bad_arguments_one_line(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ppseg bench: error:") and message in err and "\n" not in err, err


def test_paddle_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(config, "paddle_available", lambda: False)  # where check_config looks it up
    assert main(["bench", *FAST, "--backends", "torch,paddle"]) == 1
    err = capsys.readouterr().err.strip()
    assert "paddle" in err and "pip install paddlepaddle" in err and "\n" not in err


def test_paddle_reference_mapping() -> None:
    def cfg(model: str, op: str = "argmax", **kw) -> config.BenchConfig:
        return config.BenchConfig(model, {"num_classes": 150, **kw}, (1, 3, 64, 64), output_op=op)

    assert "MobileSeg_Tiny" in reference.paddle_reference(cfg("pp_mobileseg_tiny", "vim"))[0]
    assert "STDC2" in reference.paddle_reference(cfg("pp_liteseg_b"))[0]
    call, why = reference.paddle_reference(cfg(MODEL))
    assert call is None and "no PaddleSeg reference" in why
    assert reference.paddle_reference(cfg("pp_liteseg_t", "vim"))[0] is None  # the reference has no VIM there
    assert reference.paddle_reference(cfg("pp_mobileseg_base", fusion="aam"))[0] is None  # not the reference graph
    assert set(reference.PADDLE_REFERENCE) <= set(ppseg.list_models())


def test_table_ratio_and_na() -> None:
    common = {"model": "pp_mobileseg_tiny", "input_shape": [1, 3, 512, 512], "output_op": "vim", "threads": 1,
              "params": 1_492_298, "gflops": 1.2, "peak_rss_mb": 300.0, "peak_delta_mb": 40.0}
    rows = [
        {"backend": "onnxruntime", "runtime": "onnxruntime", **common, "median_ms": 20.0, "p90_ms": 22.0,
         "images_per_s": 50.0},
        {"backend": "paddle", "runtime": "paddle", **common, "gflops": None, "median_ms": 100.0, "p90_ms": 110.0,
         "images_per_s": 10.0},
        {"backend": "paddle", "runtime": "paddle", **common, "model": "lraspp_mobilenetv3_small",
         "na": "no PaddleSeg reference mapping for lraspp_mobilenetv3_small"},
    ]
    report.add_ratios(rows)
    assert rows[0]["vs_paddle"] == pytest.approx(5.0)
    text = report.format_table(rows)
    assert "5.00x" in text and "ref" in text and "n/a: no PaddleSeg reference" in text and "1.49M" in text


def test_parsers() -> None:
    assert config.parse_threads("1,2,2") == (1, 2)
    assert config.parse_backends("torch, ort") == ("torch", "onnxruntime")
    with pytest.raises(ConfigError):
        config.parse_backends("")


def test_images_are_timed_resized_and_undecodable_ones_named(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--images: the files (resized to the input shape, reused in turn) are what runs; a file that is not an
    image is one line naming it."""
    cv2 = pytest.importorskip("cv2")
    import numpy as np

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(photos / "a.png"), rng.integers(0, 256, (40, 90, 3), dtype=np.uint8))
    cv2.imwrite(str(photos / "b.jpg"), rng.integers(0, 256, (70, 50, 3), dtype=np.uint8))
    imgs = worker._bench_images((3, 3, 64, 48), [str(photos / "a.png"), str(photos / "b.jpg")])
    assert imgs.shape == (3, 64, 48, 3) and imgs.dtype == np.uint8
    assert np.array_equal(imgs[0], imgs[2]) and not np.array_equal(imgs[0], imgs[1])  # reused in turn
    out_json = tmp_path / "b.json"
    assert main(["bench", *FAST, "--backends", "onnxruntime", "--images", str(photos), "--json", str(out_json)]) == 0
    assert "1 real image(s)" in capsys.readouterr().out
    doc = json.loads(out_json.read_text())
    assert doc["config"]["images"] == [str(photos / "a.png")] and "error" not in doc["rows"][0]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    assert main(["bench", *FAST, "--backends", "onnxruntime", "--images", str(bad)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "notes.png" in err and "\n" not in err and "exporting" not in captured.out  # before any work


def test_onnxruntime_worker_never_imports_torch(tmp_path: Path) -> None:
    """The onnxruntime measurement runs where torch is absent: the worker entry point
    (``python -m ppseg.bench --worker``), the package and everything the case imports are torch-free."""
    from ppseg.export import export_onnx

    model = ppseg.create_model(MODEL, num_classes=3).eval()
    res = export_onnx(model, tmp_path / "onnx", model_name=MODEL, model_kwargs={"num_classes": 3},
                      class_names=["a", "b", "c"], palette=[[0, 0, 0], [1, 1, 1], [2, 2, 2]], mean=(0.5,) * 3,
                      std=(0.5,) * 3, input_shape=(1, 3, 64, 64))
    job = {"backend": "onnxruntime", "threads": 1, "onnx": str(res.onnx_path), "ort_opt": "all",
           "input_shape": [1, 3, 64, 64], "images": [], "runs": 2, "warmup": 1}
    spec, out = tmp_path / "job.json", tmp_path / "result.json"
    spec.write_text(json.dumps(job))
    code = ("import runpy, sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            f"sys.argv = ['ppseg.bench', '--worker', {str(spec)!r}, '--result', {str(out)!r}]\n"
            "runpy.run_module('ppseg.bench', run_name='__main__', alter_sys=True)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    assert result["output_shape"] == [1, 64, 64] and len(result["times_ms"]) == 2
    assert result["version"].startswith("onnxruntime ")
