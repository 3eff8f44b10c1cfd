"""Checkpoint conversion: the safe .pdparams reader, the mmseg key mapping, convert_checkpoint,
``ppseg convert`` and load_pretrained.

Everything except the ``*_fixture`` tests runs on small checkpoints synthesised here;
those use the real ``.pdparams`` of ``../shared/spec/parity`` and skip without it.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ppseg
from helpers.data import ppseg_cmd
from helpers.parity import PARITY_DIR, assert_logits_match, fixture_file, load_fixture, tensor_by_rule
from ppseg.cli import main
from ppseg.convert import convert_checkpoint, load_pretrained, mmseg_to_paddle, read_mmseg, read_pdparams
from ppseg.convert.pdparams import BOOKKEEPING_KEY, load_pdparams_pickle
from ppseg.weights import load_file, load_weights
from ppseg.errors import PPSegError

TINY = "pp_mobileseg_tiny"
FIXTURE = "pp_mobileseg_tiny_sigmoid"


# ------------------------------------------------------------------ helpers


def to_paddle_name(key: str) -> str:
    return key.replace(".running_mean", "._mean").replace(".running_var", "._variance")


def paddle_state_of(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """A model's state dict in Paddle's layout (BN ``_mean``/``_variance``, no ``num_batches_tracked``)."""
    return {to_paddle_name(k): v.detach().numpy().copy() for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def write_pdparams(path: Path, arrays: dict[str, np.ndarray], protocol: int = 4) -> Path:
    """What ``paddle.save(state_dict)`` writes: the arrays plus the bookkeeping entry."""
    obj = dict(arrays)
    obj[BOOKKEEPING_KEY] = {k: f"param_{i}.w_0" for i, k in enumerate(arrays)}
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


# Paddle -> mmseg, written independently of ppseg.convert.mmseg (which maps the other way),
# segment by segment from the table in spec section 9.3.
_CONV_BN_PARENTS = {"conv", "expand_conv", "bottleneck_conv", "linear_conv", "to_q", "to_k", "to_v", "dwconv",
                    "pwconv", "fc1", "fc2"}


def paddle_key_to_mmseg(key: str) -> str:
    parts = key.split(".")
    out: list[str] = []
    i = 0
    while i < len(parts):
        part, prev = parts[i], (out[-1] if out else "")
        if prev == "mid_se" and part in ("conv1", "conv2"):
            out += ["conv_act" + part[-1], "conv"]
        elif prev == "attn" and part == "stride_conv":
            out += ["stride_conv", {"0": "conv", "1": "bn"}[parts[i + 1]]]
            i += 1
        elif prev == "attn" and part in ("proj", "proj_encode_row", "proj_encode_column"):
            assert parts[i + 1] == "1", key
            out += [part, {"c": "conv", "bn": "bn"}[parts[i + 2]]]
            i += 2
        elif prev == "mlp" and part == "dwconv":
            out += ["dwconv", "conv"]
        elif part == "c" and prev in _CONV_BN_PARENTS:
            out.append("conv")
        elif part == "_mean" and i == len(parts) - 1:
            out.append("running_mean")
        elif part == "_variance" and i == len(parts) - 1:
            out.append("running_var")
        else:
            out.append(part)
        i += 1
    return ".".join(out)


def mmseg_state_of(paddle: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """An mmseg-port state dict holding the same tensors (with BN ``num_batches_tracked``)."""
    out: dict[str, torch.Tensor] = {}
    for key, arr in paddle.items():
        mkey = paddle_key_to_mmseg(key)
        out[mkey] = torch.from_numpy(arr.copy())
        if mkey.endswith(".running_var"):
            out[mkey[: -len("running_var")] + "num_batches_tracked"] = torch.tensor(80000)
    return out


def assert_no_output(folder: Path, name: str) -> None:
    left = sorted(p.name for p in folder.iterdir() if name in p.name)
    assert left == [], left


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A PP-MobileSeg-Tiny (7 classes) with random weights, saved as .pdparams and as mmseg .pth."""
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model = ppseg.create_model(TINY, num_classes=7).eval()
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 1.5)
            elif v.is_floating_point():
                v.normal_(0, 0.1)
    arrays = paddle_state_of(model)
    pdparams = write_pdparams(root / "tiny.pdparams", arrays)
    mm = mmseg_state_of(arrays)
    pth = root / "tiny_mmseg.pth"
    torch.save({"meta": {"mmseg_version": "1.1.0", "epoch": 1}, "state_dict": mm}, pth)
    return {"root": root, "model": model, "arrays": arrays, "pdparams": pdparams, "pth": pth, "mmseg": mm}


def assert_same_weights(model: torch.nn.Module, ref: torch.nn.Module) -> None:
    got, want = model.state_dict(), ref.state_dict()
    assert list(got) == list(want)
    for k, v in want.items():
        if k.endswith("num_batches_tracked"):
            assert int(got[k]) == 0, k
        else:
            assert torch.equal(got[k], v), k


# ------------------------------------------------------------------ restricted unpickler


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pdparams_reader_round_trips_every_protocol(tmp_path, protocol):
    arrays = {"a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
              "a.bn._mean": np.linspace(-1, 1, 3).astype(np.float32),
              "b.f64": np.asfortranarray(np.ones((2, 3))), "c.int": np.array([1, -2], dtype=np.int64),
              "d.empty": np.zeros((0, 4), np.float16), "e.scalar": np.array(2.5, np.float32),
              "f.bool": np.array([True, False])}
    got = read_pdparams(write_pdparams(tmp_path / "x.pdparams", arrays, protocol=protocol))
    assert list(got) == list(arrays)  # file order kept, bookkeeping entry dropped
    for k, v in arrays.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape and np.array_equal(got[k], v), k
        assert got[k].flags.writeable


def _payload_system(marker: Path):
    class P:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)
    return P()


def _payload_eval(marker: Path):
    import builtins

    class P:
        def __reduce__(self):
            return builtins.eval, (f"open({str(marker)!r}, 'w').close()",)
    return P()


def _payload_popen(marker: Path):
    class P:
        def __reduce__(self):
            return subprocess.Popen, (["touch", str(marker)],)
    return P()


@pytest.mark.parametrize("make, refused", [(_payload_system, os.system.__module__ + ".system"),
                                           (_payload_eval, "builtins.eval"),
                                           (_payload_popen, "subprocess.Popen")])
@pytest.mark.parametrize("where", ["top", "value", "bookkeeping"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, make, refused, where):
    marker = tmp_path / "pwned"
    payload = make(marker)
    good = np.zeros(3, np.float32)
    obj = {"top": payload, "value": {"w": good, "evil": payload},
           "bookkeeping": {"w": good, BOOKKEEPING_KEY: {"w": payload}}}[where]
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(PPSegError) as e:
        read_pdparams(path)
    assert str(e.value) == (f"{path}: refused to load: the pickle asks for '{refused}', "
                            "which a checkpoint never needs")
    time.sleep(0.2)  # a spawned process would have had time to create it
    assert not marker.exists()
    # control: the same bytes do run their payload under a plain pickle.load
    if where == "top":
        proc = pickle.loads(path.read_bytes())
        if isinstance(proc, subprocess.Popen):
            proc.wait(10)
        assert marker.exists()


@pytest.mark.parametrize("raw, refused", [
    (b"cos\nsystem\n(S'touch PWNED'\ntR.", "os.system"),  # protocol 0 GLOBAL + REDUCE
    (b"(S'touch PWNED'\nios\nsystem\n.", "os.system"),  # protocol 0 INST
    (b"\x80\x02cnumpy\nload\nq\x00X\x05\x00\x00\x00x.npyq\x01\x85q\x02Rq\x03.", "numpy.load"),
    (b"\x80\x02cnumpy.testing._private.utils\nrunstring\nq\x00.", "numpy.testing._private.utils.runstring"),
    (b"\x80\x02c__builtin__\ngetattr\nq\x00.", "__builtin__.getattr"),
])
def test_handwritten_malicious_opcodes_are_refused(tmp_path, monkeypatch, raw, refused):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PPSegError, match=f"refused to load: the pickle asks for '{refused}'"):
        load_pdparams_pickle(io.BytesIO(raw), "evil.pdparams")
    assert not (tmp_path / "PWNED").exists()


def test_allowed_numpy_globals_only_accept_numpys_own_arguments(tmp_path):
    # _reconstruct with a huge shape (numpy itself always writes (0,)) must not allocate
    class Huge:
        def __reduce__(self):
            return np.ndarray.__reduce__(np.zeros(0))[0], (np.ndarray, (10**13,), b"b")
    path = tmp_path / "huge.pdparams"
    path.write_bytes(pickle.dumps({"w": Huge()}, protocol=4))
    with pytest.raises(PPSegError, match="huge.pdparams: not a readable .pdparams file"):
        read_pdparams(path)

    class CallNdarray:  # ndarray itself may not be called
        def __reduce__(self):
            return np.ndarray, ((10**13,),)
    path.write_bytes(pickle.dumps({"w": CallNdarray()}, protocol=4))
    with pytest.raises(PPSegError, match="not a readable .pdparams file"):
        read_pdparams(path)


@pytest.mark.parametrize("obj, needle", [
    ([np.zeros(2)], "the pickle holds a list, expected a dict"),
    (np.zeros(2), "the pickle holds a ndarray"),
    ({"w": np.zeros(2), "b": [1.0, 2.0]}, "entry 'b' is a list, not an array"),
    ({"w": np.zeros(2), "b": "text"}, "entry 'b' is a str, not an array"),
    ({"w": np.zeros(2), "sub": {"x": np.zeros(1)}}, "entry 'sub' is a dict, not an array"),
    ({"w": np.array([1, "x"], dtype=object)}, "entry 'w' has dtype object"),
    ({3: np.zeros(2)}, "key 3 is not a parameter name"),
    ({"w": np.zeros(2), BOOKKEEPING_KEY: {"w": 5}}, f"'{BOOKKEEPING_KEY}' is not a dict of str -> str"),
    ({}, "holds no parameters"),
    ({BOOKKEEPING_KEY: {}}, "holds no parameters"),
    ({"w": np.zeros(2), "LR_Scheduler": {"last_epoch": 3}}, ".pdopt optimizer file"),
    ({"w@@.0": np.zeros(2), "UnpackBigParamInfor@@": {}}, "re-save it with protocol=4"),
])
def test_pdparams_content_is_validated(tmp_path, obj, needle):
    path = tmp_path / "bad.pdparams"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(PPSegError) as e:
        read_pdparams(path)
    assert str(e.value).startswith(f"{path}: ") and needle in str(e.value), str(e.value)


def test_truncated_garbage_and_missing_files_give_one_clear_error(tmp_path):
    whole = pickle.dumps({"w": np.arange(5000, dtype=np.float32), "b": np.ones(3, np.float32)}, protocol=4)
    cases = {"truncated.pdparams": (whole[: len(whole) // 2], "the file is truncated"),
             "empty.pdparams": (b"", "the file is truncated"),
             "garbage.pdparams": (b"\x00\x13garbage bytes, not a pickle", "not a pickle, or damaged"),
             "text.pdparams": (b"hello world\n", "not a readable .pdparams file")}
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(PPSegError) as e:
            read_pdparams(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: ") and needle in str(e.value), str(e.value)
        assert "\n" not in str(e.value)
    torch.save({"w": torch.zeros(2)}, tmp_path / "torch.pdparams")
    with pytest.raises(PPSegError, match="zip archive, e.g. a PyTorch .pth"):
        read_pdparams(tmp_path / "torch.pdparams")
    with pytest.raises(PPSegError, match="checkpoint file not found"):
        read_pdparams(tmp_path / "nope.pdparams")


# ------------------------------------------------------------------ mmseg keys


def test_mmseg_key_table_on_representative_keys():
    table = {
        "backbone.smb1.conv.conv.weight": "backbone.smb1.conv.c.weight",
        "backbone.smb1.conv.bn.running_mean": "backbone.smb1.conv.bn._mean",
        "backbone.smb2.blocks.0.expand_conv.conv.weight": "backbone.smb2.blocks.0.expand_conv.c.weight",
        "backbone.smb2.blocks.1.bottleneck_conv.bn.running_var": "backbone.smb2.blocks.1.bottleneck_conv.bn._variance",
        "backbone.smb2.blocks.1.mid_se.conv_act1.conv.weight": "backbone.smb2.blocks.1.mid_se.conv1.weight",
        "backbone.smb2.blocks.1.mid_se.conv_act2.conv.bias": "backbone.smb2.blocks.1.mid_se.conv2.bias",
        "backbone.trans1.transformer_blocks.0.attn.to_q.conv.weight":
            "backbone.trans1.transformer_blocks.0.attn.to_q.c.weight",
        "backbone.trans1.transformer_blocks.0.attn.stride_conv.conv.bias":
            "backbone.trans1.transformer_blocks.0.attn.stride_conv.0.bias",
        "backbone.trans1.transformer_blocks.0.attn.stride_conv.bn.running_mean":
            "backbone.trans1.transformer_blocks.0.attn.stride_conv.1._mean",
        "backbone.trans1.transformer_blocks.0.attn.proj.conv.weight":
            "backbone.trans1.transformer_blocks.0.attn.proj.1.c.weight",
        "backbone.trans1.transformer_blocks.0.attn.proj_encode_row.bn.weight":
            "backbone.trans1.transformer_blocks.0.attn.proj_encode_row.1.bn.weight",
        "backbone.trans1.transformer_blocks.0.attn.proj_encode_column.conv.weight":
            "backbone.trans1.transformer_blocks.0.attn.proj_encode_column.1.c.weight",
        "backbone.trans1.transformer_blocks.0.attn.dwconv.conv.weight":
            "backbone.trans1.transformer_blocks.0.attn.dwconv.c.weight",
        "backbone.trans1.transformer_blocks.0.attn.pwconv.conv.weight":
            "backbone.trans1.transformer_blocks.0.attn.pwconv.c.weight",
        "backbone.trans1.transformer_blocks.0.attn.pos_emb_rowq.pos_embed":
            "backbone.trans1.transformer_blocks.0.attn.pos_emb_rowq.pos_embed",
        "backbone.trans2.transformer_blocks.1.mlp.fc1.conv.weight": "backbone.trans2.transformer_blocks.1.mlp.fc1.c.weight",
        "backbone.trans2.transformer_blocks.1.mlp.dwconv.conv.weight":
            "backbone.trans2.transformer_blocks.1.mlp.dwconv.weight",
        "backbone.trans2.transformer_blocks.1.mlp.dwconv.conv.bias": "backbone.trans2.transformer_blocks.1.mlp.dwconv.bias",
        "backbone.trans2.transformer_blocks.1.mlp.fc2.bn.weight": "backbone.trans2.transformer_blocks.1.mlp.fc2.bn.weight",
        "backbone.inj_module.embedding_list.0.conv.weight": "backbone.inj_module.embedding_list.0.conv.weight",
        "backbone.inj_module.act_embedding_list.2.bn.running_var": "backbone.inj_module.act_embedding_list.2.bn._variance",
        "decode_head.linear_fuse.conv.weight": "decode_head.linear_fuse.conv.weight",
        "decode_head.conv_seg.bias": "decode_head.conv_seg.bias",
    }
    state = {k: torch.zeros(1) for k in table}
    state["backbone.smb1.conv.bn.num_batches_tracked"] = torch.tensor(5)
    arrays, origin = mmseg_to_paddle(state, TINY)
    assert list(arrays) == list(table.values())  # num_batches_tracked dropped
    for mm, pd in table.items():  # and the test's own inverse agrees with the table
        assert paddle_key_to_mmseg(pd) == mm
        assert origin.get(pd, pd) == mm
    with pytest.raises(PPSegError, match="no MMSegmentation key mapping for model 'lraspp_mobilenetv3_small'"):
        mmseg_to_paddle(state, "lraspp_mobilenetv3_small")


def test_mmseg_mapping_inverts_every_key_of_the_model(tiny):
    arrays, _ = mmseg_to_paddle(tiny["mmseg"], TINY)
    assert list(arrays) == list(tiny["arrays"])
    assert all(np.array_equal(arrays[k], v) for k, v in tiny["arrays"].items())


def test_read_mmseg_accepts_wrapped_bare_and_ddp_files_and_refuses_others(tmp_path, tiny):
    wrapped = read_mmseg(tiny["pth"])
    assert list(wrapped) == list(tiny["mmseg"])
    sd = {"a.weight": torch.ones(2), "a.bias": torch.zeros(2)}
    torch.save(sd, tmp_path / "bare.pth")
    assert list(read_mmseg(tmp_path / "bare.pth")) == list(sd)
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "ddp.pth")
    assert list(read_mmseg(tmp_path / "ddp.pth")) == list(sd)
    torch.save({"state_dict": {"a.weight": torch.ones(2), "n": 3}}, tmp_path / "mixed.pth")
    with pytest.raises(PPSegError, match="entry 'n' of 'state_dict' is a int, not a tensor"):
        read_mmseg(tmp_path / "mixed.pth")
    (tmp_path / "junk.pth").write_bytes(b"PK\x03\x04 junk")
    with pytest.raises(PPSegError, match="junk.pth: not a readable PyTorch checkpoint"):
        read_mmseg(tmp_path / "junk.pth")

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'pwned'}",)
    torch.save({"state_dict": {"a": Evil()}}, tmp_path / "evil.pth")
    with pytest.raises(PPSegError, match="evil.pth: not a readable PyTorch checkpoint"):
        read_mmseg(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


# ------------------------------------------------------------------ convert_checkpoint / ppseg convert


def test_convert_paddle_checkpoint_api(tiny, tmp_path):
    out = tmp_path / "sub" / "tiny.pt"
    report = convert_checkpoint(tiny["pdparams"], source="paddle", model=TINY, out=out)
    assert report.num_classes == 7 and report.num_classes_from == "decode_head.conv_seg.weight"
    assert report.tensors == len(tiny["arrays"]) and report.dropped == [] and report.filled == []
    assert report.loaded == len(tiny["model"].state_dict())
    assert ("backbone.smb1.conv.bn._mean", "backbone.smb1.conv.bn.running_mean") in report.renamed
    ckpt = load_file(out)
    assert ckpt["model"] == TINY and ckpt["model_kwargs"] == {"num_classes": 7}
    assert ckpt["meta"]["source"] == "paddle" and ckpt["meta"]["source_sha256"] == report.source_sha256
    assert len(report.source_sha256) == 64
    seg = ppseg.load_segmentor(out)  # what ppseg.load_segmentor / val / predict read
    assert_same_weights(seg.model, tiny["model"])
    model = ppseg.create_model(TINY, num_classes=7)
    load_weights(model, ckpt, out, TINY)
    assert_same_weights(model, tiny["model"])


def test_convert_mmseg_checkpoint_api(tiny, tmp_path):
    out = tmp_path / "mm.pt"
    report = convert_checkpoint(tiny["pth"], source="mmseg", model=TINY, out=out, num_classes=7)
    assert report.num_classes_from == "argument" and report.source == "mmseg"
    assert ("backbone.smb1.conv.conv.weight", "backbone.smb1.conv.c.weight") in report.renamed
    assert_same_weights(ppseg.load_segmentor(out).model, tiny["model"])


def test_convert_cli_prints_summary_and_records_options(tiny, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    code = main(["convert", "--from", "paddle", str(tiny["pdparams"]), "--model", TINY, "--out", str(out),
                 "--opts", "aam_gate_act=relu6"])
    text = capsys.readouterr().out
    assert code == 0, text
    for needle in (f"model:       {TINY}", "num_classes: 7 (inferred from 'decode_head.conv_seg.weight')",
                   "options:     aam_gate_act=relu6", f"{len(tiny['arrays'])} read", "dropped 0, filled 0",
                   f"wrote:       {out}"):
        assert needle in text, (needle, text)
    ckpt = load_file(out)
    assert ckpt["model_kwargs"] == {"aam_gate_act": "relu6", "num_classes": 7}
    assert ppseg.load_segmentor(out).model.num_classes == 7


def test_convert_cli_errors_are_one_line_and_write_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "never.pt"

    def run(*args):
        code = main(["convert", *args])
        return code, capsys.readouterr().err

    src = str(tiny["pdparams"])
    code, err = run("--from", "paddle", src, "--model", TINY, "--out", str(out), "--num-classes", "19")
    assert_one_line(code, err, "decode_head.conv_seg.weight", "[7, 256, 1, 1]", "[19, 256, 1, 1]",
                    "is for 7 classes, not 19")
    code, err = run("--from", "paddle", src, "--model", "pp_mobileseg_tiyn", "--out", str(out))
    assert_one_line(code, err, "unknown model 'pp_mobileseg_tiyn'")
    code, err = run("--from", "paddle", src, "--model", TINY, "--out", str(out), "--opts", "aam_gate=relu6")
    assert_one_line(code, err, "has no argument 'aam_gate'")
    code, err = run("--from", "paddle", src, "--model", TINY, "--out", str(out), "--opts", "aam_gate_act=tanh")
    assert_one_line(code, err, "aam_gate_act")
    code, err = run("--from", "mmseg", src, "--model", TINY, "--out", str(out))
    assert_one_line(code, err, "not a readable PyTorch checkpoint", "a plain pickle, e.g. a PaddlePaddle .pdparams")
    code, err = run("--from", "paddle", str(tiny["pth"]), "--model", TINY, "--out", str(out))
    assert_one_line(code, err, "not a readable .pdparams file", "PyTorch .pth")
    code, err = run("--from", "mmseg", str(tiny["pth"]), "--model", "lraspp_mobilenetv3_small", "--out", str(out))
    assert_one_line(code, err, "no MMSegmentation key mapping")
    code, err = run("--from", "paddle", src, "--model", TINY, "--out", src)
    assert_one_line(code, err, "would overwrite the checkpoint")
    assert_no_output(tmp_path, "never")


def test_wrong_or_incomplete_checkpoint_names_the_key_and_writes_nothing(tiny, tmp_path):
    out = tmp_path / "never.pt"
    arrays = dict(tiny["arrays"])
    missing = "backbone.trans2.transformer_blocks.0.attn.to_k.bn._variance"
    del arrays[missing]
    src = write_pdparams(tmp_path / "cut.pdparams", arrays)
    with pytest.raises(PPSegError) as e:
        convert_checkpoint(src, source="paddle", model=TINY, out=out)
    assert "backbone.trans2.transformer_blocks.0.attn.to_k.bn.running_var" in str(e.value)
    assert str(e.value).startswith(f"{src}: does not fit model '{TINY}'")

    extra = dict(tiny["arrays"], **{"backbone.extra.weight": np.zeros(3, np.float32)})
    src = write_pdparams(tmp_path / "extra.pdparams", extra)
    with pytest.raises(PPSegError, match="'backbone.extra.weight' has no counterpart in the model"):
        convert_checkpoint(src, source="paddle", model=TINY, out=out, num_classes=7)

    # mmseg: the error also names the key as it is in the user's file
    mm = dict(tiny["mmseg"])
    mm["backbone.smb1.conv.conv.weight"] = torch.zeros(16, 3, 5, 5)
    torch.save({"state_dict": mm}, tmp_path / "bad_mm.pth")
    with pytest.raises(PPSegError, match=r"backbone\.smb1\.conv\.c\.weight.*\(mmseg key 'backbone\.smb1\.conv\."
                                         r"conv\.weight'\)"):
        convert_checkpoint(tmp_path / "bad_mm.pth", source="mmseg", model=TINY, out=out, num_classes=7)
    assert_no_output(tmp_path, "never")


def test_base_weights_into_tiny_is_refused(tmp_path):
    base = ppseg.create_model("pp_mobileseg_base", num_classes=7)
    src = write_pdparams(tmp_path / "base.pdparams", paddle_state_of(base))
    out = tmp_path / "never.pt"
    with pytest.raises(PPSegError) as e:
        convert_checkpoint(src, source="paddle", model=TINY, out=out)
    msg = str(e.value)
    assert msg.startswith(f"{src}: does not fit model '{TINY}'") and "checkpoint key 'backbone." in msg, msg
    assert "\n" not in msg
    assert_no_output(tmp_path, "never")


def test_num_classes_inference_needs_a_classifier(tiny, tmp_path):
    arrays = {k: v for k, v in tiny["arrays"].items() if not k.startswith("decode_head.conv_seg")}
    src = write_pdparams(tmp_path / "headless.pdparams", arrays)
    with pytest.raises(PPSegError, match="cannot infer num_classes .* pass num_classes"):
        convert_checkpoint(src, source="paddle", model=TINY, out=tmp_path / "never.pt")
    arrays["decode_head.conv_seg.weight"] = np.zeros((5, 256, 1, 1), np.float32)
    arrays["decode_head.conv_seg.bias"] = np.zeros(6, np.float32)
    src = write_pdparams(tmp_path / "disagree.pdparams", arrays)
    with pytest.raises(PPSegError, match="classifier tensors disagree on num_classes"):
        convert_checkpoint(src, source="paddle", model=TINY, out=tmp_path / "never.pt")
    assert_no_output(tmp_path, "never")


# ------------------------------------------------------------------ load_pretrained


def test_load_pretrained_reads_all_three_formats(tiny, tmp_path):
    ppseg_file = tmp_path / "tiny.pt"
    convert_checkpoint(tiny["pdparams"], source="paddle", model=TINY, out=ppseg_file)
    renamed_pickle = tmp_path / "tiny_weights.bin"  # a .pdparams under another suffix
    renamed_pickle.write_bytes(tiny["pdparams"].read_bytes())
    cases = [(tiny["pdparams"], "paddle"), (renamed_pickle, "paddle"), (tiny["pth"], "mmseg"),
             (ppseg_file, "ppseg")]
    for path, kind in cases:
        for source in ("auto", kind):
            model = ppseg.create_model(TINY, num_classes=7)
            report = load_pretrained(model, path, source=source, model_name=TINY)
            assert report.source == kind and report.out is None, (path, source)
            assert_same_weights(model, tiny["model"])
    model = ppseg.create_model(TINY, num_classes=7)
    report = ppseg.load_pretrained(model, tiny["pth"])  # no model name: PP-MobileSeg's mmseg mapping
    assert report.model is None and report.tensors == len(tiny["arrays"])
    assert_same_weights(model, tiny["model"])


def test_load_pretrained_leaves_the_model_unchanged_on_mismatch(tiny, tmp_path):
    arrays = dict(tiny["arrays"])
    arrays["decode_head.conv_seg.weight"] = np.zeros((7, 256, 3, 3), np.float32)
    src = write_pdparams(tmp_path / "bad.pdparams", arrays)
    model = ppseg.create_model(TINY, num_classes=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(PPSegError, match=r"'decode_head.conv_seg.weight'.*\[7, 256, 3, 3\]"):
        load_pretrained(model, src)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ppseg_file = tmp_path / "tiny.pt"
    convert_checkpoint(tiny["pdparams"], source="paddle", model=TINY, out=ppseg_file)
    with pytest.raises(PPSegError, match="checkpoint does not match the model"):
        load_pretrained(ppseg.create_model(TINY, num_classes=3), ppseg_file)
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(PPSegError, match="not a checkpoint this package can read"):
        load_pretrained(model, tmp_path / "junk.bin")


# ------------------------------------------------------------------ the real .pdparams fixture


@pytest.fixture(scope="module")
def fixture_pdparams():
    path = fixture_file(f"{FIXTURE}.pdparams")
    meta, arrays = load_fixture(FIXTURE)
    return path, meta, arrays


def test_real_pdparams_holds_exactly_the_rule_weights_fixture(fixture_pdparams):
    path, meta, _ = fixture_pdparams
    raw = load_pdparams_pickle(io.BytesIO(path.read_bytes()), str(path))
    assert set(raw[BOOKKEEPING_KEY]) == {k for k, _ in meta["state_dict"]}
    got = read_pdparams(path)
    assert [(k, list(v.shape)) for k, v in got.items()] == [(k, list(s)) for k, s in meta["state_dict"]]
    for key, shape in meta["state_dict"]:
        assert got[key].dtype == np.float32
        assert np.array_equal(got[key], tensor_by_rule(key, shape, meta["seed"])), key
    humanseg = PARITY_DIR / "pp_humanseg_lite_v1.pdparams"
    if humanseg.is_file():
        assert len(read_pdparams(humanseg)) == 340


def test_real_pdparams_through_ppseg_convert_reproduces_logits_fixture(fixture_pdparams, tmp_path):
    path, meta, arrays = fixture_pdparams
    out = tmp_path / "tiny_sigmoid.pt"
    proc = subprocess.run(ppseg_cmd("convert", "--from", "paddle", str(path), "--model", TINY, "--out", str(out)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "num_classes: 19 (inferred from 'decode_head.conv_seg.weight')" in proc.stdout
    assert f"{meta['num_tensors']} read" in proc.stdout and "dropped 0, filled 0" in proc.stdout
    seg = ppseg.load_segmentor(out)
    assert_logits_match(seg.model, meta, arrays)


def test_real_pdparams_through_the_api_reproduces_logits_fixture(fixture_pdparams, tmp_path):
    path, meta, arrays = fixture_pdparams
    report = convert_checkpoint(path, source="paddle", model=TINY, out=tmp_path / "t.pt", aam_gate_act="sigmoid")
    assert report.num_classes == meta["constructor"]["num_classes"] and report.tensors == meta["num_tensors"]
    converted = ppseg.load_segmentor(tmp_path / "t.pt").model
    assert_logits_match(converted, meta, arrays)
    # load_pretrained and the mmseg layout of the same weights give the same model (so the same logits)
    model = ppseg.create_model(TINY, num_classes=19)
    ppseg.load_pretrained(model, path, model_name=TINY)
    assert_same_weights(model, converted)
    pth = tmp_path / "tiny_mmseg.pth"
    torch.save({"meta": {}, "state_dict": mmseg_state_of(read_pdparams(path))}, pth)
    convert_checkpoint(pth, source="mmseg", model=TINY, out=tmp_path / "mm.pt")
    assert_same_weights(ppseg.load_segmentor(tmp_path / "mm.pt").model, converted)
