"""numba, imported only when a compiled kernel first runs, with its on-disk cache in a writable folder.

Importing numba and loading cached kernels costs ~1 CPU-second and ~100 MiB per process, so modules do not
import it at import time: they decorate with :func:`njit` (same options as ``numba.njit``) and the
function is compiled (or loaded from the cache) on its first call. ``from lightly_airflow.jit import numba``
still works (imports numba then). When the package folder is read-only (a system install, a container
image), compiled kernels are cached under the system temp folder instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

_LAZY: dict[str, list[_Lazy]] = {}  # module name -> its not yet compiled kernels


def _configure_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    pycache = os.path.join(here, "__pycache__")
    target = pycache if os.path.isdir(pycache) else here
    if not os.access(target, os.W_OK):
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "lightly_airflow_numba_cache")


def _numba() -> Any:
    _configure_numba_cache()
    # Parallel kernels' threads sleep at barriers instead of spinning (a spinning OpenMP thread on a busy
    # machine took 3x the CPU time of one thread for the same pruned picks, measured); the user's setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numba  # (the cache directory must be configured first)

    if os.environ.get("NUMBA_CACHE_DIR"):
        numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]  # type: ignore[attr-defined]  # (dynamic)
    return numba


class _Lazy:
    """A kernel that becomes ``numba.njit(**options)(func)`` on its first call.

    On the first call of any kernel of a module, every kernel of that module replaces its own name in the
    module's globals by the numba dispatcher, so kernels calling kernels compile against dispatchers."""

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.func, self.options = func, options
        self.dispatcher: Any = None
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def _materialise(self) -> Any:
        if self.dispatcher is None:
            numba = _numba()
            for lazy in _LAZY.pop(self.func.__module__, [self]):
                if lazy.func.__globals__.get("prange") is range:  # a module's placeholder for parallel loops
                    lazy.func.__globals__["prange"] = numba.prange
                lazy.dispatcher = numba.njit(**lazy.options)(lazy.func)
                if lazy.func.__globals__.get(lazy.__name__) is lazy:
                    lazy.func.__globals__[lazy.__name__] = lazy.dispatcher
        return self.dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return (self.dispatcher or self._materialise())(*args, **kwargs)


def njit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(**options)``, applied (numba imported) on the function's first call."""

    def wrap(func: Callable[..., Any]) -> Any:
        lazy = _Lazy(func, options)
        _LAZY.setdefault(func.__module__, []).append(lazy)
        return lazy

    return wrap


def __getattr__(name: str) -> Any:
    if name == "numba":
        return _numba()
    raise AttributeError(name)


__all__ = ["njit"]  # (and ``numba``, imported on access)
