"""LR schedules (spec §8.2) and optimizers with name-matched parameter groups (spec §8.3)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ppseg.engine.optim import OPTIMIZERS, AdamW, SGD, make_param_groups, parse_rules
from ppseg.engine.schedule import SCHEDULES, ConstantLR, CosineAnnealingDecay, LRScheduler, PolynomialDecay
from ppseg.errors import ConfigError


def spec_poly(t: int, base: float, end: float, power: float, iters: int, warmup: int, start: float) -> float:
    """Spec §8.2, written out independently of the implementation."""
    if t < warmup:
        return start + (base - start) * t / warmup
    T = iters - warmup
    tt = min(t - warmup, T)
    return (base - end) * (1 - tt / T) ** power + end


# ----------------------------------------------------------------------------- schedules


def test_polynomial_with_linear_warmup_values():
    base, end, power, iters, W, start = 0.01, 1e-4, 0.9, 110, 10, 1e-5
    s = PolynomialDecay(base, end_lr=end, power=power, warmup_iters=W, warmup_start_lr=start)
    assert s.lr_at(0, iters) == pytest.approx(start)                      # warm-up start
    assert s.lr_at(5, iters) == pytest.approx(start + (base - start) * 0.5)  # half-way through warm-up
    assert s.lr_at(9, iters) == pytest.approx(start + (base - start) * 0.9)
    assert s.lr_at(W, iters) == pytest.approx(base)                       # t = W: poly at 0
    # half-way through the decay: T = 100, t - W = 50
    assert s.lr_at(60, iters) == pytest.approx((base - end) * 0.5 ** 0.9 + end)
    assert s.lr_at(iters, iters) == pytest.approx(end)                    # end
    assert s.lr_at(iters + 50, iters) == pytest.approx(end)               # clamped past the end
    for t in range(0, iters + 3):
        assert s.lr_at(t, iters) == pytest.approx(spec_poly(t, base, end, power, iters, W, start), rel=1e-12)
    # strictly increasing during warm-up, non-increasing afterwards
    lrs = [s.lr_at(t, iters) for t in range(iters + 1)]
    assert all(a < b for a, b in zip(lrs[:W], lrs[1:W + 1]))
    assert all(a >= b for a, b in zip(lrs[W:], lrs[W + 1:]))


def test_polynomial_without_warmup():
    s = PolynomialDecay(0.1, end_lr=0.0, power=2.0)
    assert s.lr_at(0, 4) == pytest.approx(0.1)
    assert s.lr_at(1, 4) == pytest.approx(0.1 * (3 / 4) ** 2)
    assert s.lr_at(3, 4) == pytest.approx(0.1 * (1 / 4) ** 2)
    assert s.lr_at(4, 4) == 0.0


def test_polynomial_defaults_are_paddles():
    """A section without end_lr / power gets paddle's PolynomialDecay defaults, 1e-4 and 1.0."""
    s = PolynomialDecay(0.1)
    assert (s.end_lr, s.power) == (1e-4, 1.0)
    assert s.lr_at(1, 4) == pytest.approx((0.1 - 1e-4) * 3 / 4 + 1e-4)
    assert s.lr_at(4, 4) == pytest.approx(1e-4) and s.lr_at(9, 4) == pytest.approx(1e-4)


def test_polynomial_decay_steps_and_cycle():
    base, end = 0.01, 1e-3
    held = PolynomialDecay(base, end_lr=end, power=1.0, decay_steps=10, warmup_iters=2)
    assert held.lr_at(2, 100) == pytest.approx(base)            # decay starts after the warm-up
    assert held.lr_at(7, 100) == pytest.approx((base - end) * 0.5 + end)
    assert held.lr_at(12, 100) == pytest.approx(end) and held.lr_at(60, 100) == pytest.approx(end)
    cyc = PolynomialDecay(base, end_lr=end, power=1.0, decay_steps=10, cycle=True)
    assert cyc.lr_at(0, 100) == pytest.approx(base)
    assert cyc.lr_at(10, 100) == pytest.approx(end)              # t = steps: period ceil(1) = 10
    assert cyc.lr_at(11, 100) == pytest.approx((base - end) * (1 - 11 / 20) + end)  # period 20
    assert cyc.lr_at(25, 100) == pytest.approx((base - end) * (1 - 25 / 30) + end)
    # without decay_steps the period is the run (iters - warmup_iters)
    assert PolynomialDecay(base, cycle=True).lr_at(15, 10) == pytest.approx((base - 1e-4) * (1 - 15 / 20) + 1e-4)


def test_cosine_t_max_and_eta_min():
    s = CosineAnnealingDecay(0.1, T_max=10, eta_min=0.01)
    assert s.end_lr == 0.01
    assert s.lr_at(5, 100) == pytest.approx(0.01 + 0.09 * 0.5)
    assert s.lr_at(10, 100) == pytest.approx(0.01)
    assert s.lr_at(15, 100) == pytest.approx(0.01 + 0.09 * 0.5)  # paddle's curve rises again
    assert s.lr_at(20, 100) == pytest.approx(0.1)
    assert CosineAnnealingDecay(0.1).end_lr == 0.0


def test_cosine_endpoints_and_midpoint():
    base, end, W, iters = 0.02, 0.002, 4, 24
    s = CosineAnnealingDecay(base, end_lr=end, warmup_iters=W, warmup_start_lr=0.0)
    assert s.lr_at(0, iters) == 0.0
    assert s.lr_at(2, iters) == pytest.approx(base / 2)
    assert s.lr_at(W, iters) == pytest.approx(base)
    assert s.lr_at(W + 10, iters) == pytest.approx((base + end) / 2)
    assert s.lr_at(W + 5, iters) == pytest.approx(end + (base - end) * (1 + math.cos(math.pi / 4)) / 2)
    assert s.lr_at(iters, iters) == pytest.approx(end)
    assert s.lr_at(iters + 7, iters) == pytest.approx(end)


def test_constant_lr():
    s = ConstantLR(0.3, warmup_iters=3, warmup_start_lr=0.0)
    assert [round(s.lr_at(t, 10), 10) for t in range(6)] == [0.0, 0.1, 0.2, 0.3, 0.3, 0.3]


@pytest.mark.parametrize(("cls", "kwargs", "needle"), [
    (PolynomialDecay, {"learning_rate": 0.0}, "learning_rate"),
    (PolynomialDecay, {"learning_rate": 0.1, "warmup_iters": -1}, "warmup_iters"),
    (PolynomialDecay, {"learning_rate": 0.1, "power": 0.0}, "power"),
    (CosineAnnealingDecay, {"learning_rate": -1.0}, "learning_rate"),
    (CosineAnnealingDecay, {"learning_rate": 0.1, "end_lr": 0.0, "eta_min": 0.0}, "end_lr or eta_min"),
    (CosineAnnealingDecay, {"learning_rate": 0.1, "T_max": 0}, "T_max"),
    (PolynomialDecay, {"learning_rate": 0.1, "decay_steps": 0}, "decay_steps"),
    # issue 13: a NaN or infinite rate used to be accepted and turned every weight into NaN
    (PolynomialDecay, {"learning_rate": float("nan")}, "learning_rate must be a finite number, got nan"),
    (CosineAnnealingDecay, {"learning_rate": float("inf")}, "learning_rate must be a finite number, got inf"),
    (ConstantLR, {"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    (ConstantLR, {"learning_rate": "0.1"}, "learning_rate must be a number"),
    (PolynomialDecay, {"learning_rate": 0.1, "warmup_start_lr": float("nan")}, "warmup_start_lr"),
    (PolynomialDecay, {"learning_rate": 0.1, "warmup_start_lr": -0.1}, "warmup_start_lr must be >= 0"),
    (PolynomialDecay, {"learning_rate": 0.1, "end_lr": float("nan")}, "end_lr must be a finite number"),
    (PolynomialDecay, {"learning_rate": 0.1, "end_lr": -1.0}, "end_lr must be >= 0"),
    (PolynomialDecay, {"learning_rate": 0.1, "power": float("nan")}, "power"),
    (PolynomialDecay, {"learning_rate": 0.1, "power": float("inf")}, "power"),
    (CosineAnnealingDecay, {"learning_rate": 0.1, "eta_min": float("nan")}, "eta_min must be a finite number"),
])
def test_schedule_validation(cls, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        cls(**kwargs)


def test_schedule_table():
    assert set(SCHEDULES) == {"PolynomialDecay", "CosineAnnealingDecay", "ConstantLR"}


class TwoPart(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(2, 2)
        self.head = nn.Linear(2, 1)


def test_scheduler_applies_per_group_lr_mult_and_steps():
    model = TwoPart()
    opt = torch.optim.SGD([{"params": model.backbone.parameters(), "lr_mult": 1.0},
                           {"params": model.head.parameters(), "lr_mult": 10.0},
                           {"params": []}], lr=123.0)
    base, iters, W, start = 0.01, 20, 4, 0.001
    sched = LRScheduler(opt, PolynomialDecay(base, end_lr=0.0, power=0.9, warmup_iters=W,
                                             warmup_start_lr=start), iters)
    # constructed: the lr for iteration 1 (t = 0) is already in place
    expect = spec_poly(0, base, 0.0, 0.9, iters, W, start)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([expect, 10 * expect, expect])
    assert sched.get_lr() == pytest.approx(expect)
    for k in range(1, 15):
        sched.step()
        expect = spec_poly(k, base, 0.0, 0.9, iters, W, start)
        assert sched.last_iter == k
        assert sched.get_lr() == pytest.approx(expect)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([expect, 10 * expect, expect])


def test_scheduler_state_dict_round_trip():
    def make():
        model = TwoPart()
        opt = torch.optim.SGD([{"params": model.backbone.parameters()},
                               {"params": model.head.parameters(), "lr_mult": 0.1}], lr=0.0)
        return opt, LRScheduler(opt, CosineAnnealingDecay(0.5, warmup_iters=2), 30)

    opt, sched = make()
    for _ in range(7):
        sched.step()
    state = sched.state_dict()
    assert state == {"last_iter": 7}
    opt2, sched2 = make()
    assert sched2.last_iter == 0
    sched2.load_state_dict(state)
    assert sched2.last_iter == 7
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([g["lr"] for g in opt.param_groups])
    sched.step()
    sched2.step()
    assert [g["lr"] for g in opt2.param_groups] == pytest.approx([g["lr"] for g in opt.param_groups])
    assert opt2.param_groups[1]["lr"] == pytest.approx(0.1 * sched2.schedule.lr_at(8, 30))


# ----------------------------------------------------------------------------- parameter groups


class Net(nn.Module):
    """Names: backbone.conv.{weight,bias}, backbone.bn.{weight,bias}, head.conv.{weight,bias},
    head.bn.{weight,bias}, stem.weight (frozen)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1, bias=False)
        self.stem.weight.requires_grad_(False)
        self.backbone = nn.Sequential()
        self.backbone.add_module("conv", nn.Conv2d(3, 4, 1))
        self.backbone.add_module("bn", nn.BatchNorm2d(4))
        self.head = nn.Sequential()
        self.head.add_module("conv", nn.Conv2d(4, 2, 1))
        self.head.add_module("bn", nn.BatchNorm2d(2))


RULES = [{"match": "head", "lr_mult": 10.0}, {"match": ["bn", "bias"], "weight_decay": 0.0}]


def names_of(group: dict, model: nn.Module) -> set[str]:
    ids = {id(p) for p in group["params"]}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_param_groups_first_match_wins_and_default_group():
    model = Net()
    groups = make_param_groups(model, parse_rules(RULES), weight_decay=0.05)
    assert len(groups) == 3
    head, nodecay, default = groups
    assert names_of(head, model) == {"head.conv.weight", "head.conv.bias", "head.bn.weight", "head.bn.bias"}
    assert head["lr_mult"] == 10.0 and head["weight_decay"] == 0.05  # head.bn matched 'head' first
    assert names_of(nodecay, model) == {"backbone.conv.bias", "backbone.bn.weight", "backbone.bn.bias"}
    assert nodecay["lr_mult"] == 1.0 and nodecay["weight_decay"] == 0.0
    assert names_of(default, model) == {"backbone.conv.weight"}
    assert default["lr_mult"] == 1.0 and default["weight_decay"] == 0.05
    assert set(default["names"]) == {"backbone.conv.weight"}
    # frozen parameters are in no group
    all_ids = {id(p) for g in groups for p in g["params"]}
    assert id(model.stem.weight) not in all_ids
    assert len(all_ids) == sum(1 for p in model.parameters() if p.requires_grad)


def test_param_groups_rule_order_matters_and_empty_rules():
    model = Net()
    swapped = make_param_groups(model, parse_rules(list(reversed(RULES))), weight_decay=0.05)
    first = swapped[0]
    assert "head.bn.weight" in names_of(first, model) and first["weight_decay"] == 0.0 and first["lr_mult"] == 1.0
    only_default = make_param_groups(model, parse_rules(None), weight_decay=0.01)
    assert len(only_default) == 1 and only_default[0]["weight_decay"] == 0.01
    # a rule nothing matches makes no (empty) group
    assert len(make_param_groups(model, parse_rules([{"match": "nothing"}]), 0.0)) == 1


@pytest.mark.parametrize(("rules", "needle"), [
    ([{"lr_mult": 2}], "match"),
    (["head"], "match"),
    ([{"match": "head", "lr": 2}], "unknown key 'lr'"),
    ([{"match": ""}], "match"),
    ([{"match": []}], "match"),
    ([{"match": ["a", 3]}], "match"),
    ([{"match": 7}], "match"),
    ([{"match": {"head": 1}}], "match"),
    ([{"match": "head", "lr_mult": "ten"}], "lr_mult"),
    ([{"match": "head", "lr_mult": -1}], "lr_mult"),
    ([{"match": "head", "weight_decay": [0]}], "weight_decay"),
])
def test_parse_rules_errors(rules, needle):
    with pytest.raises(ConfigError, match=needle) as e:
        parse_rules(rules)
    assert str(e.value).startswith("param_groups[0]")


def test_parse_rules_accepts_yaml11_number_strings():
    (rule,) = parse_rules([{"match": "bn", "weight_decay": "1e-4", "lr_mult": 2}])
    assert rule.weight_decay == pytest.approx(1e-4) and rule.lr_mult == 2.0 and rule.match == ("bn",)


def zero_grads(model: nn.Module) -> None:
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)


def test_sgd_groups_after_one_scheduler_application():
    torch.manual_seed(0)
    model = Net()
    opt = SGD(model, momentum=0.9, weight_decay=0.1, param_groups=RULES)
    assert isinstance(opt, torch.optim.SGD)
    LRScheduler(opt, ConstantLR(0.01), iters=10)
    by_rule = {g["rule"]: g for g in opt.param_groups}
    assert set(by_rule) == {"head", "bn|bias", "<default>"}
    assert by_rule["head"]["lr"] == pytest.approx(0.1) and by_rule["head"]["weight_decay"] == 0.1
    assert by_rule["bn|bias"]["lr"] == pytest.approx(0.01) and by_rule["bn|bias"]["weight_decay"] == 0.0
    assert by_rule["<default>"]["lr"] == pytest.approx(0.01) and by_rule["<default>"]["weight_decay"] == 0.1
    assert all(g["momentum"] == 0.9 and not g["nesterov"] for g in opt.param_groups)
    # coupled L2 with zero gradient: first step p <- p - lr * wd * p, per group
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    zero_grads(model)
    opt.step()
    params = dict(model.named_parameters())
    torch.testing.assert_close(params["head.conv.weight"], before["head.conv.weight"] * (1 - 0.1 * 0.1))
    torch.testing.assert_close(params["backbone.conv.weight"], before["backbone.conv.weight"] * (1 - 0.01 * 0.1))
    torch.testing.assert_close(params["backbone.bn.weight"], before["backbone.bn.weight"])
    torch.testing.assert_close(params["stem.weight"], before["stem.weight"])


def test_adamw_groups_after_one_scheduler_application():
    torch.manual_seed(0)
    model = Net()
    opt = AdamW(model, betas=(0.8, 0.9), weight_decay=0.01, param_groups=RULES)
    assert isinstance(opt, torch.optim.AdamW)
    LRScheduler(opt, PolynomialDecay(0.002, warmup_iters=2, warmup_start_lr=0.0), iters=10)
    assert all(g["lr"] == 0.0 for g in opt.param_groups)  # warm-up starts at 0
    sched = LRScheduler(opt, PolynomialDecay(0.002, end_lr=0.0, power=0.9), iters=10)
    by_rule = {g["rule"]: g for g in opt.param_groups}
    assert by_rule["head"]["lr"] == pytest.approx(0.02) and by_rule["head"]["weight_decay"] == 0.01
    assert by_rule["bn|bias"]["lr"] == pytest.approx(0.002) and by_rule["bn|bias"]["weight_decay"] == 0.0
    assert by_rule["<default>"]["weight_decay"] == 0.01
    assert all(g["betas"] == (0.8, 0.9) for g in opt.param_groups)
    # decoupled decay with zero gradient (Adam update is 0): p <- p * (1 - lr * wd)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    zero_grads(model)
    opt.step()
    params = dict(model.named_parameters())
    torch.testing.assert_close(params["head.bn.weight"], before["head.bn.weight"] * (1 - 0.02 * 0.01))
    torch.testing.assert_close(params["backbone.conv.weight"], before["backbone.conv.weight"] * (1 - 0.002 * 0.01))
    torch.testing.assert_close(params["backbone.conv.bias"], before["backbone.conv.bias"])
    sched.step()
    assert by_rule["head"]["lr"] == pytest.approx(10 * 0.002 * (1 - 1 / 10) ** 0.9)


def test_optimizer_table_and_sgd_momentum_validation():
    assert set(OPTIMIZERS) == {"SGD", "AdamW", "Adam"}
    with pytest.raises(ConfigError, match="momentum"):
        SGD(Net(), momentum=1.0)
    opt = OPTIMIZERS["Adam"](Net(), weight_decay=0.0)
    assert isinstance(opt, torch.optim.Adam) and len(opt.param_groups) == 1
