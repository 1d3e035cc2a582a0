"""Colours every figure and page shares, in a module without imports: the UI's pages take them at the plugin's
import (from ``objects.report`` they imported the objects package, +60 ms at the api-server's start)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

#: One colour per task (:func:`task_colour`: chosen by the task's name alone), here and on the UI's pages
#: (``plugins.pages``). Each is at least 4.5:1 on white (WCAG 1.4.3: the UI writes its labels in them,
#: on a white halo) and the six stay at least 21.7 apart (CIE76) in normal vision and in Machado et al.'s
#: deuteranopia and protanopia simulations (chosen greedily for that smallest distance among the sRGB colours of
#: chroma >= 45 and 4.5:1 to 8:1 on white). Before: the figure's yellow #f1c40f was 1.66:1 on the white strip,
#: green #2ecc71 2.10:1, teal #1abc9c 2.41:1, and its blue and purple 12.3 apart for deuteranopia; the UI's
#: orange labels #f97316 2.8:1 and its blue and purple 5.3 apart.
TASK_COLOURS = ("#0069b4", "#3c8700", "#3c00ff", "#b44b69", "#3c69ff", "#962d2d")


def task_colour(task: Any) -> str:
    """A task's own colour: :data:`TASK_COLOURS` by the CRC-32 of its name, the same in every process, page,
    image, version and report. Before, the n-th of the sorted tasks *on hand* got the n-th colour: an image with
    tasks ``boxes`` and ``faces`` drew ``faces`` green, one with ``faces`` alone blue, and an object's page (one task)
    always the first colour."""
    return TASK_COLOURS[zlib.crc32(str(task).encode()) % len(TASK_COLOURS)]


def task_colours(tasks: Iterable[Any], among: Iterable[Any] = ()) -> dict[str, str]:
    """``{task: colour}`` for ``tasks``: each its :func:`task_colour`, unless two of the tasks of ``among`` (a
    pool's whole task list) and ``tasks`` share one: then the later takes the next colour none of them has (while
    there is one; 7 tasks must share), ``among``'s first, each by name, so a task of ``tasks`` alone never moves
    one of ``among``. Passing the same ``among`` everywhere (the UI: its version's tasks) keeps each of its tasks
    one colour on every page; a task's colour changes only when a task of the same colour joins the list."""
    names = {str(t) for t in tasks}
    known = {str(t) for t in among}
    taken: dict[str, str] = {}
    for name in sorted(known) + sorted(names - known):
        colour = task_colour(name)
        if colour in taken.values() and len(set(taken.values())) < len(TASK_COLOURS):
            start = TASK_COLOURS.index(colour)
            colour = next(c for i in range(len(TASK_COLOURS)) if (c := TASK_COLOURS[(start + i) % len(TASK_COLOURS)])
                          not in taken.values())
        taken[name] = colour
    return {t: taken[t] for t in sorted(names)}


__all__ = ["TASK_COLOURS", "task_colour", "task_colours"]
