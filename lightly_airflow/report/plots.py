"""The report's PNG plots, drawn with matplotlib's Agg canvas (no pyplot, no global backend, no display).

Each function returns PNG bytes; the caller decides where they go and survives any exception they raise.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable
from typing import ParamSpec

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lightly_airflow.report.data import GROUPS, Balance, EmbeddingMap

DPI = 90
#: Colours of the map groups: not selected, earlier selected, newly selected. Okabe-Ito blue and vermillion and a
#: mid grey: every mark is at least 3:1 against the white figure (WCAG 1.4.11), 3.3:1 still under the report's
#: dark-mode dimming, and the three stay apart for deuteranopia and protanopia (CIE76 distance >= 38 after
#: Machado et al.'s simulation). Before: the grey #b8b8b8 was 2.0:1 (1.5:1 at its alpha 0.6) and the orange
#: #e69f00 2.2:1. The video timeline draws with the same colours.
GROUP_COLOURS = ("#858585", "#0072b2", "#d55e00")
#: Histograms and bars: "all rows"/"available" grey (4.5:1), selected vermillion (3.9:1), target blue (5.2:1).
ALL_COLOUR, SELECTED_COLOUR, TARGET_COLOUR = "#767676", "#d55e00", "#0072b2"
#: The light fill of the "all rows" and "available" areas: a context, outlined in ALL_COLOUR (the outline carries
#: the 3:1; the fill alone was 1.7:1 for the histograms and 2.1:1 for the bars).
CONTEXT_FILL = "#d9d9d9"
P = ParamSpec("P")


#: Keys and class names are data, not TeX: ``$`` must print as ``$`` (mathtext would fail on ``a$b``).
_RC = {"text.parse_math": False, "text.usetex": False}


def _literal_text(draw: Callable[P, bytes]) -> Callable[P, bytes]:
    """Build and save the figure with the rc settings above (texts read them when they are created)."""

    @functools.wraps(draw)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with rc_context(_RC):  # type: ignore[arg-type]  # matplotlib's stubs type rc keys as Literal names
            return draw(*args, **kwargs)

    return wrapper


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


@_literal_text
def embedding_map_png(m: EmbeddingMap) -> bytes:
    """Scatter of the 2-D PCA map; newly selected samples drawn last and largest."""
    fig = Figure(figsize=(7.5, 6.0), layout="constrained")
    ax = fig.add_subplot()
    sizes = (3, 9, 14)
    for i, name in enumerate(GROUPS):
        pts = m.xy[m.group == i]
        if not len(pts):
            continue
        total, shown = m.total[name], m.shown[name]
        label = f"{name} ({total:,})" if total == shown else f"{name} ({shown:,} of {total:,} shown)"
        # Opaque marks (an alpha lightened each point: the grey's 0.6 made it 1.5:1); the selected ones get a
        # thin white ring, so they stand apart from the grey points they cover.
        ax.scatter(pts[:, 0], pts[:, 1], s=sizes[i], c=GROUP_COLOURS[i], label=label, rasterized=True,
                   linewidths=0 if i == 0 else 0.4, edgecolors="none" if i == 0 else "white")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title("Embeddings (PCA)")
    ax.legend(loc="best", fontsize=8, markerscale=2, framealpha=0.85)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    return _png(fig)


def robust_range(values: np.ndarray) -> tuple[float, float, int]:
    """``(low, high, n outside)``: the 1st-99th percentile range when values lie outside it, else min-max."""
    lo, hi = float(values.min()), float(values.max())
    if len(values) < 20:
        return lo, hi, 0
    p1, p99 = (float(v) for v in np.percentile(values, [1, 99]))
    if p99 <= p1:
        return lo, hi, 0
    outside = int(((values < p1) | (values > p99)).sum())
    # Clip only when the extremes stretch the axis: otherwise the plain range loses nothing.
    if (hi - lo) <= 1.5 * (p99 - p1):
        return lo, hi, 0
    return p1, p99, outside


@_literal_text
def histograms_png(metrics: list[tuple[str, np.ndarray, np.ndarray]], *, bins: int = 30) -> bytes:
    """A grid of histograms, one per metric: all rows vs selected rows, each normalised to its own area.

    :param metrics: ``(title, all values, selected values)`` per panel (finite values only).
    """
    n = len(metrics)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    width, height = 3.2 * ncols, 2.3 * nrows + 0.75
    fig = Figure(figsize=(width, height))
    # Fixed margins instead of a layout engine: a 12-panel constrained layout costs more than the drawing. The
    # bottom margin and the rows' spacing hold the tick labels and the two lines of "clipped to …" (0.3 in cut
    # that line in half; on one line two neighbouring panels' notes ran into each other).
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.6 / height, top=1 - 0.65 / height, wspace=0.08,
                        hspace=0.6)
    n_all = max((len(a) for _, a, _ in metrics), default=0)
    n_sel = max((len(s) for _, _, s in metrics), default=0)
    for i, (title, all_v, sel_v) in enumerate(metrics):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if len(all_v) and float(np.min(all_v)) == float(np.max(all_v)):  # (a histogram would draw a fake axis)
            ax.text(0.5, 0.5, f"every value {float(all_v[0]):g}", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
        elif len(all_v):
            lo, hi, outside = robust_range(all_v)
            edges = np.linspace(lo, hi, bins + 1) if hi > lo else np.array([lo - 0.5, lo + 0.5])
            # Outliers are clipped into the end bins (said on the axis), so one extreme value cannot squeeze
            # every other sample into a single bin.
            # np.histogram + one stairs artist per series: far fewer artists than ax.hist's bar patches.
            h_all, _ = np.histogram(np.clip(all_v, edges[0], edges[-1]), bins=edges, density=True)
            ax.stairs(h_all, edges, fill=True, color=CONTEXT_FILL)
            ax.stairs(h_all, edges, linewidth=0.8, color=ALL_COLOUR)
            if len(sel_v):
                h_sel, _ = np.histogram(np.clip(sel_v, edges[0], edges[-1]), bins=edges, density=True)
                ax.stairs(h_sel, edges, linewidth=1.6, color=SELECTED_COLOUR)
            if outside:
                ax.set_xlabel(f"clipped to 1st–99th percentile\n({outside:,} outside, in the end bins)", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
        ax.set_title(title if len(title) <= 40 else title[:39] + "…", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    fig.legend(handles=[Patch(facecolor=CONTEXT_FILL, edgecolor=ALL_COLOUR, label=f"all rows ({n_all:,})"),
                        Line2D([], [], color=SELECTED_COLOUR, linewidth=1.6, label=f"selected ({n_sel:,})")],
               loc="upper center", ncols=2, fontsize=8, frameon=False)
    return _png(fig)


@_literal_text
def balance_png(b: Balance) -> bytes:
    """Grouped bars per class: target, achieved (selected incl. earlier runs), available in this run."""
    k = len(b.classes)
    fig = Figure(figsize=(max(5.0, min(14.0, 1.0 + 0.55 * k)), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(k)
    w = 0.27
    ax.bar(x - w, b.target, w, color=TARGET_COLOUR, label="target")
    ax.bar(x, b.achieved, w, color=SELECTED_COLOUR, label="achieved (selected)")
    ax.bar(x + w, b.available, w, color=CONTEXT_FILL, edgecolor=ALL_COLOUR, linewidth=0.8,
           label="available (ok rows)")
    ax.set_xticks(x)
    ax.set_xticklabels([c if len(c) <= 18 else c[:17] + "…" for c in b.classes], rotation=30 if k > 6 else 0,
                       ha="right" if k > 6 else "center", fontsize=8)
    ax.set_ylabel("fraction")
    ax.set_ylim(0, max(1e-9, float(np.max([b.target.max(initial=0), b.achieved.max(initial=0),
                                            b.available.max(initial=0)]))) * 1.15)
    ax.set_title(b.title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
    return _png(fig)
