"""The ``ppseg`` commands as a user runs them: results, and one clear line for every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.data import ppseg_cmd, tiny_config, write_config
from ppseg.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run shared by the val / predict tests."""
    from helpers.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("trained")
    data = make_synthetic_dataset(root / "data")
    cfg = write_config(root / "cfg.yml", tiny_config(data, root / "run"))
    assert main(["train", "-c", str(cfg)]) == 0
    return root, data, cfg


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ------------------------------------------------------------------ results


def test_train_writes_a_complete_run(trained):
    root, _, _ = trained
    run = root / "run"
    assert (run / "best_model.pt").is_file() and (run / "last_model.pt").is_file()
    ckpt = torch.load(run / "best_model.pt", weights_only=True)
    assert ckpt["model"] == "lraspp_mobilenetv3_large" and ckpt["model_kwargs"]["num_classes"] == 3


def test_val_prints_metrics_and_writes_json_and_confusion_matrix(trained, capsys, tmp_path):
    root, _, cfg = trained
    code, out, _ = run_cli(capsys, "val", "-c", str(cfg), "--model", str(root / "run" / "best_model.pt"),
                           "--json", str(tmp_path / "m.json"), "--confusion-matrix", str(tmp_path / "cm.png"))
    assert code == 0
    assert "red" in out and "green" in out and "mIoU" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and len(metrics["class_iou"]) == 3
    assert Image.open(tmp_path / "cm.png").size[0] > 100


def test_val_with_tta_and_slide_runs(trained, capsys):
    root, _, cfg = trained
    model = str(root / "run" / "best_model.pt")
    code, out, _ = run_cli(capsys, "val", "-c", str(cfg), "--model", model, "--aug-eval", "--scales", "0.75", "1.0",
                           "--flip")
    assert code == 0 and "flip: True" in out
    code, out, _ = run_cli(capsys, "val", "-c", str(cfg), "--model", model, "--slide", "--crop-size", "48", "32",
                           "--stride", "32", "24")
    assert code == 0 and "mode: slide" in out


def test_predict_writes_labels_colour_and_overlays(trained, capsys, tmp_path):
    root, data, cfg = trained
    out_dir = tmp_path / "pred"
    code, out, _ = run_cli(capsys, "predict", "-c", str(cfg), "--model", str(root / "run" / "best_model.pt"),
                           "--input", str(data / "images" / "val"), "--save-dir", str(out_dir))
    assert code == 0
    for name in ("000", "001"):
        label = np.array(Image.open(out_dir / "labels" / f"{name}.png"))
        image = np.array(Image.open(data / "images" / "val" / f"{name}.png"))
        assert label.shape == image.shape[:2] and label.max() < 3
        assert np.array(Image.open(out_dir / "pseudo_color" / f"{name}.png")).shape == image.shape
        assert (out_dir / "overlay" / f"{name}.jpg").is_file()
    assert not list(tmp_path.glob(".pred.partial-*"))


def test_check_data_passes_a_clean_dataset_and_fails_a_broken_one(trained, capsys, tmp_path):
    root, data, cfg = trained
    code, out, _ = run_cli(capsys, "check-data", str(cfg))
    assert code == 0 and "OK" in out
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    (broken / "images" / "train" / "001.png").write_bytes(b"not an image")
    Image.fromarray(np.full((48, 64), 7, np.uint8)).save(broken / "labels" / "train" / "002.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(broken / "labels" / "train" / "003.png")
    (broken / "labels" / "train" / "004.png").unlink()
    code, out, _ = run_cli(capsys, "check-data", str(broken), "--num-classes", "3")
    assert code == 1
    for needle in ("001.png", "002.png", "003.png", "004.png", "Suggested fix"):
        assert needle in out, needle


def test_the_installed_entry_point_runs():
    out = subprocess.run(ppseg_cmd("--help"), capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "val", "predict", "check-data"):
        assert command in out.stdout


# ------------------------------------------------------------------ bad input: one line, exit 1


def test_unknown_config_key_suggests_the_right_one(trained, capsys, tmp_path):
    _, data, _ = trained
    cfg = tiny_config(data, tmp_path / "run")
    cfg["lr_scheduler"]["lerning_rate"] = cfg["lr_scheduler"].pop("learning_rate")
    path = write_config(tmp_path / "bad.yml", cfg)
    code, _, err = run_cli(capsys, "train", "-c", str(path))
    assert_one_line_error(code, err, "bad.yml", "lr_scheduler.lerning_rate", "did you mean 'learning_rate'")
    assert not (tmp_path / "run").exists(), "no run directory for a config that never started"


def test_wrong_value_type_names_key_and_expected_type(trained, capsys, tmp_path):
    _, data, cfg = trained
    code, _, err = run_cli(capsys, "train", "-c", str(cfg), "--save-dir", str(tmp_path / "r"),
                           "--opts", "optimizer.weight_decay=abc")
    assert_one_line_error(code, err, "optimizer.weight_decay", "float", "'abc'")
    assert not (tmp_path / "r").exists()


def test_missing_list_entry_names_list_line_and_file(trained, capsys, tmp_path):
    _, data, _ = trained
    lst = tmp_path / "train.txt"
    lst.write_text((data / "train.txt").read_text() + "images/train/nope.png labels/train/nope.png\n")
    cfg = tiny_config(data, tmp_path / "run", **{"train_dataset.file_list": str(lst)})
    code, _, err = run_cli(capsys, "train", "-c", str(write_config(tmp_path / "c.yml", cfg)))
    assert_one_line_error(code, err, "train.txt", "nope.png")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_image_during_training_is_one_line(trained, capsys, tmp_path, workers):
    _, data, _ = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    for f in (copy / "images" / "train").glob("*.png"):
        f.write_bytes(b"\x89PNG broken")
    cfg = tiny_config(copy, tmp_path / "run", **{"train.num_workers": workers})
    code, _, err = run_cli(capsys, "train", "-c", str(write_config(tmp_path / "c.yml", cfg)))
    assert_one_line_error(code, err, "images/train/", ".png")
    assert not (tmp_path / "run" / "last_model.pt").exists()
    assert "[failed]" in (tmp_path / "run" / "train.log").read_text()


def test_label_out_of_range_is_one_line(trained, capsys, tmp_path):
    _, data, _ = trained
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    for f in (copy / "labels" / "train").glob("*.png"):
        Image.fromarray(np.full((48, 64), 9, np.uint8)).save(f)
    cfg = tiny_config(copy, tmp_path / "run")
    code, _, err = run_cli(capsys, "train", "-c", str(write_config(tmp_path / "c.yml", cfg)))
    assert_one_line_error(code, err, "labels/train/", "9")


def test_checkpoint_of_another_model_is_refused(trained, capsys, tmp_path):
    root, data, _ = trained
    cfg = tiny_config(data, tmp_path / "run", **{"model.type": "lraspp_mobilenetv3_small"})
    path = write_config(tmp_path / "c.yml", cfg)
    code, _, err = run_cli(capsys, "val", "-c", str(path), "--model", str(root / "run" / "best_model.pt"))
    assert_one_line_error(code, err, "best_model.pt", "does not match", "lraspp_mobilenetv3_large",
                          "lraspp_mobilenetv3_small")


def test_not_a_checkpoint_is_refused(trained, capsys, tmp_path):
    _, _, cfg = trained
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    code, _, err = run_cli(capsys, "val", "-c", str(cfg), "--model", str(junk))
    assert_one_line_error(code, err, "junk.pt")


def test_predict_on_an_empty_directory(trained, capsys, tmp_path):
    root, _, cfg = trained
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "predict", "-c", str(cfg), "--model", str(root / "run" / "best_model.pt"),
                           "--input", str(tmp_path / "empty"), "--save-dir", str(tmp_path / "out"))
    assert_one_line_error(code, err, "empty", "no images")
    assert not (tmp_path / "out").exists()


def test_predict_with_an_undecodable_image_leaves_no_output(trained, capsys, tmp_path):
    root, data, cfg = trained
    inputs = tmp_path / "in"
    shutil.copytree(data / "images" / "val", inputs)
    (inputs / "zz_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    code, _, err = run_cli(capsys, "predict", "-c", str(cfg), "--model", str(root / "run" / "best_model.pt"),
                           "--input", str(inputs), "--save-dir", str(tmp_path / "out"))
    assert_one_line_error(code, err, "zz_broken.jpg")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.partial-*"))


def test_check_data_on_an_empty_directory(capsys, tmp_path):
    code, _, err = run_cli(capsys, "check-data", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path))


def test_missing_config_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "-c", str(tmp_path / "nope.yml"))
    assert_one_line_error(code, err, "nope.yml", "not found")


def test_resume_without_a_checkpoint(trained, capsys, tmp_path):
    _, _, cfg = trained
    code, _, err = run_cli(capsys, "train", "-c", str(cfg), "--resume", "--save-dir", str(tmp_path / "fresh"))
    assert_one_line_error(code, err, "--resume", "latest.pt")


def test_fp16_on_cpu_is_refused_before_work(trained, capsys, tmp_path):
    _, _, cfg = trained
    if torch.cuda.is_available():
        pytest.skip("fp16 is valid with CUDA")
    code, _, err = run_cli(capsys, "train", "-c", str(cfg), "--save-dir", str(tmp_path / "r"),
                           "--opts", "train.amp=fp16", "train.device=cpu")
    assert_one_line_error(code, err, "fp16")
    assert not (tmp_path / "r").exists()


def test_bf16_training_on_cpu_runs(trained, capsys, tmp_path):
    _, _, cfg = trained
    code, out, _ = run_cli(capsys, "train", "-c", str(cfg), "--save-dir", str(tmp_path / "r"),
                           "--opts", "train.amp=bf16", "iters=2", "train.eval_interval=0")
    assert code == 0 and "amp bf16" in out
    assert (tmp_path / "r" / "last_model.pt").is_file()


def test_predict_needs_no_dataset_files(trained, capsys, tmp_path):
    """Deployment: a config and a checkpoint are enough; the training data need not be there."""
    root, data, _ = trained
    cfg = tiny_config(tmp_path / "nowhere", tmp_path / "run")
    path = write_config(tmp_path / "c.yml", cfg)
    code, _, err = run_cli(capsys, "predict", "-c", str(path), "--model", str(root / "run" / "best_model.pt"),
                           "--input", str(data / "images" / "val" / "000.png"), "--save-dir", str(tmp_path / "o"))
    assert code == 0, err
    assert (tmp_path / "o" / "labels" / "000.png").is_file()


def test_load_segmentor_rebuilds_the_trained_model(trained):
    """Python API: one call from a weights file to labels, with the training normalisation."""
    import ppseg

    root, data, _ = trained
    seg = ppseg.load_segmentor(root / "run" / "best_model.pt")
    assert seg.num_classes == 3 and not seg.training
    image = torch.from_numpy(np.array(Image.open(data / "images" / "val" / "000.png"))).permute(2, 0, 1)[None]
    labels = seg.predict(image)
    assert labels.shape == (1, 48, 64) and int(labels.max()) < 3
    assert seg.predict(image.float()).equal(labels)
    assert ppseg.load_segmentor(root / "run" / "best_model.pt", flip=True).flip


def test_checkpoint_with_other_inference_kwargs_is_refused(trained, capsys, tmp_path):
    """Same shapes, different function: a checkpoint trained with output_stride 32 vs a config with 16."""
    root, data, _ = trained
    cfg = tiny_config(data, tmp_path / "run", **{"model.output_stride": 32})
    code, _, err = run_cli(capsys, "val", "-c", str(write_config(tmp_path / "c.yml", cfg)),
                           "--model", str(root / "run" / "best_model.pt"))
    assert_one_line_error(code, err, "output_stride=16", "output_stride=32")


def test_vim_needs_a_model_with_lowres_logits(trained, capsys):
    root, _, cfg = trained
    code, _, err = run_cli(capsys, "val", "-c", str(cfg), "--model", str(root / "run" / "best_model.pt"),
                           "--postprocess", "vim")
    assert_one_line_error(code, err, "forward_lowres")


def test_checkpoint_with_other_num_classes_names_the_classifier(trained, capsys, tmp_path):
    root, data, _ = trained
    cfg = tiny_config(data, tmp_path / "run")
    for key in ("train_dataset", "val_dataset"):
        cfg[key]["num_classes"] = 4
        cfg[key]["class_names"] = ["a", "b", "c", "d"]
    code, _, err = run_cli(capsys, "val", "-c", str(write_config(tmp_path / "c.yml", cfg)),
                           "--model", str(root / "run" / "best_model.pt"))
    assert_one_line_error(code, err, "does not match", "[3,", "[4,", "different num_classes?")
