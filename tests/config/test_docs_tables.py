"""docs/lightly-compat.md lists every config key with the effect the code gives it."""

from __future__ import annotations

from pathlib import Path

from lightly_airflow.config import key_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "lightly-compat.md"
EFFECT_TEXT = {"honoured": "honoured", "no_effect": "accepted, no effect (noted)", "refused": "refused"}


def test_every_key_is_in_the_docs_with_its_effect() -> None:
    text = DOC.read_text()
    for config, path, effect, _why in key_table():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{path}` |")]
        assert rows, f"{config}.{path} is missing from {DOC.name}"
        assert any(f"| {EFFECT_TEXT[effect]}" in row for row in rows), (path, effect, rows)
