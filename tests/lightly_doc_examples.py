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
