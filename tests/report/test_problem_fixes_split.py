"""The problems table's fix column takes a reason's own fix, also where the reason says it after ';' or ':' in
lower case (the listing's skipped keys, a file whose format its extension may not hold): it showed "—" there."""

from __future__ import annotations

from lightly_airflow.datasource.listing import odd_key_reason
from lightly_airflow.pixels import wrong_extension
from lightly_airflow.report.problems import split_fix


def test_lower_case_rename_fixes_fill_the_fix_column() -> None:
    problem, fix = split_fix("listing", odd_key_reason("b/tab\tname.png"))
    assert problem.startswith("its name has a control character") and fix == "rename it to 'b/tab name.png'"
    problem, fix = split_fix("listing", odd_key_reason("b/tab\tname.png", taken=True))
    assert fix.startswith("do not rename it to 'b/tab name.png', which would overwrite another file")
    problem, fix = split_fix("metadata", str(wrong_extension("PNG", "photo.jpg")))
    assert problem == "wrong type for its extension: the file is PNG but its extension is .jpg"
    assert fix == "rename it to .png"
    assert split_fix("embeddings", "cannot decode image: broken data stream. Fix: upload it again") == (
        "cannot decode image: broken data stream", "upload it again")
