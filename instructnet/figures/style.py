"""What every figure shares: the seaborn style, one colour per model, saving a PNG with
a PDF beside it, and the panel that says what is missing instead of an empty plot."""

from __future__ import annotations

import colorsys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from ..analysis.stats import BASE_ORDER, display_name, split_variant  # noqa: E402

STYLE = "whitegrid"


BASE_COLORS = list(sns.color_palette("tab10", 10)) + [(0.15, 0.15, 0.15), (0.45, 0.45, 0.45)]


def model_color(model: str):
    """One colour per base model (stable across figures, by BASE_ORDER); variants get a
    lighter shade of their base's colour; unknown models a grey-green."""
    base, suffixes = split_variant(model)
    color = BASE_COLORS[BASE_ORDER.index(base)] if base in BASE_ORDER else (0.4, 0.55, 0.45)
    if suffixes:
        h, lum, sat = colorsys.rgb_to_hls(*color)
        color = colorsys.hls_to_rgb(h, min(0.85, lum + 0.2 * len(suffixes)), sat)
    return tuple(color)


def model_palette(models) -> dict[str, tuple]:
    return {display_name(m): model_color(m) for m in models}


def save_figure(fig, out: str | Path) -> Path:
    out = Path(out)
    png = out if out.suffix.lower() == ".png" else out.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=130)
    fig.savefig(png.with_suffix(".pdf"))
    plt.close(fig)
    return png


def message_panel(ax, text: str, title: str | None = None):
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True,
            transform=ax.transAxes)
    if title:
        ax.set_title(title)


def empty_figure(out, text: str, title: str) -> Path:
    with sns.axes_style(STYLE):
        fig, ax = plt.subplots(figsize=(6, 3))
        message_panel(ax, text, title)
        return save_figure(fig, out)


def percent_axis(ax, axis: str = "y"):
    fmt = matplotlib.ticker.PercentFormatter(1.0, decimals=0)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)
