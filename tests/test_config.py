"""YAML config loading (``_base_``, ``_inherited_``, ``--opts``), key provenance and validation."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Optional

import pytest

from ppseg.config import Config, build_kwargs, build_typed, coerce, load_config, parse_opts
from ppseg.engine import build
from ppseg.engine.options import TrainOptions
from ppseg.errors import ConfigError
from ppseg.losses import CrossEntropyLoss, LovaszSoftmaxLoss, MixedLoss


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def cfg_from(tmp_path: Path, text: str, name: str = "cfg.yml", opts: list[str] | None = None) -> Config:
    return load_config(write(tmp_path / name, text), opts)


# ----------------------------------------------------------------------------- _base_ inheritance


def test_single_base_nested_merge_and_list_replacement(tmp_path):
    write(tmp_path / "base.yml", """
        iters: 100
        model: {type: net, depth: 3, widths: [1, 2, 3], head: {ch: 8, act: relu}}
        train: {log_iters: 5}
    """)
    cfg = cfg_from(tmp_path, """
        _base_: base.yml
        iters: 200
        model: {widths: [9], head: {ch: 16}}
    """)
    assert cfg["iters"] == 200
    # dicts merge key by key at every depth, lists are replaced whole
    assert cfg["model"] == {"type": "net", "depth": 3, "widths": [9], "head": {"ch": 16, "act": "relu"}}
    assert cfg["train"] == {"log_iters": 5}
    assert "_base_" not in cfg


def test_list_of_bases_later_wins_then_child(tmp_path):
    write(tmp_path / "a.yml", "x: 1\ny: 1\nsec: {p: a, q: a}\n")
    write(tmp_path / "b.yml", "y: 2\nz: 2\nsec: {q: b}\n")
    cfg = cfg_from(tmp_path, """
        _base_: [a.yml, b.yml]
        z: 3
    """)
    assert dict(cfg) == {"x": 1, "y": 2, "z": 3, "sec": {"p": "a", "q": "b"}}
    assert cfg.source_of("x").endswith("a.yml")
    assert cfg.source_of("y").endswith("b.yml")
    assert cfg.source_of("sec.p").endswith("a.yml")
    assert cfg.source_of("sec.q").endswith("b.yml")
    assert cfg.source_of("z").endswith("cfg.yml")


def test_inherited_false_replaces_whole_section(tmp_path):
    write(tmp_path / "base.yml", "optimizer: {type: SGD, momentum: 0.9, weight_decay: 4.0e-5}\nkeep: {a: 1}\n")
    cfg = cfg_from(tmp_path, """
        _base_: base.yml
        optimizer:
          _inherited_: false
          type: AdamW
        keep: {b: 2}
    """)
    assert cfg["optimizer"] == {"type": "AdamW"}
    assert cfg["keep"] == {"a": 1, "b": 2}
    assert cfg.source_of("optimizer.momentum").endswith("cfg.yml")  # no stale base entry


def test_inherited_marker_never_leaks_into_the_result(tmp_path):
    write(tmp_path / "base.yml", "model: {a: 1, sub: {x: 1, y: 2}}\n")
    cfg = cfg_from(tmp_path, """
        _base_: base.yml
        model:
          _inherited_: true
          b: 2
          sub: {_inherited_: false, z: 3}
        fresh: {_inherited_: false, k: {_inherited_: false, v: 1}}
    """)
    assert cfg["model"] == {"a": 1, "b": 2, "sub": {"z": 3}}
    assert cfg["fresh"] == {"k": {"v": 1}}
    assert not any("_inherited_" in k for k in cfg.sources)


def test_relative_base_paths_resolve_from_each_file(tmp_path):
    write(tmp_path / "configs" / "_base_" / "root.yml", "a: root\nsec: {r: 1}\n")
    write(tmp_path / "configs" / "_base_" / "mid.yml", "_base_: root.yml\nb: mid\nsec: {m: 2}\n")
    write(tmp_path / "configs" / "exp" / "child.yml", "_base_: ../_base_/mid.yml\nc: child\n")
    cfg = load_config(tmp_path / "configs" / "exp" / "child.yml")
    assert dict(cfg) == {"a": "root", "sec": {"r": 1, "m": 2}, "b": "mid", "c": "child"}
    # each key is attributed to the file that really set it, through two levels of _base_
    assert Path(cfg.source_of("a")).resolve() == (tmp_path / "configs/_base_/root.yml").resolve()
    assert Path(cfg.source_of("sec.r")).resolve() == (tmp_path / "configs/_base_/root.yml").resolve()
    assert Path(cfg.source_of("sec.m")).resolve() == (tmp_path / "configs/_base_/mid.yml").resolve()
    assert Path(cfg.source_of("b")).resolve() == (tmp_path / "configs/_base_/mid.yml").resolve()
    assert Path(cfg.source_of("c")).resolve() == (tmp_path / "configs/exp/child.yml").resolve()


def test_circular_base_is_an_error(tmp_path):
    write(tmp_path / "a.yml", "_base_: b.yml\nx: 1\n")
    write(tmp_path / "b.yml", "_base_: a.yml\ny: 1\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "a.yml")
    write(tmp_path / "self.yml", "_base_: self.yml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "self.yml")


def test_diamond_bases_are_not_circular(tmp_path):
    write(tmp_path / "root.yml", "r: 1\n")
    write(tmp_path / "l.yml", "_base_: root.yml\nl: 1\n")
    write(tmp_path / "r.yml", "_base_: root.yml\nrr: 1\n")
    cfg = cfg_from(tmp_path, "_base_: [l.yml, r.yml]\n")
    assert dict(cfg) == {"r": 1, "l": 1, "rr": 1}


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="not found") as e:
        load_config(tmp_path / "nope.yml")
    assert "nope.yml" in str(e.value)
    with pytest.raises(ConfigError) as e:
        cfg_from(tmp_path, "_base_: ../missing_base.yml\nx: 1\n")
    assert "missing_base.yml" in str(e.value) and "cfg.yml" in str(e.value)


def test_bad_base_value(tmp_path):
    with pytest.raises(ConfigError, match="_base_"):
        cfg_from(tmp_path, "_base_: {a: 1}\n")


def test_invalid_yaml_names_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as e:
        cfg_from(tmp_path, "a: 1\nb: 2\n  c: 3\n", name="broken.yml")
    msg = str(e.value)
    assert "broken.yml" in msg and "line 3" in msg and "invalid YAML" in msg


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping"):
        cfg_from(tmp_path, "- 1\n- 2\n", name="list.yml")


def test_empty_file_is_an_empty_config(tmp_path):
    assert dict(cfg_from(tmp_path, "")) == {}


# ----------------------------------------------------------------------------- --opts


def test_opts_yaml_typed_values_and_new_keys(tmp_path):
    cfg = cfg_from(tmp_path, "iters: 10\nmodel: {type: m, depth: 3}\ntrain: {}\n", opts=[
        "iters=20", "model.depth=5", "model.scale=0.5", "model.flag=true", "model.size=[3, 4]",
        "model.name=abc", "new.sub.key=7", "train.save_dir=", "model.lr=1.0e-3"])
    assert cfg["iters"] == 20 and isinstance(cfg["iters"], int)
    assert cfg["model"] == {"type": "m", "depth": 5, "scale": 0.5, "flag": True, "size": [3, 4],
                            "name": "abc", "lr": 1e-3}
    assert cfg["new"] == {"sub": {"key": 7}}
    assert cfg["train"] == {"save_dir": None}
    assert cfg.source_of("model.depth") == "--opts"
    assert cfg.source_of("new.sub.key") == "--opts"
    assert cfg.source_of("new") == "--opts"
    assert cfg.source_of("model.type").endswith("cfg.yml")


def test_opts_value_may_contain_equals_sign(tmp_path):
    cfg = cfg_from(tmp_path, "a: 1\n", opts=["note=x=y"])
    assert cfg["note"] == "x=y"


def test_opts_replacing_a_section_forgets_its_old_keys(tmp_path):
    cfg = cfg_from(tmp_path, "model: {type: m, depth: 3}\n", opts=["model={type: n}"])
    assert cfg["model"] == {"type": "n"}
    assert cfg.source_of("model.type") == "--opts"
    assert cfg.source_of("model.depth") == "--opts"


@pytest.mark.parametrize("bad", ["iters", "", "=3", "a..b=1", ".a=1"])
def test_opts_malformed(bad):
    with pytest.raises(ConfigError, match="--opts"):
        parse_opts([bad])


def test_opts_parent_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError) as e:
        cfg_from(tmp_path, "iters: 10\n", opts=["iters.sub=1"])
    assert "--opts" in str(e.value) and "'iters'" in str(e.value) and "int" in str(e.value)


# ----------------------------------------------------------------------------- provenance


def test_source_of_and_where(tmp_path):
    write(tmp_path / "base.yml", "optimizer: {type: SGD, momentum: 0.9}\nseed: 1\n")
    cfg = cfg_from(tmp_path, "_base_: base.yml\noptimizer: {weight_decay: 0.1}\n", opts=["seed=2"])
    assert cfg.source_of("optimizer.momentum").endswith("base.yml")
    assert cfg.source_of("optimizer.weight_decay").endswith("cfg.yml")
    assert cfg.source_of("seed") == "--opts"
    # unknown keys fall back to the closest parent, then the top-level file
    assert cfg.source_of("optimizer.weight_decay.deeper").endswith("cfg.yml")
    assert cfg.source_of("nothing.here") == str(tmp_path / "cfg.yml")
    assert cfg.where("optimizer.momentum") == f"{cfg.source_of('optimizer.momentum')}: optimizer.momentum"


# ----------------------------------------------------------------------------- build_kwargs / build_typed


def sgd_like(learning_rate: float, momentum: float = 0.9, steps: int = 10, nesterov: bool = False,
             size: tuple[int, int] = (1, 1), dims: tuple[int, ...] = (), names: list[str] | None = None,
             mode: Literal["fast", "slow"] = "fast", clip: Optional[float] = None,
             scales: Sequence[float] = (1.0,), extra: dict | None = None) -> dict:
    return dict(locals())


class Thing:
    def __init__(self, width: int, ratio: float = 0.5) -> None:
        if width > 100:
            raise ValueError("width too large")
        self.width, self.ratio = width, ratio


def test_build_kwargs_unknown_key_did_you_mean(tmp_path):
    cfg = cfg_from(tmp_path, "opt: {lerning_rate: 0.1}\n", name="camvid.yml")
    with pytest.raises(ConfigError) as e:
        build_kwargs(cfg["opt"], sgd_like, cfg, "opt")
    msg = str(e.value)
    assert "did you mean 'learning_rate'?" in msg
    assert "camvid.yml" in msg and "opt.lerning_rate" in msg


def test_build_kwargs_unknown_key_names_the_base_file(tmp_path):
    write(tmp_path / "base.yml", "opt: {learning_rate: 0.1, momentun: 0.8}\n")
    cfg = cfg_from(tmp_path, "_base_: base.yml\nopt: {steps: 3}\n")
    with pytest.raises(ConfigError) as e:
        build_kwargs(cfg["opt"], sgd_like, cfg, "opt")
    assert "base.yml: opt.momentun" in str(e.value) and "'momentum'" in str(e.value)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("learning_rate", "abc", "float"),
    ("steps", 1.5, "int"),
    ("steps", True, "int"),
    ("nesterov", 1, "bool"),
    ("mode", "medium", "'fast' | 'slow'"),
    ("size", [1, 2, 3], "tuple"),
    ("size", [1, "x"], "tuple"),
    ("names", "abc", "list"),
    ("clip", "x", "float | null"),
    ("extra", [1], "dict"),
])
def test_build_kwargs_wrong_type(tmp_path, key, value, expected):
    cfg = Config({"opt": {"learning_rate": 0.1, key: value}}, str(tmp_path / "c.yml"), {})
    with pytest.raises(ConfigError) as e:
        build_kwargs(cfg["opt"], sgd_like, cfg, "opt")
    msg = str(e.value)
    assert f"opt.{key}" in msg and f"expected {expected}" in msg and repr(value) in msg
    assert "c.yml" in msg


def test_build_kwargs_coercions(tmp_path):
    spec = {"learning_rate": 1, "momentum": "1e-3", "steps": 4.0, "size": [2, 3], "dims": [1, 2, 3],
            "names": ("a", "b"), "mode": "slow", "clip": 2, "scales": [1, 0.5], "extra": {"k": 1}}
    cfg = Config({"opt": spec}, "c.yml", {})
    out = build_kwargs(spec, sgd_like, cfg, "opt")
    assert out["learning_rate"] == 1.0 and type(out["learning_rate"]) is float
    assert out["momentum"] == pytest.approx(1e-3) and type(out["momentum"]) is float  # YAML 1.1 string
    assert out["steps"] == 4 and type(out["steps"]) is int
    assert out["size"] == (2, 3) and isinstance(out["size"], tuple)
    assert out["dims"] == (1, 2, 3)
    assert out["names"] == ["a", "b"] and isinstance(out["names"], list)
    assert out["mode"] == "slow"
    assert out["clip"] == 2.0 and type(out["clip"]) is float
    assert list(out["scales"]) == [1.0, 0.5] and all(type(s) is float for s in out["scales"])
    assert out["extra"] == {"k": 1}
    assert build_kwargs({"learning_rate": 0.1, "clip": None}, sgd_like, cfg, "opt")["clip"] is None


def test_coerce_yaml11_booleans_map_to_spelled_literal():
    # YAML 1.1 reads `amp: off` as False: the documented spelling must still be accepted
    assert coerce(False, Literal["off", "bf16", "fp16"]) == "off"
    assert coerce(True, Literal["auto", "on", "off"]) == "on"
    assert coerce(True, Literal["a", "b"]) is not True  # no silent acceptance
    assert coerce(True, Literal[True, "x"]) is True


def test_build_kwargs_missing_required(tmp_path):
    cfg = Config({"opt": {"momentum": 0.5}}, str(tmp_path / "c.yml"), {})
    with pytest.raises(ConfigError, match="missing required key 'learning_rate'"):
        build_kwargs(cfg["opt"], sgd_like, cfg, "opt")


def test_build_kwargs_exclude_and_builders(tmp_path):
    cfg = Config({"opt": {}}, "c.yml", {})
    with pytest.raises(ConfigError, match="unknown key"):
        build_kwargs({"learning_rate": 1.0}, sgd_like, cfg, "opt", exclude=("learning_rate",))
    seen = []
    out = build_kwargs({"learning_rate": 1.0, "names": "raw"}, sgd_like, cfg, "opt",
                       builders={"names": lambda v, k: seen.append((v, k)) or ["built"]})
    assert out["names"] == ["built"] and seen == [("raw", "opt.names")]


def test_build_typed(tmp_path):
    cfg = cfg_from(tmp_path, "thing: {type: Thing, width: 3}\n")
    table = {"Thing": Thing, "Other": Thing}
    obj = build_typed(cfg["thing"], table, cfg, "thing")
    assert isinstance(obj, Thing) and obj.width == 3 and obj.ratio == 0.5
    obj = build_typed({"type": "Thing"}, table, cfg, "thing", extra={"width": 7})
    assert obj.width == 7
    with pytest.raises(ConfigError, match=r"unknown type 'Thng'; did you mean 'Thing'\?"):
        build_typed({"type": "Thng"}, table, cfg, "thing")
    with pytest.raises(ConfigError, match="unknown type"):
        build_typed({"type": ["Thing"]}, table, cfg, "thing")
    with pytest.raises(ConfigError, match="missing 'type'"):
        build_typed({"width": 3}, table, cfg, "thing")
    with pytest.raises(ConfigError, match="expected a section"):
        build_typed("Thing", table, cfg, "thing")
    with pytest.raises(ConfigError) as e:  # a constructor's ValueError gets the location
        build_typed({"type": "Thing", "width": 1000}, table, cfg, "thing")
    assert "cfg.yml: thing" in str(e.value) and "width too large" in str(e.value)


# ----------------------------------------------------------------------------- engine.build


MINIMAL = """
    batch_size: 2
    iters: 10
    model: {type: lraspp_mobilenetv3_large}
    loss: {types: [{type: CrossEntropyLoss}]}
    optimizer: {type: SGD, momentum: 0.9, weight_decay: 4.0e-5}
    lr_scheduler: {type: PolynomialDecay, learning_rate: 0.01, warmup_iters: 2}
"""


def test_check_top_level(tmp_path):
    build.check_top_level(cfg_from(tmp_path, MINIMAL))
    with pytest.raises(ConfigError) as e:
        build.check_top_level(cfg_from(tmp_path, MINIMAL + "    optimzer: {}\n", name="typo.yml"))
    assert "typo.yml: optimzer" in str(e.value) and "did you mean 'optimizer'?" in str(e.value)
    for bad in ("iters: 0", "iters: 2.5", "batch_size: true", "seed: x"):
        key = bad.split(":")[0]
        with pytest.raises(ConfigError, match=key):
            build.check_top_level(cfg_from(tmp_path, MINIMAL.replace("    iters: 10\n", "") + f"    {bad}\n"))


def test_build_losses_mixed_nested(tmp_path):
    cfg = cfg_from(tmp_path, """
        loss:
          types:
            - type: MixedLoss
              losses: [{type: CrossEntropyLoss, ignore_index: 11}, {type: LovaszSoftmaxLoss}]
              coef: [0.8, 0.2]
            - {type: CrossEntropyLoss}
          coef: [1, 0.4]
    """)
    losses, coef = build.build_losses(cfg)
    assert coef == [1.0, 0.4] and all(type(c) is float for c in coef)
    assert isinstance(losses[0], MixedLoss) and isinstance(losses[1], CrossEntropyLoss)
    assert isinstance(losses[0].losses[0], CrossEntropyLoss) and isinstance(losses[0].losses[1], LovaszSoftmaxLoss)
    assert losses[0].coef == [0.8, 0.2]


def test_build_losses_errors(tmp_path):
    two = "loss: {types: [{type: CrossEntropyLoss}, {type: DiceLoss}], coef: [1.0]}\n"
    with pytest.raises(ConfigError, match="1 coefficients for 2 loss types"):
        build.build_losses(cfg_from(tmp_path, two))
    mixed = """
        loss:
          types:
            - {type: MixedLoss, losses: [{type: CrossEntropyLoss}, {type: DiceLoss}], coef: [1.0]}
    """
    with pytest.raises(ConfigError) as e:
        build.build_losses(cfg_from(tmp_path, mixed, name="mixed.yml"))
    assert "mixed.yml: loss.types[0]" in str(e.value)
    nested_typo = "loss: {types: [{type: MixedLoss, losses: [{type: CrossEntropyLos}], coef: [1.0]}]}\n"
    with pytest.raises(ConfigError) as e:
        build.build_losses(cfg_from(tmp_path, nested_typo))
    assert "loss.types[0].losses[0].type" in str(e.value) and "'CrossEntropyLoss'" in str(e.value)
    with pytest.raises(ConfigError, match="non-empty list"):
        build.build_losses(cfg_from(tmp_path, "loss: {types: []}\n"))
    with pytest.raises(ConfigError, match="unknown key"):
        build.build_losses(cfg_from(tmp_path, "loss: {types: [{type: DiceLoss}], coeff: [1]}\n"))


def test_optim_spec(tmp_path):
    spec = build.optim_spec(cfg_from(tmp_path, MINIMAL))
    assert spec.optimizer_type == "SGD" and spec.optimizer_kwargs["weight_decay"] == pytest.approx(4e-5)
    with pytest.raises(ConfigError) as e:
        build.optim_spec(cfg_from(tmp_path, MINIMAL.replace("type: SGD", "type: AdamX")))
    assert "optimizer.type" in str(e.value) and "unknown type 'AdamX'" in str(e.value)
    bad_rules = [
        ("param_groups: [{lr_mult: 10}]", "match"),
        ("param_groups: [{match: head, lr: 10}]", "unknown key 'lr'"),
        ("param_groups: [{match: []}]", "match"),
        ("param_groups: [{match: 5}]", "match"),
        ("param_groups: [{match: {head: 1}}]", "match"),
        ("param_groups: [{match: head, lr_mult: abc}]", "lr_mult"),
        ("param_groups: [{match: head, weight_decay: -1}]", "weight_decay"),
        ("param_groups: [{match: head, lr_mult: true}]", "lr_mult"),
    ]
    for rule, needle in bad_rules:
        text = MINIMAL.replace("weight_decay: 4.0e-5}", "weight_decay: 4.0e-5, " + rule + "}")
        with pytest.raises(ConfigError) as e:
            build.optim_spec(cfg_from(tmp_path, text, name="opt.yml"))
        assert "opt.yml: optimizer" in str(e.value) and needle in str(e.value), (rule, str(e.value))
    # YAML 1.1 reads 1e-4 as a string: accepted like everywhere else
    text = MINIMAL.replace("weight_decay: 4.0e-5}", "weight_decay: 4.0e-5, param_groups: [{match: bn, weight_decay: 1e-4}]}")
    build.optim_spec(cfg_from(tmp_path, text))
    with pytest.raises(ConfigError, match="lr_scheduler.type"):
        build.optim_spec(cfg_from(tmp_path, MINIMAL.replace("PolynomialDecay", "PolyDecay")))
    with pytest.raises(ConfigError, match="learning_rate must be > 0"):
        build.optim_spec(cfg_from(tmp_path, MINIMAL.replace("learning_rate: 0.01", "learning_rate: 0")))


def test_model_spec_num_classes_cross_check(tmp_path):
    name, kwargs = build.model_spec(cfg_from(tmp_path, MINIMAL), num_classes=4)
    assert name == "lraspp_mobilenetv3_large" and kwargs["num_classes"] == 4
    same = MINIMAL.replace("{type: lraspp_mobilenetv3_large}", "{type: lraspp_mobilenetv3_large, num_classes: 4}")
    assert build.model_spec(cfg_from(tmp_path, same), num_classes=4)[1]["num_classes"] == 4
    other = same.replace("num_classes: 4", "num_classes: 5")
    with pytest.raises(ConfigError) as e:
        build.model_spec(cfg_from(tmp_path, other, name="m.yml"), num_classes=4)
    msg = str(e.value)
    assert "m.yml: model.num_classes" in msg and "5" in msg and "num_classes 4" in msg
    with pytest.raises(ConfigError, match="did you mean 'lraspp_mobilenetv3_large'"):
        build.model_spec(cfg_from(tmp_path, MINIMAL.replace("lraspp_mobilenetv3_large", "lraspp_mobilenetv3_lage")))
    with pytest.raises(ConfigError, match="missing 'type'"):
        build.model_spec(cfg_from(tmp_path, MINIMAL.replace("{type: lraspp_mobilenetv3_large}", "{num_classes: 3}")))


def test_build_options(tmp_path):
    opts = build.build_options(cfg_from(tmp_path, MINIMAL))
    assert opts == TrainOptions()
    opts = build.build_options(cfg_from(tmp_path, MINIMAL + "    train: {amp: bf16, eval_interval: 0, clip_grad_norm: 1}\n"))
    assert opts.amp == "bf16" and opts.eval_interval == 0 and opts.clip_grad_norm == 1.0
    # `amp: off` is YAML 1.1 for False; it still means "off"
    assert build.build_options(cfg_from(tmp_path, MINIMAL + "    train: {amp: off, progress: on}\n")).amp == "off"
    with pytest.raises(ConfigError) as e:
        build.build_options(cfg_from(tmp_path, MINIMAL + "    train: {amp: fp8}\n", name="t.yml"))
    assert "t.yml: train.amp" in str(e.value) and "'bf16'" in str(e.value)
    for bad in ("eval_interval: -1", "save_interval: 0", "log_iters: -5", "keep_checkpoint_max: -1"):
        key = bad.split(":")[0]
        with pytest.raises(ConfigError, match=key):
            build.build_options(cfg_from(tmp_path, MINIMAL + f"    train: {{{bad}}}\n"))
    with pytest.raises(ConfigError, match="did you mean 'eval_interval'"):
        build.build_options(cfg_from(tmp_path, MINIMAL + "    train: {eval_intervall: 5}\n"))
