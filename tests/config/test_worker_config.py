"""Every key of Lightly's worker_config and lightly_config is known: honoured, a noted no-op, or refused.

The oracle is Lightly's own key list (its openapi models ``DockerWorkerConfigV4Docker`` and
``DockerWorkerConfigV3Lightly`` with their sub-models, copied here by hand), so a key we forget fails.
"""

from __future__ import annotations

import pytest

from lightly_airflow.config import ConfigError, key_table, parse_lightly_config, parse_worker_config
from lightly_airflow.datasource import NewFilesQuery

# Lightly's keys (snake_case), from lightly/openapi_generated/swagger_client/models/docker_worker_config_*.py.
LIGHTLY_WORKER_KEYS = {
    "checkpoint", "checkpoint_run_id", "corruptness_check.corruption_threshold", "datasource.bypass_verify",
    "datasource.enable_datapool_update", "datasource.process_all",
    "datasource.input_expiration.min_days_to_expiration", "datasource.input_expiration.handling_strategy",
    "crops.enable_upload", "crops.enable_upload_for_tasks", "embeddings", "enable_training", "training.task_name",
    "normalize_embeddings", "num_processes", "num_threads", "output_image_format", "pretagging",
    "pretagging_upload", "relevant_filenames_file", "selected_sequence_length", "upload_report", "use_datapool",
    "shutdown_when_job_finished", "cache_size",
    # Legacy (docker_worker_config_v2_docker_object_level.py): padding of object crops.
    "object_level.padding", "object_level.task_name", "object_level.crop_dataset_name",
}
LIGHTLY_LIGHTLY_KEYS = {
    "seed", "checkpoint_callback.save_last", "loader.batch_size", "loader.shuffle", "loader.num_workers",
    "loader.drop_last", "model.name", "model.out_dim", "model.num_ftrs", "model.width", "trainer.gpus",
    "trainer.max_epochs", "trainer.precision", "criterion.temperature", "optimizer.lr", "optimizer.weight_decay",
    *(f"collate.{k}" for k in ("input_size", "cj_prob", "cj_bright", "cj_contrast", "cj_sat", "cj_hue", "min_scale",
                               "random_gray_scale", "gaussian_blur", "kernel_size", "sigmas", "vf_prob", "hf_prob",
                               "rr_prob", "rr_degrees")),
}

# A value Lightly accepts for every key (a value that asks for something: true for booleans).
SAMPLE = {
    "checkpoint": "s3://bucket/lightly_epoch_1.ckpt", "checkpoint_run_id": "0123456789abcdef01234567",
    "corruptness_check.corruption_threshold": 0.2, "datasource.bypass_verify": True,
    "datasource.enable_datapool_update": False, "datasource.process_all": True,
    "datasource.input_expiration.min_days_to_expiration": 3, "datasource.input_expiration.handling_strategy": "SKIP",
    "crops.enable_upload": True, "crops.enable_upload_for_tasks": ["det"], "embeddings": "my.csv",
    "enable_training": True, "training.task_name": "lightly_pretagging", "normalize_embeddings": False,
    "num_processes": 2, "num_threads": 3, "output_image_format": "jpg", "pretagging": True,
    "pretagging_upload": True, "relevant_filenames_file": ".lightly/relevant_filenames.txt",
    "selected_sequence_length": 4, "upload_report": True, "use_datapool": False,
    "shutdown_when_job_finished": True, "cache_size": 1000,
    "object_level.padding": 0.1, "object_level.task_name": "det", "object_level.crop_dataset_name": "crops",
    "seed": 1, "checkpoint_callback.save_last": True, "loader.batch_size": 16, "loader.shuffle": True,
    "loader.num_workers": -1, "loader.drop_last": True, "model.name": "resnet-50", "model.out_dim": 128,
    "model.num_ftrs": 32, "model.width": 2, "trainer.gpus": 1, "trainer.max_epochs": 10, "trainer.precision": 16,
    "criterion.temperature": 0.5, "optimizer.lr": 1, "optimizer.weight_decay": 0.0001,
    "collate.input_size": 128, "collate.cj_prob": 0.8, "collate.cj_bright": 0.7, "collate.cj_contrast": 0.7,
    "collate.cj_sat": 0.7, "collate.cj_hue": 0.2, "collate.min_scale": 0.15, "collate.random_gray_scale": 0.2,
    "collate.gaussian_blur": 0.5, "collate.kernel_size": 0.1, "collate.sigmas": [0.2, 2],
    "collate.vf_prob": 0.0, "collate.hf_prob": 0.5, "collate.rr_prob": 0.0, "collate.rr_degrees": [-90, 90],
}
# What an honoured key changes, read back from the parsed config.
HONOURED_READ = {
    "datasource.process_all": lambda w: w.datasource.process_all is True,
    # (the run's query carries input_expiration to the list step and the sensor: tests/datasource/test_expiration.py)
    "datasource.input_expiration.min_days_to_expiration": lambda w: _query(w).min_days_to_expiration == 3.0,
    "datasource.input_expiration.handling_strategy": lambda w: _query(w).expiration_handling == "ABORT",
    "datasource.enable_datapool_update": lambda w: w.datasource.enable_datapool_update is False,
    "corruptness_check.corruption_threshold": lambda w: w.corruptness_check.corruption_threshold == 0.2,
    "embeddings": lambda w: w.embeddings == "my.csv",
    "crops.enable_upload": lambda w: w.crops.enable_upload is True,
    "crops.enable_upload_for_tasks": lambda w: w.crops.enable_upload_for_tasks == ["det"],
    "object_level.padding": lambda w: w.object_level.padding == 0.1,
    "object_level.task_name": lambda w: _task_name_is_checked(w),
    "normalize_embeddings": lambda w: w.normalize_embeddings is False,
    "num_processes": lambda w: w.embed_overrides() == {"loader": "processes", "num_workers": 2},
    "num_threads": lambda w: w.embed_overrides() == {"loader": "threads", "num_workers": 3},
    "relevant_filenames_file": lambda w: w.relevant_filenames_file == ".lightly/relevant_filenames.txt",
    "selected_sequence_length": lambda w: w.selected_sequence_length == 4,
    "model.name": lambda c: c.embed_overrides() == {"model": "resnet-50"},
    "model.num_ftrs": lambda c: c.embed_overrides() == {"dim": 32},
    "loader.batch_size": lambda c: c.embed_overrides() == {"batch_size": 16},
    "loader.num_workers": lambda c: c.embed_overrides() == {"num_workers": None},
    "collate.input_size": lambda c: c.embed_overrides() == {"input_size": 128},
}
ROWS = key_table()


def _query(worker: object) -> NewFilesQuery:
    return NewFilesQuery.build(datasource_uri="file:///data", datapool_uri="file:///pool", worker_config=worker)


def _task_name_is_checked(worker: object) -> bool:
    """``object_level.task_name="det"`` refuses a selection config without an EMBEDDINGS input of task ``det``
    (naming the key) and passes one with it: what the first task checks (tests/objects/test_run.py)."""
    from lightly_airflow.config import parse_selection_config
    from lightly_airflow.objects.spec import check_object_level

    def config(**task: str) -> object:
        return parse_selection_config({"n_samples": 2, "strategies": [
            {"input": {"type": "EMBEDDINGS", **task}, "strategy": {"type": "DIVERSITY"}}]})

    problem = check_object_level(config(), worker)
    return problem is not None and problem[0] == "worker_config.object_level.task_name" and \
        check_object_level(config(task="det"), worker) is None


def _nest(path: str, value: object) -> dict:
    head, _, rest = path.partition(".")
    if path.startswith("datasource.input_expiration."):
        return {"datasource": {"input_expiration": {"min_days_to_expiration": 3, "handling_strategy": "ABORT"}}}
    return {head: _nest(rest, value) if rest else value}


def _camel(d: object) -> object:
    if not isinstance(d, dict):
        return d
    out = {}
    for k, v in d.items():
        first, *rest = k.split("_")
        out[first + "".join(r.title() for r in rest)] = _camel(v)
    return out


def test_every_lightly_key_is_known_and_nothing_else() -> None:
    assert {p for c, p, _, _ in ROWS if c == "worker_config"} == LIGHTLY_WORKER_KEYS
    assert {p for c, p, _, _ in ROWS if c == "lightly_config"} == LIGHTLY_LIGHTLY_KEYS
    assert set(SAMPLE) == LIGHTLY_WORKER_KEYS | LIGHTLY_LIGHTLY_KEYS
    assert {e for _, _, e, _ in ROWS} == {"honoured", "no_effect", "refused"}
    assert all(why and why != "None" for *_, why in ROWS)


@pytest.mark.parametrize(("config", "path", "effect", "why"), ROWS, ids=[f"{c}:{p}" for c, p, _, _ in ROWS])
def test_each_key(config: str, path: str, effect: str, why: str) -> None:
    parse = parse_worker_config if config == "worker_config" else parse_lightly_config
    given = _nest(path, SAMPLE[path])
    if effect == "refused":
        with pytest.raises(ConfigError) as info:
            parse(given)
        assert info.value.problems[0][0] == path and "Fix:" in str(info.value)
        return
    parsed = parse(given)
    assert parse(_camel(given)) == parsed  # Lightly's camelCase spelling means the same
    notes = parsed.notes()
    if effect == "honoured":
        assert notes == []
        assert HONOURED_READ[path](parsed), path
    else:
        assert len(notes) == 1 and path.startswith(notes[0].split("=")[0]), notes
        assert "has no effect here, because" in notes[0]


def test_refused_keys_accept_their_harmless_value() -> None:
    parsed = parse_worker_config({"enable_training": False, "pretagging": False})
    assert parsed.notes() == []
    # The datapool docs' worker configs, verbatim.
    assert parse_worker_config({"enable_training": False}).datasource.process_all is False
    cfg = parse_worker_config({"datasource": {"process_all": True}, "enable_training": False})
    assert cfg.datasource.process_all is True and cfg.notes() == []


@pytest.mark.parametrize("bad", ["yes", 1, 0, "true", None])
def test_booleans_are_strict(bad: object) -> None:
    bool_paths = [p for c, p, _, _ in ROWS if c == "worker_config" and isinstance(SAMPLE[p], bool)]
    assert len(bool_paths) >= 10
    for path in bool_paths:
        if bad is None and path in ("datasource.process_all", "datasource.enable_datapool_update",
                                    "normalize_embeddings"):
            continue  # null is "not given" for Lightly's optional keys
        if bad is None:
            continue
        with pytest.raises(ConfigError) as info:
            parse_worker_config(_nest(path, bad))
        assert info.value.problems[0][0] == path
        assert "JSON boolean" in str(info.value)


def test_numbers_are_strict_and_ranged() -> None:
    for given, path in [({"num_threads": -2}, "num_threads"), ({"num_processes": 1.5}, "num_processes"),
                        ({"num_processes": True}, "num_processes"), ({"selected_sequence_length": 0},
                        "selected_sequence_length"), ({"corruptness_check": {"corruption_threshold": 1.5}},
                        "corruptness_check.corruption_threshold"), ({"checkpoint_run_id": "nope"},
                        "checkpoint_run_id")]:
        with pytest.raises(ConfigError) as info:
            parse_worker_config(given)
        assert info.value.problems[0][0] == path, info.value


def test_unknown_keys_name_the_closest_known_one() -> None:
    with pytest.raises(ConfigError, match=r"datasource.proces_all: unknown key.*Did you mean 'process_all'"):
        parse_worker_config({"datasource": {"proces_all": True}})
    with pytest.raises(ConfigError, match=r"loader.num_workersx.*Did you mean 'num_workers'"):
        parse_lightly_config({"loader": {"num_workersx": -1, "batch_size": 16}})
    with pytest.raises(ConfigError, match="model.name"):
        parse_lightly_config({"model": {"name": "vit-b16"}})


def test_an_unknown_key_with_no_close_name_says_the_fix() -> None:
    """An unknown key no known key resembles said only "unknown key; Lightly does not know it either." (no fix)."""
    with pytest.raises(ConfigError) as info:
        parse_worker_config({"foo": 1})
    assert info.value.problems[0][0] == "foo"
    assert "Fix: remove it; the keys here: [" in str(info.value) and "'datasource'" in str(info.value)
    with pytest.raises(ConfigError, match=r"datasource.zzz: unknown key.*Fix: remove it; the keys here: .*process_all"):
        parse_worker_config({"datasource": {"zzz": True}})
    with pytest.raises(ConfigError, match=r"loader.qqq: unknown key.*Fix: remove it; the keys here: .*'batch_size'"):
        parse_lightly_config({"loader": {"qqq": 1}})


def test_lightly_client_test_configs_verbatim() -> None:
    # From lightly's tests/api_workflow/test_api_workflow_compute_worker.py.
    assert parse_worker_config({"training": {"task_name": "lightly_pretagging"}}).notes()
    assert parse_lightly_config({"loader": {"batch_size": 64}}).embed_overrides() == {"batch_size": 64}
    with pytest.raises(ConfigError, match="pretagging"):
        parse_worker_config({"pretagging": True})
    assert parse_lightly_config({"loader": {"num_workers": -1, "batch_size": 16, "shuffle": True},
                                 "collate": {"rr_degrees": [-90, 90]}}).embed_overrides() == {
        "batch_size": 16, "num_workers": None}
    with pytest.raises(ConfigError, match="corruption_thresholdx"):
        parse_worker_config({"enable_training": False, "corruptness_check": {"corruption_thresholdx": 0.1}})
    assert parse_worker_config({}) == parse_worker_config(None) == parse_worker_config("")


# Worker configs verbatim from Lightly's docs (docs/source/docker/, before it became docker_archive): the
# integration example trigger_job.py, and the sequence-selection example (V2 keys method/stopping_condition).
LIGHTLY_DOCS_WORKER_CONFIGS = {
    "trigger_job.py": {"enable_corruptness_check": True, "remove_exact_duplicates": True, "enable_training": False},
    "python_run_sequence_selection.py": {
        "enable_corruptness_check": False, "remove_exact_duplicates": False, "enable_training": False,
        "pretagging": False, "pretagging_debug": False, "method": "coreset",
        "stopping_condition": {"n_samples": 200, "min_distance": -1}, "selected_sequence_length": 10},
    "first_steps.rst relevant files": {"relevant_filenames_file": ".lightly/relevant_filenames.txt",
                                       "enable_corruptness_check": True, "remove_exact_duplicates": True},
}


@pytest.mark.parametrize("name", sorted(LIGHTLY_DOCS_WORKER_CONFIGS))
def test_v2_keys_of_lightlys_doc_examples_are_refused_with_what_to_do(name: str) -> None:
    """Lightly's own examples carry keys of its V2 worker config. Each was "unknown key; Lightly does not know
    it either." with no fix (or a "Did you mean 'corruptness_check'?" for a boolean): each now says it is a V2
    key and what to do, and the keys of today's config in the same example are not reported."""
    given = LIGHTLY_DOCS_WORKER_CONFIGS[name]
    with pytest.raises(ConfigError) as info:
        parse_worker_config(given)
    legacy = [k for k in given if k in ("enable_corruptness_check", "remove_exact_duplicates", "pretagging_debug",
                                        "method", "stopping_condition")]
    assert [p[0] for p in info.value.problems] == legacy
    for _path, _given, message in info.value.problems:
        assert message.startswith("a Lightly Worker V2 key") and "Fix: remove it" in message, message
        assert "does not know" not in message and "Did you mean" not in message
    by_key = {p[0]: p[2] for p in info.value.problems}
    if "method" in by_key:
        assert '"type": "DIVERSITY"' in by_key["method"] and "selection_config" in by_key["method"]
        assert "stopping_condition_minimum_distance" in by_key["stopping_condition"]
    cleaned = {k: v for k, v in given.items() if k not in legacy}
    assert parse_worker_config(cleaned).model_fields_set <= {"enable_training", "pretagging", "relevant_filenames_file",
                                                             "selected_sequence_length"}


def test_null_for_a_key_means_not_set_as_in_lightlys_models() -> None:
    """Every key of Lightly's worker/lightly config models is Optional: the client sends null for an unset
    one. {"datasource": null} was refused with pydantic's "Input should be a valid dictionary or instance of
    DatasourceOptions", a null boolean or number as a type error."""
    given = {"datasource": None, "corruptness_check": None, "normalize_embeddings": None, "relevant_filenames_file": None,
             "selected_sequence_length": None, "enable_training": None, "crops": {"enable_upload": None}}
    assert parse_worker_config(given) == parse_worker_config({"crops": {}})
    assert parse_worker_config(given).notes() == []
    lightly = parse_lightly_config({"seed": None, "model": {"name": None, "num_ftrs": None}, "loader": None})
    assert lightly.embed_overrides() == {} and lightly.notes() == []


@pytest.mark.parametrize("given, path, message", [
    ({"datasource": []}, "datasource", "must be a JSON object ({...})"),
    ({"crops": {"enable_upload_for_tasks": "det"}}, "crops.enable_upload_for_tasks", "must be a JSON list ([...])"),
    ({"relevant_filenames_file": 3}, "relevant_filenames_file", "must be a JSON string"),
    ({"datasource": {"input_expiration": {"handling_strategy": "SKIP"}}},
     "datasource.input_expiration.minDaysToExpiration", "required key is missing"),
])
def test_shape_errors_in_plain_words(given: dict, path: str, message: str) -> None:
    """Not pydantic's "Input should be a valid dictionary or instance of DatasourceOptions" / "Field required"."""
    with pytest.raises(ConfigError) as info:
        parse_worker_config(given)
    assert [(p, m) for p, _, m in info.value.problems] == [(path, message)]
