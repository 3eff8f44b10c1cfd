"""Training curves as a PNG (people would rather look than read)."""

from __future__ import annotations

from pathlib import Path


def plot_curves(history: dict[str, list], path: str | Path) -> None:
    """Draw loss, learning rate and val mIoU against the iteration into ``path``."""
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
    if history.get("miou"):
        axes[2].plot(ev[: len(history["miou"])], history["miou"], marker="o", label="model")
    if history.get("ema_miou"):
        axes[2].plot(ev[: len(history["ema_miou"])], history["ema_miou"], marker="s", label="EMA")
    if history.get("miou") or history.get("ema_miou"):
        axes[2].legend()
    axes[2].set_title("val mIoU")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    tmp.replace(path)
