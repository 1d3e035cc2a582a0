"""Lightly's embedding settings (lightly_config, worker_config threads) reach the embed step's options."""

from __future__ import annotations

import pytest

from lightly_airflow.config import parse_worker_config
from lightly_airflow.pipeline import ParamError, embed_option_overrides


def test_overrides_from_both_configs() -> None:
    worker = parse_worker_config({"num_threads": 3, "enable_training": False})
    lightly = {"model": {"num_ftrs": 32}, "loader": {"batch_size": 16, "num_workers": 8, "shuffle": True},
               "collate": {"input_size": 96, "cj_prob": 0.5}, "trainer": {"max_epochs": 5}}
    assert embed_option_overrides(worker, lightly) == {
        "dim": 32, "batch_size": 16, "num_workers": 3, "input_size": 96, "loader": "threads"}


def test_resnet_without_weights_and_bad_keys_are_refused() -> None:
    worker = parse_worker_config({})
    with pytest.raises(ParamError, match=r"(?s)lightly_config.model.name.*weights.*Fix"):
        embed_option_overrides(worker, {"model": {"name": "resnet-18"}})
    with pytest.raises(ParamError, match=r"(?s)Parameter .lightly_config..*loader.batchsize.*Did you mean 'batch_size'"):
        embed_option_overrides(worker, {"loader": {"batchsize": 16}})


def test_embed_operators_apply_the_overrides() -> None:
    from lightly_airflow.operators.embed import EmbedPodOperator, EmbedShardOperator

    local = EmbedShardOperator(task_id="e", manifest_uri="file:///m.parquet", datapool_uri="file:///p",
                               option_overrides={"batch_size": 7, "num_workers": 1, "loader": "threads", "dim": 16})
    options = local.embed_options()
    assert (options.batch_size, options.num_workers, options.loader, options.dim) == (7, 1, "threads", 16)
    pod = EmbedPodOperator(task_id="p", manifest_uri="file:///m.parquet",
                           option_overrides='{"input_size": 96}')
    assert "--input-size" in pod.embed_arguments() and "96" in pod.embed_arguments()
    templated = EmbedShardOperator(task_id="t", manifest_uri="m", option_overrides="{{ ti.xcom_pull(key='x') }}")
    assert templated.embed_options().batch_size == 32  # unrendered at parse time: the task's own options


def test_normalize_embeddings_false_reaches_the_embed_options() -> None:
    from lightly_airflow.embedding.options import EmbedOptions

    worker = parse_worker_config({"embeddings": "emb.csv", "normalize_embeddings": False})
    overrides = embed_option_overrides(worker, None)
    assert overrides == {"normalize_embeddings": False}  # (before: {}, the CSV was normalised anyway)
    assert EmbedOptions().replace(**overrides).normalize_embeddings is False
    assert embed_option_overrides(parse_worker_config({"embeddings": "emb.csv"}), None) == {}


@pytest.mark.parametrize("lightly", [{"collate": {"input_size": 16}}, {"collate": {"input_size": 4000}},
                                     {"model": {"num_ftrs": 5000}}])
def test_sizes_every_embed_task_would_refuse_fail_the_first_task(lightly: dict) -> None:
    with pytest.raises(ParamError, match=r"lightly_config.*(collate.input_size=|num_ftrs).*Fix"):
        embed_option_overrides(parse_worker_config({}), lightly)
