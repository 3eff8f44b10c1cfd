"""Inference benchmark: image -> label map latency on torch, ONNX Runtime and the PaddleSeg reference.

Every measurement times the whole path a user pays for: an ``H x W x 3`` uint8
RGB array in, a label map at the same size out (normalisation, the network and
the post-processing included).

* ``torch``: :class:`ppseg.Segmentor` (normalise + model + ``argmax`` or ``vim``
  post-processing), ``Segmentor.predict`` on the array turned into a tensor.
* ``onnxruntime``: the model is exported once with :func:`ppseg.export.export_onnx`
  (fixed input shape; ``--output-op``, ``--uint8-input``, ``--quantize`` as in
  ``ppseg export``) and :meth:`ppseg.deploy.Predictor.predict` is timed
  (pre-processing, session run, post-processing).
* ``paddle``: the PaddleSeg reference model (``paddleseg.models.PPMobileSeg`` etc.,
  see :data:`PADDLE_REFERENCE`), dygraph eval: normalise + forward + argmax (or the
  reference's own VIM, ``upsample="vim"``). Only when ``paddle`` and ``paddleseg``
  are importable; they are never a dependency of ppseg.

Each (backend, threads) pair runs in a fresh subprocess (``python -m ppseg.bench
--worker``) that sets its thread count (``OMP_NUM_THREADS``/``MKL_NUM_THREADS``, plus
torch's, ONNX Runtime's or Paddle's own setting) before it imports its runtime, so
per-thread numbers are not polluted by thread pools left over from another run, and
its peak RSS is its own. Parameters and FLOPs are counted once on the torch model
(:class:`torch.utils.flop_counter.FlopCounterMode`, a multiply-add counts as 2 FLOPs).

Example:
    >>> from ppseg.bench import BenchConfig, run_benchmark, format_table
    >>> rows = run_benchmark(BenchConfig("pp_mobileseg_tiny", {"num_classes": 150}, (1, 3, 512, 512),
    ...                                  threads=(1, 2), backends=("torch", "onnxruntime")))
    >>> print(format_table(rows))
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, PPSegError

__all__ = ["BACKENDS", "OUTPUT_OPS", "ORT_OPT_LEVELS", "PADDLE_REFERENCE", "BenchConfig", "run_benchmark",
           "format_table", "paddle_available", "count_params_and_flops", "parse_threads", "parse_backends"]

log = logging.getLogger("ppseg")

BACKENDS = ("torch", "onnxruntime", "paddle")
OUTPUT_OPS = ("argmax", "vim", "none", "softmax")
ORT_OPT_LEVELS = ("disable", "basic", "extended", "all")
PADDLE_INSTALL = "pip install paddlepaddle==2.6.2 paddleseg==2.8.0"

#: ppseg model -> how the PaddleSeg reference builds it (spec: architectures.md; parity fixtures)
PADDLE_REFERENCE: dict[str, str] = {
    "pp_mobileseg_tiny": "PPMobileSeg(num_classes, backbone=MobileSeg_Tiny(inj_type='AAM', "
                         "out_feat_chs=[32, 64, 128]), upsample=UPSAMPLE)",
    "pp_mobileseg_base": "PPMobileSeg(num_classes, backbone=MobileSeg_Base(inj_type='AAMSx8', "
                         "out_feat_chs=[64, 128, 192]), upsample=UPSAMPLE)",
    "pp_liteseg_t": "PPLiteSeg(num_classes, backbone=STDC1(), arm_out_chs=[32, 64, 128], "
                    "seg_head_inter_chs=[32, 64, 64])",
    "pp_liteseg_b": "PPLiteSeg(num_classes, backbone=STDC2())",
    "pp_humanseg_lite_v1": "PPHumanSegLite(num_classes, align_corners=False)",
    "pp_humansegv2_lite_general": "MobileSeg(num_classes, backbone=MobileNetV3_large_x1_0(), cm_bin_sizes=[1, 2, 4], "
                                  "backbone_indices=[0, 1, 2, 3], cm_out_ch=128, arm_out_chs=[32, 64, 96, 128], "
                                  "seg_head_inter_chs=[16, 32, 32, 32], use_last_fuse=True)",
    "pp_humansegv2_lite_portrait": "MobileSeg(num_classes, backbone=MobileNetV3_large_x1_0(), cm_bin_sizes=[1, 2, 4], "
                                   "backbone_indices=[0, 1, 2], cm_out_ch=128, arm_out_chs=[32, 64, 128], "
                                   "seg_head_inter_chs=[16, 32, 32], use_last_fuse=True)",
    "pp_humansegv2_mobile": "PPLiteSeg(num_classes, backbone=STDC1(), cm_out_ch=128, backbone_indices=[1, 2, 3, 4], "
                            "arm_out_chs=[4, 16, 32, 64], seg_head_inter_chs=[4, 16, 32, 64])",
}
#: model kwargs that do not change the inference graph (the reference mapping still holds)
_INFERENCE_NEUTRAL_KWARGS = ("num_classes", "drop_path_rate", "dropout", "aam_gate_act", "in_channels")
#: reference models with the VIM post-processing (``upsample="vim"``)
_PADDLE_VIM = ("pp_mobileseg_tiny", "pp_mobileseg_base")


@dataclass
class BenchConfig:
    """What to benchmark.

    Attributes:
        model: a registered ppseg model name.
        model_kwargs: its constructor arguments (``num_classes`` included).
        input_shape: ``(N, 3, H, W)``: N images of H x W.
        threads: thread counts to measure.
        backends: any of :data:`BACKENDS`.
        output_op: ``argmax`` | ``vim`` | ``none`` | ``softmax``: torch and paddle use VIM for
            ``vim`` and argmax otherwise; ONNX Runtime exports the graph with this op.
        uint8_input / ort_opt / quantize / calib_images: ONNX Runtime export and session options.
        weights: a ppseg weights file (default: random initialisation).
        runs / warmup: timed and untimed repetitions.
        mean / std: normalisation on the 0..1 scale.
        class_names / palette: for the exported sidecar (generated when ``None``).
        channels_last: torch backend only: channels-last model and input.
        images: image files to time on (resized to ``input_shape``, reused in turn); default:
            synthetic smooth random images. With trained ``weights``, real images give the real
            number of classes present, which VIM's cost depends on.
    """

    model: str
    model_kwargs: dict[str, Any]
    input_shape: tuple[int, int, int, int]
    threads: tuple[int, ...] = (1,)
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    output_op: str = "argmax"
    uint8_input: bool = False
    ort_opt: str = "all"
    quantize: str | None = None
    calib_images: tuple[str, ...] = ()
    weights: str | None = None
    runs: int = 20
    warmup: int = 3
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    class_names: list[str] | None = None
    palette: list[list[int]] | None = None
    channels_last: bool = False
    images: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- parsing


def parse_threads(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,2"`` -> ``(1, 2)``; every count a positive integer."""
    items = [str(t).strip() for t in (text.split(",") if isinstance(text, str) else text)]
    try:
        out = tuple(int(t) for t in items if t)
    except ValueError:
        raise ConfigError(f"--threads must be comma-separated positive integers, e.g. 1,2; got {text!r}") from None
    if not out or min(out) < 1:
        raise ConfigError(f"--threads must be comma-separated positive integers, e.g. 1,2; got {text!r}")
    return tuple(dict.fromkeys(out))


def parse_backends(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"torch,onnxruntime"`` -> a checked tuple (``ort`` is accepted for ``onnxruntime``)."""
    items = [b.strip().lower() for b in (text.split(",") if isinstance(text, str) else text) if b.strip()]
    items = ["onnxruntime" if b in ("ort", "onnx") else b for b in items]
    bad = [b for b in items if b not in BACKENDS]
    if bad or not items:
        raise ConfigError(f"--backends: unknown backend {', '.join(map(repr, bad)) or '(none given)'}; "
                          f"choose from {', '.join(BACKENDS)}")
    return tuple(dict.fromkeys(items))


def paddle_available() -> bool:
    """``paddle`` and ``paddleseg`` are installed (not imported here: that takes seconds)."""
    return all(importlib.util.find_spec(m) is not None for m in ("paddle", "paddleseg"))


def check_config(cfg: BenchConfig) -> None:
    """Every user-facing mistake as one :class:`ConfigError` line, before anything runs."""
    from .registry import get_factory

    get_factory(cfg.model)  # unknown model: did-you-mean error
    shape = tuple(int(s) for s in cfg.input_shape)
    if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
        raise ConfigError(f"--input-shape must be N 3 H W with positive sizes, got {list(cfg.input_shape)}")
    if shape[2] < 32 or shape[3] < 32:
        raise ConfigError(f"--input-shape {list(shape)}: H and W must be at least 32 (the models downsample 32x)")
    parse_backends(cfg.backends)
    parse_threads(cfg.threads)
    if cfg.output_op not in OUTPUT_OPS:
        raise ConfigError(f"--output-op must be one of {', '.join(OUTPUT_OPS)}, got {cfg.output_op!r}")
    if cfg.ort_opt not in ORT_OPT_LEVELS:
        raise ConfigError(f"--ort-opt must be one of {', '.join(ORT_OPT_LEVELS)}, got {cfg.ort_opt!r}")
    if cfg.quantize not in (None, "int8"):
        raise ConfigError(f"--quantize must be int8, got {cfg.quantize!r}")
    if cfg.quantize and not cfg.calib_images:
        raise ConfigError("--quantize int8 needs calibration images (--calib-data DIR)")
    if cfg.runs < 1 or cfg.warmup < 0:
        raise ConfigError(f"--runs must be >= 1 and --warmup >= 0, got {cfg.runs} and {cfg.warmup}")
    if "paddle" in cfg.backends and not paddle_available():
        raise ConfigError("backend 'paddle' needs the PaddleSeg reference, which is not installed (optional, for "
                          f"comparison only; best in a separate venv): {PADDLE_INSTALL}")
    if "onnxruntime" in cfg.backends:
        for mod in ("onnx", "onnxruntime"):
            if importlib.util.find_spec(mod) is None:
                raise ConfigError(f"backend 'onnxruntime' needs onnx and onnxruntime: pip install 'ppseg[test]' "
                                  f"(or pip install onnx onnxruntime)")
    if cfg.weights and not Path(cfg.weights).exists():
        raise ConfigError(f"--weights {cfg.weights}: file not found")
    if cfg.images:
        from .data.io import read_image

        for p in cfg.images:  # decoded once here, so a bad file is one line before any work
            if not Path(p).is_file():
                raise ConfigError(f"--images: {p}: file not found")
            read_image(p)


def paddle_reference(cfg: BenchConfig) -> tuple[str | None, str]:
    """(the reference constructor call, or None) and why not."""
    if cfg.model not in PADDLE_REFERENCE:
        return None, f"no PaddleSeg reference mapping for {cfg.model}"
    odd = sorted(k for k in cfg.model_kwargs if k not in _INFERENCE_NEUTRAL_KWARGS)
    if odd:
        return None, f"no reference mapping for {cfg.model} with {', '.join(odd)}"
    if cfg.output_op == "vim" and cfg.model not in _PADDLE_VIM:
        return None, f"the reference {cfg.model.split('_')[0]} model has no VIM"
    return PADDLE_REFERENCE[cfg.model], ""


# ---------------------------------------------------------------------------------------------- counting


def count_params_and_flops(model: Any, input_hw: tuple[int, int]) -> tuple[int, float]:
    """(parameters, GFLOPs per image) of the eval-mode forward at ``input_hw`` (FlopCounterMode: 2 per MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    x = torch.zeros(1, 3, *input_hw)
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    model.train(was_training)
    return int(params), counter.get_total_flops() / 1e9


# ---------------------------------------------------------------------------------------------- orchestration


def _bench_images(shape: tuple[int, int, int, int], paths: Sequence[str]) -> np.ndarray:
    """N images of ``shape`` (N H W 3 uint8): ``paths`` resized to H x W in turn, or synthetic ones."""
    if not paths:
        return _test_images(shape)
    import cv2

    from .data.io import read_image

    n, _, h, w = shape
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = read_image(paths[i % len(paths)])  # a clear error for a file that cannot be decoded
        out[i] = img if img.shape[:2] == (h, w) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return out


def _test_images(shape: tuple[int, int, int, int], seed: int = 0) -> np.ndarray:
    """N smooth random RGB images (N H W 3 uint8) that give varied labels."""
    import cv2

    n, _, h, w = shape
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        small = rng.integers(0, 256, size=(max(h // 16, 2), max(w // 16, 2), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) + rng.normal(0, 8, size=(h, w, 3))
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def _ort_label(cfg: BenchConfig) -> str:
    extra = [x for x, on in (("int8", cfg.quantize == "int8"), ("u8in", cfg.uint8_input),
                             (f"opt={cfg.ort_opt}", cfg.ort_opt != "all")) if on]
    return "onnxruntime" + (f"[{','.join(extra)}]" if extra else "")


def _worker_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "CPU_NUM"):
        env[var] = str(threads)
    src = str(Path(__file__).resolve().parents[1])  # the ppseg package's parent, for -m ppseg.bench
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_worker(job: dict[str, Any], workdir: Path, timeout: float | None) -> dict[str, Any]:
    tag = f"{job['backend']}-{job['threads']}"
    spec_path, out_path = workdir / f"job-{tag}.json", workdir / f"result-{tag}.json"
    spec_path.write_text(json.dumps(job), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "ppseg.bench", "--worker", str(spec_path), "--result", str(out_path)]
    try:
        proc = subprocess.run(cmd, env=_worker_env(job["threads"]), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode == 0 and out_path.is_file():
        return json.loads(out_path.read_text(encoding="utf-8"))
    lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
    return {"error": (lines[-1] if lines else f"worker exited with code {proc.returncode}")[:300]}


def run_benchmark(cfg: BenchConfig, progress: Callable[[str], None] | None = None,
                  timeout: float | None = None) -> list[dict[str, Any]]:
    """Measure every (backend, threads) pair of ``cfg``; one row (dict) each, in that order.

    Rows carry ``backend``, ``model``, ``input_shape``, ``output_op``, ``threads``, ``median_ms``,
    ``p90_ms`` (wall clock per call), ``cpu_median_ms`` (process CPU time per call), ``images_per_s``,
    ``params``, ``gflops``, ``peak_rss_mb`` (the worker's peak RSS), ``peak_delta_mb`` (above its RSS
    once the runtime was imported), ``labels_present`` (distinct labels in the output: VIM's cost
    grows with it), ``version``, ``vs_paddle`` (the paddle row's median / this row's, same
    threads and op) -- or ``error`` (the worker failed) / ``na`` (not applicable, with why).

    Raises:
        ConfigError: bad configuration (unknown model or backend, bad shape, paddle missing, ...).
    """
    import torch

    from . import __version__
    from .registry import create_model

    say = progress or (lambda s: log.info("%s", s))
    check_config(cfg)
    shape = tuple(int(s) for s in cfg.input_shape)
    backends, threads = parse_backends(cfg.backends), parse_threads(cfg.threads)
    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.model_kwargs).eval()
    if cfg.weights:
        from .engine.checkpoint import load_file, load_weights

        load_weights(model, load_file(cfg.weights), Path(cfg.weights), cfg.model)
    if cfg.output_op == "vim" and not callable(getattr(model, "forward_lowres", None)):
        raise ConfigError(f"--output-op vim needs a model with low-resolution logits (forward_lowres), e.g. "
                          f"pp_mobileseg_*; {cfg.model} has none: use --output-op argmax")
    num_classes = int(getattr(model, "num_classes", cfg.model_kwargs.get("num_classes", 0)))
    params, gflops = count_params_and_flops(model, (shape[2], shape[3]))
    base = {"model": cfg.model, "input_shape": list(shape), "output_op": cfg.output_op, "num_classes": num_classes,
            "params": params, "gflops": gflops, "runs": cfg.runs, "warmup": cfg.warmup,
            "ppseg_version": __version__}

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ppseg-bench-") as tmp:
        work = Path(tmp)
        state_path = work / "state.pt"
        torch.save(model.state_dict(), state_path)
        common = {"model": cfg.model, "model_kwargs": cfg.model_kwargs, "input_shape": list(shape),
                  "output_op": cfg.output_op, "num_classes": num_classes, "runs": cfg.runs, "warmup": cfg.warmup,
                  "mean": list(cfg.mean), "std": list(cfg.std), "images": list(cfg.images)}
        onnx_path = None
        if "onnxruntime" in backends:
            from .export import export_onnx

            names = cfg.class_names if cfg.class_names and len(cfg.class_names) == num_classes \
                else [f"class_{i}" for i in range(num_classes)]
            palette = cfg.palette if cfg.palette and len(cfg.palette) == num_classes \
                else [[(37 * i) % 256, (101 * i) % 256, (173 * i) % 256] for i in range(num_classes)]
            say(f"exporting {cfg.model} to ONNX ({cfg.output_op}{', uint8 input' if cfg.uint8_input else ''}"
                f"{', int8' if cfg.quantize else ''}, input {'x'.join(map(str, shape))}) ...")
            res = export_onnx(model, work / "onnx", model_name=cfg.model, model_kwargs=dict(cfg.model_kwargs),
                              class_names=names, palette=palette, mean=cfg.mean, std=cfg.std,
                              output_op=cfg.output_op, input_shape=shape, uint8_input=cfg.uint8_input,
                              source_checkpoint=cfg.weights, quantize=cfg.quantize,
                              calib_images=list(cfg.calib_images))
            onnx_path = str(res.onnx_path)
        ref_call, ref_why = paddle_reference(cfg)
        for backend in backends:
            for n_threads in threads:
                label = _ort_label(cfg) if backend == "onnxruntime" else backend
                row: dict[str, Any] = {"backend": label, "runtime": backend, **base, "threads": n_threads}
                if backend == "paddle" and ref_call is None:
                    row.update(na=ref_why, params=None, gflops=None)
                    rows.append(row)
                    continue
                job = {**common, "backend": backend, "threads": n_threads, "state": str(state_path),
                       "channels_last": cfg.channels_last, "onnx": onnx_path, "ort_opt": cfg.ort_opt,
                       "paddle_call": ref_call}
                say(f"timing {label} {cfg.model} {'x'.join(map(str, shape))} {cfg.output_op}, "
                    f"{n_threads} thread{'s' if n_threads > 1 else ''} ...")
                result = _run_worker(job, work, timeout)
                row.update(result)
                if backend == "paddle":
                    row["gflops"] = None  # counted on the torch model only
                rows.append(row)
    if "onnxruntime" in backends:
        for r in rows:
            if r["runtime"] == "onnxruntime":
                r.update(uint8_input=cfg.uint8_input, ort_opt=cfg.ort_opt, quantize=cfg.quantize)
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """``vs_paddle`` = paddle median / row median for rows with a paddle row of the same setting."""
    key = lambda r: (r["model"], tuple(r["input_shape"]), r["output_op"], r["threads"])  # noqa: E731
    ref = {key(r): r["median_ms"] for r in rows if r.get("runtime") == "paddle" and r.get("median_ms")}
    for r in rows:
        if r.get("median_ms") and key(r) in ref:
            r["vs_paddle"] = ref[key(r)] / r["median_ms"]


def _fmt_params(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width text table of :func:`run_benchmark` rows."""
    cols = [("backend", "<"), ("model", "<"), ("input", "<"), ("op", "<"), ("thr", ">"), ("median ms", ">"),
            ("p90 ms", ">"), ("cpu ms", ">"), ("img/s", ">"), ("classes out", ">"), ("params", ">"), ("GFLOPs", ">"),
            ("peak MB", ">"), ("+MB", ">"), ("vs paddle", ">")]
    with_ratio = any(r.get("runtime") == "paddle" for r in rows)
    lines = []
    for r in rows:
        cells = [r["backend"], r["model"], "x".join(map(str, r["input_shape"])), r["output_op"], str(r["threads"])]
        if r.get("median_ms") is not None:
            cpu = r.get("cpu_median_ms")
            cells += [f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}", f"{cpu:.1f}" if cpu is not None else "-",
                      f"{r['images_per_s']:.1f}", str(r.get("labels_present", "-")), _fmt_params(r.get("params")),
                      f"{r['gflops']:.2f}" if r.get("gflops") else "-",
                      f"{r['peak_rss_mb']:.0f}", f"{r['peak_delta_mb']:.0f}",
                      "ref" if r.get("runtime") == "paddle" else
                      (f"{r['vs_paddle']:.2f}x" if r.get("vs_paddle") else "")]
            lines.append(cells)
        else:
            why = f"n/a: {r['na']}" if r.get("na") else f"failed: {r.get('error')}"
            lines.append(cells + [why])
    if not with_ratio:
        cols = cols[:-1]
        lines = [ln[:-1] if len(ln) == len(cols) + 1 else ln for ln in lines]
    widths = [max([len(c[0])] + [len(ln[i]) for ln in lines if len(ln) == len(cols)]) for i, c in enumerate(cols)]
    fmt = lambda cells: " ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(cells, cols, widths))  # noqa: E731
    out = [fmt([c[0] for c in cols]), "-" * (sum(widths) + len(widths) - 1)]
    for ln in lines:
        out.append(fmt(ln) if len(ln) == len(cols) else fmt(ln[:5]) + " " + ln[5])
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- worker


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return _peak_mb()


def _peak_mb() -> float:
    """Peak RSS of this process.

    Linux: ``VmHWM``, the high-water mark of this program's memory map. ``getrusage``'s
    ``ru_maxrss`` is not used there: it survives ``exec``, so a worker started from a
    parent holding a torch model would report the parent's RSS at fork time.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _time(fn: Callable[[], Any], runs: int, warmup: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU milliseconds of each timed run."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    return wall, cpu


def _torch_case(job: dict[str, Any], images: np.ndarray) -> tuple[Callable[[], Any], dict[str, Any]]:
    import torch

    torch.set_num_threads(job["threads"])
    from .registry import create_model
    from .segmentor import Segmentor

    model = create_model(job["model"], **job["model_kwargs"])
    model.load_state_dict(torch.load(job["state"], weights_only=True))
    post = "vim" if job["output_op"] == "vim" else "argmax"
    seg = Segmentor(model, mean=job["mean"], std=job["std"], postprocess=post).eval()
    fmt = torch.channels_last if job.get("channels_last") else torch.contiguous_format
    seg = seg.to(memory_format=fmt)
    label_dtype = torch.uint8 if seg.num_classes <= 256 else torch.int32

    def run() -> np.ndarray:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        with torch.inference_mode():
            return seg.predict(x).to(label_dtype).numpy()

    return run, {"version": f"torch {torch.__version__}"}


def _ort_case(job: dict[str, Any], images: np.ndarray) -> tuple[Callable[[], Any], dict[str, Any]]:
    import onnxruntime as ort

    from .deploy.predictor import Predictor

    pred = Predictor(job["onnx"], threads=job["threads"], optimization=job["ort_opt"])
    batch = list(images)
    if len(batch) == 1:
        run = lambda: pred.predict(batch[0])  # noqa: E731
    else:
        run = lambda: pred.predict_batch(batch, batch_size=len(batch))  # noqa: E731
    return run, {"version": f"onnxruntime {ort.__version__}"}


def _paddle_case(job: dict[str, Any], images: np.ndarray) -> tuple[Callable[[], Any], dict[str, Any]]:
    import paddle

    paddle.set_device("cpu")
    for setter in ("set_num_threads",):  # paddle.base.core / paddle.fluid.core, depending on the version
        for mod in ("base", "fluid"):
            core = getattr(getattr(paddle, mod, None), "core", None)
            if core is not None and hasattr(core, setter):
                getattr(core, setter)(job["threads"])
                break
    if job.get("paddle_mkldnn"):  # off by default: measured no faster for these models in dygraph
        paddle.set_flags({"FLAGS_use_mkldnn": True})
    from paddleseg.models import MobileSeg, PPHumanSegLite, PPLiteSeg, PPMobileSeg  # noqa: F401
    from paddleseg.models.backbones import (MobileNetV3_large_x1_0, MobileSeg_Base, MobileSeg_Tiny,  # noqa: F401
                                            STDC1, STDC2)

    vim_op = job["output_op"] == "vim"
    env = {k: v for k, v in locals().items() if k[:1].isupper()}
    env.update(num_classes=int(job["num_classes"]), UPSAMPLE="vim" if vim_op else "intepolate")
    paddle.seed(0)
    model = eval(job["paddle_call"], {"__builtins__": {}}, env)  # noqa: S307 - our own constant table
    model.eval()
    params = sum(int(np.prod(p.shape)) for n, p in model.named_parameters()
                 if not n.endswith(("_mean", "_variance")))
    mean = paddle.to_tensor(np.asarray(job["mean"], np.float32).reshape(1, 3, 1, 1) * 255.0)
    std = paddle.to_tensor(np.asarray(job["std"], np.float32).reshape(1, 3, 1, 1) * 255.0)

    def run() -> np.ndarray:
        with paddle.no_grad():
            x = paddle.to_tensor(images).transpose([0, 3, 1, 2]).astype("float32")
            out = model((x - mean) / std)[0]
            if out.ndim == 4:  # logits (VIM only applies to >= 30 classes in the reference)
                out = paddle.argmax(out, axis=1)
            return out.astype("uint8" if int(env["num_classes"]) <= 256 else "int32").numpy()

    import paddleseg

    return run, {"version": f"paddle {paddle.__version__}, paddleseg {paddleseg.__version__}", "params": params}


_RUNTIME_MODULES = {"torch": ("torch", "ppseg.segmentor", "ppseg.registry"),
                    "onnxruntime": ("onnxruntime", "cv2", "ppseg.deploy.predictor"),
                    "paddle": ("paddle", "paddleseg.models")}


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Time one (backend, threads) case in this process; the result row fields."""
    images = _bench_images(tuple(job["input_shape"]), job.get("images", ()))
    import importlib

    for mod in _RUNTIME_MODULES[job["backend"]]:  # the runtime's own memory is not the model's
        importlib.import_module(mod)
    baseline = _rss_mb()
    make = {"torch": _torch_case, "onnxruntime": _ort_case, "paddle": _paddle_case}[job["backend"]]
    run, info = make(job, images)
    times, cpu = _time(run, int(job["runs"]), int(job["warmup"]))
    labels = run()
    labels = np.stack(labels) if isinstance(labels, list) else labels
    labels = labels[None] if labels.ndim == 2 else labels  # N H W for every backend
    times.sort()
    median = statistics.median(times)
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    peak = _peak_mb()
    return {"median_ms": median, "p90_ms": p90, "min_ms": times[0], "mean_ms": statistics.fmean(times),
            "cpu_median_ms": statistics.median(cpu), "images_per_s": job["input_shape"][0] * 1000.0 / median,
            "peak_rss_mb": peak, "peak_delta_mb": max(0.0, peak - baseline), "times_ms": times,
            # VIM's cost grows with the classes present (random weights: not a real image's count)
            "labels_present": int(len(np.unique(labels))), "output_shape": list(labels.shape), **info}


def _worker_main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ppseg.bench", description="internal: one ppseg bench measurement")
    p.add_argument("--worker", required=True, help="job JSON file")
    p.add_argument("--result", required=True, help="where to write the result JSON")
    args = p.parse_args(argv)
    job = json.loads(Path(args.worker).read_text(encoding="utf-8"))
    try:
        result = worker(job)
    except PPSegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")
    return 0


def rows_to_json(rows: Sequence[dict[str, Any]], cfg: BenchConfig) -> dict[str, Any]:
    """The JSON document ``ppseg bench --json`` writes."""
    c = asdict(cfg)
    c["calib_images"] = len(cfg.calib_images)
    c["images"] = list(cfg.images)
    c.pop("class_names", None)
    c.pop("palette", None)
    return {"config": c, "rows": [dict(r) for r in rows]}


if __name__ == "__main__":
    sys.exit(_worker_main())
