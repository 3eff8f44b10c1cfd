"""Hostile input, table-driven: every case exits 1 with one line naming the culprit, no traceback,
and no output left behind (issue 13's shared mechanisms: output-path checks, the CLI error
boundary, the image-size guard, text-file guards, failed-run logs)."""

from __future__ import annotations

import errno
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.data import tiny_config, train_tiny_run, write_config
from ppseg.cli import main
from ppseg.errors import DataError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("hard")
    data, cfg, run = train_tiny_run(root)
    return root, data, cfg, run / "best_model.pt"


def huge_png(path: Path, w: int = 30000, h: int = 30000) -> Path:
    """A PNG whose header claims ``w x h`` pixels (its data is one tiny row: only the header matters)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 8))
                     + chunk(b"IEND", b""))
    return path


def one_line_error(capsys, argv: list[str], *needles: str) -> str:
    code = main(argv)
    _, err = capsys.readouterr()
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 1, (argv, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ----------------------------------------------------------------------------- output paths, checked first
CASES = [
    # (id, argv builder, needles, what must not appear)
    ("predict-save-dir-is-a-file", lambda r, f: ["predict", "-c", r["cfg"], "--model", r["w"], "--input", r["img"],
                                                 "--save-dir", f], ["--save-dir", "not a folder"]),
    ("predict-save-dir-under-a-file", lambda r, f: ["predict", "-c", r["cfg"], "--model", r["w"], "--input", r["img"],
                                                    "--save-dir", f + "/sub"], ["--save-dir", "which is a file"]),
    ("val-json-is-a-folder", lambda r, f: ["val", "-c", r["cfg"], "--model", r["w"], "--json", r["dir"]],
     ["--json", "is a folder"]),
    ("val-json-under-a-file", lambda r, f: ["val", "-c", r["cfg"], "--model", r["w"], "--json", f + "/m.json"],
     ["--json", "which is a file"]),
    ("val-confusion-matrix-is-a-folder", lambda r, f: ["val", "-c", r["cfg"], "--model", r["w"],
                                                       "--confusion-matrix", r["dir"]], ["--confusion-matrix"]),
    ("export-out-is-a-file", lambda r, f: ["export", "-c", r["cfg"], "--model", r["w"], "--out", f],
     ["--out", "not a folder"]),
    ("export-json-is-a-folder", lambda r, f: ["export", "-c", r["cfg"], "--model", r["w"], "--out", r["dir"] + "/e",
                                              "--json", r["dir"]], ["--json", "is a folder"]),
    ("train-save-dir-is-a-file", lambda r, f: ["train", "-c", r["cfg"], "--save-dir", f], ["--save-dir"]),
    ("convert-out-is-a-folder", lambda r, f: ["convert", "--from", "paddle", f, "--model", "pp_mobileseg_tiny",
                                              "--out", r["dir"]], ["--out", "is a folder"]),
    ("bench-json-is-a-folder", lambda r, f: ["bench", "--model", "pp_humanseg_lite_v1", "--input-shape", "1", "3",
                                             "32", "32", "--backends", "torch", "--json", r["dir"]], ["--json"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_output_paths_fail_before_any_work(case, trained, tmp_path, capsys):
    root, data, cfg, weights = trained
    name, argv, needles = case
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder = tmp_path / "folder"
    folder.mkdir()
    r = {"cfg": str(cfg), "w": str(weights), "img": str(data / "images" / "val"), "dir": str(folder)}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    one_line_error(capsys, argv(r, str(a_file)), *needles)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    assert a_file.read_text() == "x"


def test_val_json_into_a_missing_folder_is_created(trained, tmp_path, capsys):
    _, _, cfg, weights = trained
    out = tmp_path / "new" / "deeper" / "m.json"
    assert main(["val", "-c", str(cfg), "--model", str(weights), "--json", str(out)]) == 0
    assert out.is_file() and not list(out.parent.glob(".*.tmp"))


# ----------------------------------------------------------------------------- the error boundary
def test_os_errors_are_one_line_with_the_path_and_debug_shows_the_traceback(trained, tmp_path, capsys, monkeypatch):
    _, data, cfg, weights = trained
    import ppseg.semantic.predict as predict

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "labels" / "000.png"))

    monkeypatch.setattr(predict, "write_image", full_disk)
    argv = ["predict", "-c", str(cfg), "--model", str(weights), "--input", str(data / "images" / "val"),
            "--save-dir", str(tmp_path / "out")]
    one_line_error(capsys, argv, "no space left on device", "000.png")
    assert not (tmp_path / "out").exists()  # the staging folder is gone too
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    with pytest.raises(OSError):
        main(["--debug", *argv])
    monkeypatch.setenv("PPSEG_DEBUG", "1")
    with pytest.raises(OSError):
        main(argv)


def test_a_crash_in_training_is_logged_as_failed(trained, tmp_path, monkeypatch):
    _, data, _, _ = trained
    from ppseg.semantic.task import SemanticTask

    def crash(*a, **k):
        raise RuntimeError("boom in the step")

    monkeypatch.setattr(SemanticTask, "train_step", crash)
    cfg = write_config(tmp_path / "c.yml", tiny_config(data, tmp_path / "run", iters=2))
    with pytest.raises(RuntimeError):  # a bug keeps its traceback...
        main(["train", "-c", str(cfg)])
    log = (tmp_path / "run" / "train.log").read_text()
    assert "[failed] at iteration 0: RuntimeError: boom in the step" in log  # ... and the log says so
    assert not (tmp_path / "run" / "last_model.pt").exists()


def test_stale_checkpoint_temp_files_are_removed_on_resume(trained, tmp_path):
    _, data, _, _ = trained
    cfg = write_config(tmp_path / "c.yml", tiny_config(data, tmp_path / "run", iters=2))
    assert main(["train", "-c", str(cfg)]) == 0
    ck = tmp_path / "run" / "checkpoints"
    dead = ck / ".latest.pt.999999.0123abcd.tmp"  # pid 999999: not running
    dead.write_bytes(b"half a checkpoint")
    (ck / ".iter_2.pt.tmp").write_bytes(b"half a link")
    mine = ck / f".latest.pt.{os.getpid()}.0123abcd.tmp"  # a live process's: kept
    mine.write_bytes(b"in progress")
    assert main(["train", "-c", str(cfg), "--resume"]) == 0
    assert not dead.exists() and not (ck / ".iter_2.pt.tmp").exists() and mine.exists()


# ----------------------------------------------------------------------------- images over the pixel limit
def test_an_image_over_the_pixel_limit_is_refused_before_decoding(trained, tmp_path, capsys):
    _, _, cfg, weights = trained
    from ppseg.data.io import read_image, read_label

    big = huge_png(tmp_path / "big.png")
    for reader in (read_image, read_label):
        with pytest.raises(DataError, match=r"big\.png.*30000x30000 \(900 megapixels\).*PPSEG_MAX_IMAGE_PIXELS"):
            reader(big)
    one_line_error(capsys, ["predict", "-c", str(cfg), "--model", str(weights), "--input", str(big),
                            "--save-dir", str(tmp_path / "p")], "big.png", "megapixels")
    assert not (tmp_path / "p").exists()


def test_the_pixel_limit_can_be_raised_and_lowered(tmp_path, monkeypatch):
    from ppseg.data.io import read_image

    img = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(img)
    assert read_image(img).shape == (40, 50, 3)
    monkeypatch.setenv("PPSEG_MAX_IMAGE_PIXELS", "1999")
    with pytest.raises(DataError, match="50x40.*over the limit"):
        read_image(img)
    monkeypatch.setenv("PPSEG_MAX_IMAGE_PIXELS", "2000")
    assert read_image(img).shape == (40, 50, 3)
    monkeypatch.setenv("PPSEG_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(DataError, match="PPSEG_MAX_IMAGE_PIXELS"):
        read_image(img)


def test_deploy_predictor_refuses_a_huge_image(tmp_path):
    pytest.importorskip("onnxruntime")
    from ppseg.deploy import Predictor

    p = Predictor(Path(__file__).parent / "data" / "legacy" / "onnx" / "model.onnx")
    with pytest.raises(DataError, match="megapixels"):
        p.predict(huge_png(tmp_path / "big.png"))


# ----------------------------------------------------------------------------- text files
def test_config_that_is_not_utf8(tmp_path, capsys):
    cfg = tmp_path / "latin1.yml"
    cfg.write_bytes("batch_size: 2\n# caf\xe9\n".encode("latin-1"))
    for cmd in (["train", "-c", str(cfg)], ["check-data", str(cfg)]):
        one_line_error(capsys, cmd, "latin1.yml", "line 2", "not UTF-8")


def test_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    cfg = tmp_path / "bomb.yml"
    cfg.write_text("\n".join(lines) + "\n")
    one_line_error(capsys, ["train", "-c", str(cfg)], "bomb.yml", "YAML aliases")


def test_file_list_that_is_not_utf8(trained, tmp_path, capsys):
    _, data, _, _ = trained
    bad = tmp_path / "train.txt"
    bad.write_bytes((data / "train.txt").read_bytes() + "images/train/caf\xe9.png labels/x.png\n".encode("latin-1"))
    cfg = write_config(tmp_path / "c.yml", tiny_config(data, tmp_path / "run", **{"train_dataset.file_list": str(bad)}))
    one_line_error(capsys, ["train", "-c", str(cfg)], "train.txt:5", "not UTF-8")
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- numbers, files and sidecars that validate late
def test_a_refused_pickle_names_the_global_in_one_plain_line(tmp_path, capsys, trained):
    _, _, cfg, _ = trained

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    import torch

    torch.save({"format": "ppseg", "state_dict": {}, "x": [Evil()]}, tmp_path / "evil.pt")
    line = one_line_error(capsys, ["val", "-c", str(cfg), "--model", str(tmp_path / "evil.pt")],
                          "evil.pt", "refused", "(print)")
    assert "\x1b" not in line and "pwned" not in capsys.readouterr().out


@pytest.mark.parametrize("seed", [-1, 2**40])
def test_seed_out_of_range(seed, tmp_path, capsys, trained):
    _, data, _, _ = trained
    cfg = write_config(tmp_path / "c.yml", tiny_config(data, tmp_path / "run", seed=seed))
    one_line_error(capsys, ["train", "-c", str(cfg)], "c.yml: seed", "4294967295")
    assert not (tmp_path / "run").exists()


def test_resume_after_changing_the_param_groups(tmp_path, capsys, trained):
    _, data, _, _ = trained
    cfg = write_config(tmp_path / "c.yml", tiny_config(data, tmp_path / "run", iters=2))
    assert main(["train", "-c", str(cfg)]) == 0
    changed = tiny_config(data, tmp_path / "run", iters=4, **{"optimizer.param_groups": [
        {"match": ["bn", "bias"], "weight_decay": 0.0}]})
    write_config(cfg, changed)
    one_line_error(capsys, ["train", "-c", str(cfg), "--resume"], "latest.pt", "parameter groups", "param_groups")


@pytest.mark.parametrize("shape, needle", [(["1", "3", "1", "1"], "H=1"), (["1", "3", "100000", "64"], "H=100000"),
                                           (["9999", "3", "64", "64"], "batch N=9999")])
def test_absurd_input_shapes(shape, needle, tmp_path, capsys, trained):
    _, _, cfg, weights = trained
    one_line_error(capsys, ["export", "-c", str(cfg), "--model", str(weights), "--out", str(tmp_path / "e"),
                            "--input-shape", *shape], "--input-shape", needle)
    assert not (tmp_path / "e").exists()
    one_line_error(capsys, ["bench", "--model", "pp_humanseg_lite_v1", "--input-shape", *shape], "--input-shape")


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c["model_kwargs"].update(num_classes=10**9), "num_classes 1000000000"),
    (lambda c: c["model_kwargs"].update(num_classes="three"), "num_classes 'three'"),
    (lambda c: c["meta"].update(segmentor={"mean": "grey"}), "segmentor settings"),
    (lambda c: c["meta"].update(segmentor=[1, 2]), "segmentor settings"),
    (lambda c: c.update(model_kwargs=[3]), "'model_kwargs' must be a dict"),
])
def test_weights_files_with_absurd_records(edit, needle, tmp_path, trained):
    import torch

    import ppseg
    from ppseg.errors import PPSegError

    _, _, _, weights = trained
    ckpt = torch.load(weights, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, tmp_path / "w.pt")
    with pytest.raises(PPSegError, match=needle):
        ppseg.load_segmentor(tmp_path / "w.pt")


def test_bad_scales_are_blamed_on_the_command_line(trained, capsys):
    _, _, cfg, weights = trained
    line = one_line_error(capsys, ["val", "-c", str(cfg), "--model", str(weights), "--aug-eval", "--scales", "-1"],
                          "--scales", "scales must be positive")
    assert "cfg.yml" not in line


@pytest.mark.parametrize("edit, needle", [
    (lambda c: c["input"].update(mean="grey"), "input.mean must be a list of numbers"),
    (lambda c: c.update(num_classes="3"), "num_classes must be an integer"),
    (lambda c: c.update(palette=[[0, 0, 0], [255, 0, 0], [0, 999, 0]]), "palette"),
    (lambda c: c["input"].update(shape=[1, 3, "h", None]), "input.shape"),
    (lambda c: c["output"].update(op="softmax"), "output.op 'softmax' gives float32 NCHW"),
    (lambda c: c["output"].update(op="softmax", dtype="float32", layout="NCHW"), "output.op 'softmax' means"),
])
def test_edited_sidecars_are_refused(edit, needle, tmp_path):
    import json
    import shutil

    from ppseg.deploy import Predictor
    from ppseg.errors import PPSegError

    pytest.importorskip("onnxruntime")
    shutil.copytree(Path(__file__).parent / "data" / "legacy" / "onnx", tmp_path / "m")
    car = json.loads((tmp_path / "m" / "model.json").read_text())
    edit(car)
    (tmp_path / "m" / "model.json").write_text(json.dumps(car))
    with pytest.raises(PPSegError, match=needle):
        Predictor(tmp_path / "m" / "model.onnx")
