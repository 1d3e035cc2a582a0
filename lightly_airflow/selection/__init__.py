"""The selection engine: Lightly selection configs over a samples table, exact and fast.

``select``, ``SelectionResult`` and ``embedding_matrix`` load the engine on first use (PEP 562): importing a
submodule (``selection.arrays``, ``selection.kernels``) does not import the engine and the config models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightly_airflow.selection.engine import SelectionResult, embedding_matrix, select

__all__ = ["SelectionResult", "embedding_matrix", "select"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from lightly_airflow.selection import engine

    value = getattr(engine, name)
    globals()[name] = value
    return value
