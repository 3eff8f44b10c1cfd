"""Training curves as a PNG (people would rather look than read)."""

from __future__ import annotations

from pathlib import Path


_TITLES = {"miou": "mIoU"}


def plot_curves(history: dict[str, list], path: str | Path, score_keys: tuple[str, ...] = ("miou",)) -> None:
    """Draw loss, learning rate and the val scores (``score_keys``, model and EMA) against the
    iteration into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    it = history.get("iter", [])
    axes[0].plot(it, history.get("loss", []), color="tab:blue")
    axes[0].set_title("training loss")
    axes[1].plot(it, history.get("lr", []), color="tab:orange")
    axes[1].set_title("learning rate")
    ev = history.get("eval_iter", [])
    drawn = False
    for key in score_keys:
        for prefix, marker, label in (("", "o", "model"), ("ema_", "s", "EMA")):
            values = history.get(f"{prefix}{key}")
            if values:
                axes[2].plot(ev[: len(values)], values, marker=marker,
                             label=f"{label} {key}" if len(score_keys) > 1 else label)
                drawn = True
    if drawn:
        axes[2].legend()
    axes[2].set_title("val " + ", ".join(_TITLES.get(k, k) for k in score_keys))
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
