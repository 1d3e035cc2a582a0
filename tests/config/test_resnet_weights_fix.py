"""``lightly_config.model.name: resnet-18`` is refused (no ResNet weights ship, and a run cannot switch its
datapool's model); the fix names every way this product embeds with a ResNet: the example DAG's
``LIGHTLY_EMBEDDING_MODEL`` with ``LIGHTLY_EMBEDDING_WEIGHTS``, the embed tasks' ``model``/``weights_uri``, the
CLI's ``--model``/``--weights``, for the model asked (before: only the CLI, for resnet-50 whatever was asked, and
not the DAG's weights variable)."""

from __future__ import annotations

from pathlib import Path

from lightly_airflow.config import key_table
from lightly_airflow.config.worker import resnet_weights_refusal

DAG = Path(__file__).resolve().parents[2] / "dags" / "lightly_datapool.py"


def test_the_fix_names_the_real_ways_to_give_resnet_weights() -> None:
    problem, fix = resnet_weights_refusal("resnet-18")
    assert "'resnet-18' needs ResNet weights, and none ship" in problem
    assert "LIGHTLY_EMBEDDING_MODEL=resnet-18 and LIGHTLY_EMBEDDING_WEIGHTS=<" in fix
    assert "weights_uri (EmbedShardOperator / EmbedPodOperator)" in fix
    assert "`lightly-airflow embed --model resnet-18 --weights <state dict URI>`" in fix
    assert "resnet-50" not in fix
    # the ways it names are the real ones: the example DAG reads both variables and passes the weights on
    dag = DAG.read_text()
    assert 'os.environ.get("LIGHTLY_EMBEDDING_WEIGHTS"' in dag and "weights_uri=EMBEDDING_WEIGHTS" in dag


def test_the_key_table_says_where_the_weights_go() -> None:
    why = next(w for config, path, _e, w in key_table() if config == "lightly_config" and path == "model.name")
    assert "LIGHTLY_EMBEDDING_WEIGHTS" in why and "weights_uri" in why
