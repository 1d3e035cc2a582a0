"""Examples from Lightly's documentation, shared by the tests that run them verbatim."""

# Lightly's documented custom-metadata schema (datasource_metadata.rst), with the comma the doc's first entry lacks.
METADATA_SCHEMA = [
    {"name": "Scene", "path": "scene", "defaultValue": "undefined", "valueDataType": "CATEGORICAL_STRING"},
    {"name": "Weather description", "path": "weather.description", "defaultValue": "nothing",
     "valueDataType": "CATEGORICAL_STRING"},
    {"name": "Temperature", "path": "weather.temperature", "defaultValue": 0.0, "valueDataType": "NUMERIC_FLOAT"},
    {"name": "Air pressure", "path": "weather.air_pressure", "defaultValue": 0, "valueDataType": "NUMERIC_INT"},
    {"name": "Vehicle ID", "path": "vehicle_id", "defaultValue": 0, "valueDataType": "CATEGORICAL_INT"},
]

# Lightly's docs write their configs as Python dicts with comments (docker/getting_started/selection.rst,
# "Visual Diversity (CORESET)"; https://docs.lightly.ai/docs/selection), pasted as they are.
CORESET_WITH_COMMENT = """{
    "n_samples": 100, # set to the number of samples you want to select
    "strategies": [
        {
            "input": {
                "type": "EMBEDDINGS"
            },
            "strategy": {
                "type": "DIVERSITY"
            }
        }
    ]
}
"""

# The Python dict of Lightly's "Configuration Options" page (https://docs.lightly.ai/docs/all-configuration-options),
# its first keys, pasted as a file.
WORKER_CONFIG_PYTHON = """{
    # Enable datapool. See https://docs.lightly.ai/docs/datapool for details.
    "use_datapool": False,
}
"""

# The web app's default worker config, a JavaScript object (docker/code_examples/webapp_default_worker_config.txt in
# lightly-ai/lightly before fc722bf0; https://docs.lightly.ai/docker/integration/docker_trigger_from_api.html).
WORKER_CONFIG_JAVASCRIPT = """{
  enable_corruptness_check: true,
  remove_exact_duplicates: true,
  enable_training: false,
  pretagging: false,
  pretagging_debug: false,
  method: 'coreset',
}"""

# An object detection prediction file as the docs show it, with its JavaScript comment
# (https://docs.lightly.ai/docs/prediction-format; docker/advanced/datasource_predictions.rst).
DETECTION_PREDICTION_WITH_COMMENT = """{
    "file_name": "subdir/image_1.png",
    "predictions": [ // classes: [person, car]
        {
            "category_id": 0,
            "bbox": [140, 100, 80, 90],
            "score": 0.8
        }
    ]
}"""

# "Lightly Pretagging" (https://docs.lightly.ai/docs/lightly-pretagging) and selection.rst's "Object Balancing":
# BALANCE on the classes of Lightly's hosted pretagging model, task "lightly_pretagging".
PRETAGGING_BALANCE = {
    "n_samples": 100,
    "strategies": [
        {
            "input": {"type": "PREDICTIONS", "task": "lightly_pretagging", "name": "CLASS_DISTRIBUTION"},
            "strategy": {"type": "BALANCE", "target": {
                "car": 0.1, "bicycle": 0.5, "bus": 0.1, "motorcycle": 0.1, "person": 0.1, "train": 0.05, "truck": 0.05,
            }},
        }
    ],
}
#: The classes of Lightly's pretagging model (https://docs.lightly.ai/docs/lightly-pretagging).
PRETAGGING_CLASSES = ["bicycle", "bus", "car", "motorcycle", "person", "train", "truck"]

# The web app's default lightly_config (docker/code_examples/webapp_default_lightly_config.txt), as JSON; Lightly's
# model (DockerWorkerConfigV3LightlyCollate) takes collate.sigmas as two numbers > 0.
WEBAPP_DEFAULT_LIGHTLY_CONFIG = {
    "loader": {"batch_size": 16, "shuffle": True, "num_workers": -1, "drop_last": True},
    "model": {"name": "resnet-18", "out_dim": 128, "num_ftrs": 32, "width": 1},
    "trainer": {"gpus": 1, "max_epochs": 100, "precision": 32},
    "criterion": {"temperature": 0.5},
    "optimizer": {"lr": 1, "weight_decay": 0.00001},
    "collate": {"input_size": 64, "cj_prob": 0.8, "cj_bright": 0.7, "cj_contrast": 0.7, "cj_sat": 0.7, "cj_hue": 0.2,
                "min_scale": 0.15, "random_gray_scale": 0.2, "gaussian_blur": 0.5, "kernel_size": 0.1, "vf_prob": 0,
                "hf_prob": 0.5, "rr_prob": 0},
}

# The prediction files of "Prediction Format" (https://docs.lightly.ai/docs/prediction-format;
# docker/advanced/datasource_predictions.rst), "probabilities" being optional: the classification singleton
# `{"category_id": int, "probabilities": [...] // optional}` without them, and the object detection example
# (classes [person, car]) whose third box has none.
CLASSIFICATION_SCHEMA = {"task_type": "classification", "categories": [
    {"id": 0, "name": "sunny"}, {"id": 1, "name": "clouded"}, {"id": 2, "name": "rainy"}]}
CLASSIFICATION_ONLY_CATEGORY = {"file_name": "subdir/image_1.png", "predictions": [{"category_id": 0}]}
DETECTION_SCHEMA = {"task_type": "object-detection", "categories": [{"id": 0, "name": "person"}, {"id": 1, "name": "car"}]}
DETECTION_PREDICTION = {"file_name": "subdir/image_1.png", "predictions": [
    {"category_id": 0, "bbox": [140, 100, 80, 90], "score": 0.8, "probabilities": [0.2, 0.8]},
    {"category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9, "probabilities": [0.9, 0.1]},
    {"category_id": 0, "bbox": [50, 60, 70, 80], "score": 0.5},
]}

# selection.rst "Similarity Search" (https://docs.lightly.ai/docs/selection-input): the query set is a Lightly
# Platform dataset, whose id is a MongoDB ObjectId (24 hex digits, SelectionConfigV4EntryInput.dataset_id).
SIMILARITY_SEARCH = {
    "n_samples": 100,
    "strategies": [{
        "input": {"type": "EMBEDDINGS", "dataset_id": "6401d4534d2ed9112da782f5", "tag_name": "initial-tag"},
        "strategy": {"type": "SIMILARITY"},
    }],
}
