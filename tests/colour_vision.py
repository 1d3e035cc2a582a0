"""Contrast and colour-vision helpers for the figure and chart tests (tests/report, tests/browser).

WCAG 2's contrast ratio of two sRGB colours, the CIE76 distance of two colours as a reader with deuteranopia or
protanopia sees them (Machado, Oliveira & Fernandes 2009, severity 1.0, applied on linear RGB), and Debian's
Chromium to measure pages in."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]

WHITE = (255, 255, 255)
NORMAL = np.eye(3)
DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]])
PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                       [-0.003882, -0.048116, 1.051998]])
VISIONS = {"normal": NORMAL, "deuteranopia": DEUTERANOPIA, "protanopia": PROTANOPIA}


def rgb(css: str) -> tuple[float, ...]:
    """``(r, g, b)`` of a CSS ``rgb(…)``/``rgba(…)`` or ``#rrggbb`` colour."""
    if css.startswith("#"):
        return tuple(float(int(css[i : i + 2], 16)) for i in (1, 3, 5))
    return tuple(float(v) for v in re.findall(r"[\d.]+", css)[:3])


def linear(colour: tuple[float, ...]) -> np.ndarray:
    s = np.asarray(colour, float) / 255
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)


def contrast(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    la, lb = (float(linear(c) @ [0.2126, 0.7152, 0.0722]) for c in (a, b))
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def blend(colour: tuple[float, ...], ground: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    return tuple(alpha * c + (1 - alpha) * g for c, g in zip(colour, ground, strict=True))


def _lab(lin: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    t = xyz / [0.95047, 1.0, 1.08883]
    f = np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def distance(a: tuple[float, ...], b: tuple[float, ...], vision: np.ndarray) -> float:
    """CIE76 distance of two colours as a reader with that ``vision`` (a simulation matrix) sees them."""
    return float(np.linalg.norm(_lab(np.clip(vision @ linear(a), 0, 1)) - _lab(np.clip(vision @ linear(b), 0, 1))))


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright browser on Debian's Chromium; the test is skipped where it is not installed."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed (scripts/test.sh installs Debian's chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
