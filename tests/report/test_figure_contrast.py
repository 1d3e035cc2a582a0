"""The report's figures are legible for every reader: each mark at least 3:1 against the white figure (WCAG 1.4.11,
also after the dark page's 80 % dimming), the map's groups apart for deuteranopia and protanopia, no text cut or run
together. Measured on the rendered PNGs' pixels, not on the colour constants."""

from __future__ import annotations

import io
import itertools
from collections import Counter

import numpy as np
import pyarrow as pa
from colour_vision import VISIONS, WHITE, contrast, distance
from PIL import Image

from lightly_airflow import columns as C
from lightly_airflow.report.data import GROUPS, Balance, EmbeddingMap
from lightly_airflow.report.plots import balance_png, embedding_map_png, histograms_png
from lightly_airflow.video.report import video_timeline_png


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _interior(px: np.ndarray) -> np.ndarray:
    """The inside of a one-axes figure's frame (the black spines: the rows and columns mostly black)."""
    black = (px == 0).all(axis=2)
    rows = np.flatnonzero(black.sum(axis=1) > 0.4 * px.shape[1])
    cols = np.flatnonzero(black.sum(axis=0) > 0.4 * px.shape[0])
    return px[rows.min() + 2 : rows.max() - 1, cols.min() + 2 : cols.max() - 1]


def _mark_colour(px: np.ndarray) -> tuple[int, ...]:
    """The most frequent colour of the marks: not white, not black (text), not a faint grid line (< 1.3:1)."""
    counts = Counter(map(tuple, px.reshape(-1, 3).tolist()))
    return next(c for c, _ in counts.most_common() if c != (0, 0, 0) and contrast(c, WHITE) >= 1.3)


def _outlined_contrast(px: np.ndarray) -> tuple[float, tuple[int, ...], tuple[int, ...]]:
    """``(contrast, fill, edge)`` of the marks of the most frequent non-white colour (the fill) against the white
    ground: the fill's own, or that of the colour just around it (an outline) where that is higher."""
    counts = Counter(map(tuple, px.reshape(-1, 3).tolist()))
    fill = next(c for c, _ in counts.most_common() if c != (0, 0, 0) and contrast(c, WHITE) >= 1.1)
    mask = (px == fill).all(axis=2)
    grown = mask.copy()
    for axis in (0, 1):
        for step in (1, -1):
            grown |= np.roll(mask, step, axis=axis)
    ring = Counter(map(tuple, px[grown & ~mask].tolist()))
    edge = next((c for c, _ in ring.most_common() if contrast(c, WHITE) > contrast(fill, WHITE)), fill)
    return max(contrast(fill, WHITE), contrast(edge, WHITE)), fill, edge


def _assert_outlined(px: np.ndarray, what: str) -> None:
    ratio, fill, edge = _outlined_contrast(px)
    dimmed = max(contrast(_dimmed(fill), _dimmed(WHITE)), contrast(_dimmed(edge), _dimmed(WHITE)))
    assert ratio >= 3 and dimmed >= 3, f"{what}: fill {fill}, edge {edge}: {ratio:.2f}:1, {dimmed:.2f}:1 dimmed"


def _chromatic_colour(px: np.ndarray) -> tuple[int, ...]:
    """The most frequent clearly coloured (not grey) colour."""
    flat = px.reshape(-1, 3)
    counts = Counter(map(tuple, flat[np.ptp(flat, axis=1) > 60].tolist()))
    return counts.most_common(1)[0][0]


def _dimmed(c: tuple[int, ...]) -> tuple[float, ...]:
    return tuple(0.8 * v for v in c)  # the dark page's brightness(.8) on the figure


def _assert_3_to_1(colour: tuple[int, ...], what: str) -> None:
    light, dark = contrast(colour, WHITE), contrast(_dimmed(colour), _dimmed(WHITE))
    assert light >= 3 and dark >= 3, f"{what}: {colour} is {light:.2f}:1 on white, {dark:.2f}:1 dimmed"


def test_each_map_group_keeps_3_to_1_and_the_groups_stay_apart_for_colour_blind_readers() -> None:
    """Before: "not selected" was #b8b8b8 at alpha 0.6 (drawn #d4d4d4, 1.5:1) and "selected in this run" #e69f00
    at 0.9 (drawn #e8a819, 2.0:1). Now #858585 (3.7:1) and #d55e00 (3.9:1), 3.3:1 and 3.5:1 dimmed."""
    rng = np.random.default_rng(0)
    colours = []
    for i, name in enumerate(GROUPS):  # one map per group: its marks alone in the frame
        xy = rng.normal(size=(1500, 2))
        counts = {g: (1500 if g == name else 0) for g in GROUPS}
        png = embedding_map_png(EmbeddingMap(xy=xy, group=np.full(1500, i), total=counts, shown=counts))
        colour = _mark_colour(_interior(_pixels(png)))
        _assert_3_to_1(colour, name)
        colours.append(colour)
    for label, vision in VISIONS.items():
        for a, b in itertools.combinations(colours, 2):
            assert distance(a, b, vision) >= 20, (label, a, b)


def test_the_histogram_s_all_rows_and_the_bars_available_are_outlined_at_3_to_1() -> None:
    """Before: the "all rows" area was #7f7f7f at alpha 0.45 (1.7:1), the "available" bars at 0.6 (2.1:1) and the
    selected line and bars #e69f00 (2.2:1); now a light fill inside a #767676 outline (4.5:1), selected #d55e00."""
    values = np.random.default_rng(1).normal(size=400)
    hist = _interior(_pixels(histograms_png([("sharpness", values, np.array([]))])))
    _assert_outlined(hist, "all rows")
    sel = _interior(_pixels(histograms_png([("sharpness", values, values[:40])])))
    _assert_3_to_1(_chromatic_colour(sel), "selected")
    zero, some = np.zeros(4), np.array([0.1, 0.2, 0.3, 0.4])
    for target, achieved, available, what in ((zero, zero, some, "available"), (zero, some, zero, "achieved"),
                                               (some, zero, zero, "target")):
        b = Balance("strategies[0]: BALANCE", "metadata.c", ["a", "b", "c", "d"], target, achieved, available, 4)
        _assert_outlined(_interior(_pixels(balance_png(b))), what)


def test_the_histogram_notes_are_neither_cut_nor_run_into_each_other() -> None:
    """The "clipped to 1st–99th percentile (N outside, in the end bins)" line under a panel was cut in half by the
    figure's bottom edge, and in a row of panels each note ran into the next one's."""
    values = np.concatenate([np.random.default_rng(2).normal(size=500), [60.0, -50.0]])  # outliers: every panel notes
    px = _pixels(histograms_png([(f"metric {i}", values, values[:30]) for i in range(4)]))
    ink = (px < 200).any(axis=2)
    assert not ink[-3:].any(), "text reaches the figure's bottom edge"
    below = ink[np.flatnonzero((px == 0).all(axis=2).sum(axis=1) > 0.4 * px.shape[1]).max() + 20 :]
    width = px.shape[1]
    for k in range(1, 4):  # between neighbouring panels, a blank gap in every row of the notes
        gap = below[:, int(width * (0.02 + 0.96 * k / 4)) - 3 : int(width * (0.02 + 0.96 * k / 4)) + 3]
        assert not gap.any(), f"the notes of panels {k} and {k + 1} touch"


def test_the_video_timeline_draws_every_mark_at_3_to_1() -> None:
    """The timeline takes the map's colours: its frame ticks were #b8b8b8 (2.0:1) and its "selected now" dots
    #e69f00 (2.2:1)."""
    n = 40
    rows = pa.table({C.KEY: [f"v-{i:02d}-mp4.png" for i in range(n)], C.VIDEO: ["v.mp4"] * n,
                     C.FRAME_INDEX: list(range(n)), C.FRAME_SECONDS: [i / 10 for i in range(n)],
                     C.SELECTED: [i % 4 == 0 for i in range(n)]})
    png = video_timeline_png(rows)
    assert png is not None
    px = _pixels(png)
    counts = Counter(map(tuple, px.reshape(-1, 3).tolist()))
    greys = [c for c, k in counts.most_common() if k >= 20 and max(c) - min(c) <= 4 and contrast(c, WHITE) >= 1.3
             and c != (0, 0, 0)]
    _assert_3_to_1(_chromatic_colour(px), "selected now")
    _assert_3_to_1(greys[0], "frame of this run")
