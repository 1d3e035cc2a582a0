"""The selection engine: Lightly selection configs over a samples table, exact and fast."""

from lightly_airflow.selection.engine import SelectionResult, embedding_matrix, select

__all__ = ["SelectionResult", "embedding_matrix", "select"]
