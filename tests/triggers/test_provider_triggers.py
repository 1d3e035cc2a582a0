"""The provider info names every module that holds one of our triggers (``airflow providers triggers``); before,
only the sensor's was listed, not the asset watcher's (``NewFilesEventTrigger``) or the SQS queue watcher's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from airflow.triggers.base import BaseTrigger

import lightly_airflow.triggers
from lightly_airflow.provider import get_provider_info


def test_every_trigger_module_is_in_the_provider_info() -> None:
    with_triggers = set()
    for module in pkgutil.iter_modules(lightly_airflow.triggers.__path__, "lightly_airflow.triggers."):
        loaded = importlib.import_module(module.name)
        if any(issubclass(c, BaseTrigger) and c.__module__ == module.name
               for _, c in inspect.getmembers(loaded, inspect.isclass)):
            with_triggers.add(module.name)
    [entry] = get_provider_info()["triggers"]
    assert with_triggers and sorted(entry["python-modules"]) == sorted(with_triggers)
