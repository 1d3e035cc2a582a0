"""Colours every figure and page shares, in a module without imports: the UI's pages take them at the plugin's
import (from ``objects.report`` they imported the objects package, +60 ms at the api-server's start)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: One colour per task (the n-th of the sorted task names; a 7th task repeats the first), here and on the UI's
#: sample pages (``plugins.pages``). Each is at least 4.5:1 on white (WCAG 1.4.3: the UI writes its labels in them,
#: on a white halo) and the six stay at least 21.7 apart (CIE76) in normal vision and in Machado et al.'s
#: deuteranopia and protanopia simulations (chosen greedily for that smallest distance among the sRGB colours of
#: chroma >= 45 and 4.5:1 to 8:1 on white). Before: the figure's yellow #f1c40f was 1.66:1 on the white strip,
#: green #2ecc71 2.10:1, teal #1abc9c 2.41:1, and its blue and purple 12.3 apart for deuteranopia; the UI's
#: orange labels #f97316 2.8:1 and its blue and purple 5.3 apart.
TASK_COLOURS = ("#0069b4", "#3c8700", "#3c00ff", "#b44b69", "#3c69ff", "#962d2d")


def task_colours(tasks: Iterable[Any]) -> dict[str, str]:
    """``{task: colour}``: the n-th of the sorted task names gets :data:`TASK_COLOURS`' n-th colour."""
    names = sorted({str(t) for t in tasks})
    return {t: TASK_COLOURS[i % len(TASK_COLOURS)] for i, t in enumerate(names)}


__all__ = ["TASK_COLOURS", "task_colours"]
