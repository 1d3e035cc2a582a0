"""A problem's fix, split from its reason: what the report's fix column shows (:mod:`lightly_airflow.report.problems`)
and what the shard tasks end a file's problem with (``… . Fix: …``).

It imports nothing but the standard library: a metadata or predictions shard with one bad file calls
:func:`split_fix`, and importing it from the report package loaded the report writer (matplotlib's plots, the HTML
page: 0.09-0.13 s of CPU a shard process).
"""

from __future__ import annotations

#: The fix for reasons that do not say one themselves: (stage, reason prefix) -> fix.
FIXES: tuple[tuple[str, str, str], ...] = (
    ("predictions", "no prediction file for task",
     "add the file at the path shown (Lightly's name: the sample's key with .json for its extension, under "
     ".lightly/predictions/<task>/), or leave the sample without predictions (its scores stay empty and it is not "
     "a candidate of the strategies that need them)"),
    ("metadata", "no metadata file", "rename the file as the reason says; it is not read under its other name"),
)

#: Markers after which a reason's own fix begins (the project's messages say "Fix: …" or name the action).
_FIX_MARKERS = ("Fix: ", "Fix:", " Rename it to ", " Rename ", " rename every file ", " rename each file ",
                "; rename ", ": rename ", ": do not rename ")


def split_fix(stage: str, reason: str) -> tuple[str, str]:
    """``(problem, fix)`` of a reason: the reason's own fix where it says one ("Fix: …", "Rename it to …"),
    else the fix known for that kind (:data:`FIXES`), else ``""``."""
    for marker in _FIX_MARKERS:
        at = reason.find(marker)
        if at > 0:
            fix = reason[at:].lstrip(";: ").strip()  # ("…; rename it to .png": the fix column showed "—")
            return reason[:at].rstrip(" .;,"), (fix[4:].strip() if fix.startswith("Fix:") else fix)
    for fix_stage, prefix, fix in FIXES:
        if stage == fix_stage and reason.startswith(prefix):
            return reason, fix
    return reason, ""
