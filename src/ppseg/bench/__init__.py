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

This module is the orchestrator (:func:`run_benchmark`); :mod:`.config` holds what to measure and
its checks, :mod:`.reference` the PaddleSeg reference, :mod:`.worker` what runs in the subprocess
(entry point: ``__main__``) and :mod:`.report` the table and JSON. Importing it imports neither
torch nor onnxruntime nor paddle.

Example:
    >>> from ppseg.bench import BenchConfig, run_benchmark, format_table
    >>> rows = run_benchmark(BenchConfig("pp_mobileseg_tiny", {"num_classes": 150}, (1, 3, 512, 512),
    ...                                  threads=(1, 2), backends=("torch", "onnxruntime")))
    >>> print(format_table(rows))
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import (BACKENDS, ORT_OPT_LEVELS, OUTPUT_OPS, BenchConfig, check_config, parse_backends,
                     parse_threads)
from .reference import PADDLE_REFERENCE, paddle_available, paddle_reference
from .report import add_ratios, format_table, rows_to_json
from .worker import count_params_and_flops

__all__ = ["BACKENDS", "OUTPUT_OPS", "ORT_OPT_LEVELS", "PADDLE_REFERENCE", "BenchConfig", "run_benchmark",
           "format_table", "paddle_available", "count_params_and_flops", "parse_threads", "parse_backends",
           "check_config", "paddle_reference", "add_ratios", "rows_to_json"]

log = logging.getLogger("ppseg")


def _ort_label(cfg: BenchConfig) -> str:
    extra = [x for x, on in (("int8", cfg.quantize == "int8"), ("u8in", cfg.uint8_input),
                             (f"opt={cfg.ort_opt}", cfg.ort_opt != "all")) if on]
    return "onnxruntime" + (f"[{','.join(extra)}]" if extra else "")


def _worker_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "CPU_NUM"):
        env[var] = str(threads)
    src = str(Path(__file__).resolve().parents[2])  # ppseg/bench/__init__.py -> ppseg's parent, for -m ppseg.bench
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

    from .. import __version__
    from ..registry import create_model

    say = progress or (lambda s: log.info("%s", s))
    check_config(cfg)
    shape = tuple(int(s) for s in cfg.input_shape)
    backends, threads = parse_backends(cfg.backends), parse_threads(cfg.threads)
    torch.manual_seed(0)
    model = create_model(cfg.model, **cfg.model_kwargs).eval()
    if cfg.weights:
        from ..weights import load_file, load_weights

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
            from ..export import export_onnx

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
