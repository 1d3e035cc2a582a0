"""numba, with its on-disk cache pointed at a writable folder (shared by every compiled kernel).

Import ``numba`` from here (``from lightly_airflow.jit import numba``): when the package folder is read-only
(a system install, a container image), compiled kernels are cached under the system temp folder instead.
"""

from __future__ import annotations

import os
import tempfile


def _configure_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    pycache = os.path.join(here, "__pycache__")
    target = pycache if os.path.isdir(pycache) else here
    if not os.access(target, os.W_OK):
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "lightly_airflow_numba_cache")


_configure_numba_cache()

import numba  # noqa: E402  (the cache directory must be configured first)

if os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]  # type: ignore[attr-defined]  # numba.config is dynamic

__all__ = ["numba"]
