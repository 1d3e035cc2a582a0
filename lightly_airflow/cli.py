"""``lightly-airflow``: the command line of the project.

Each subcommand lives beside the code it drives (``embedding/cli.py``, ``selection/cli.py``,
``datapool/cli.py``); a module listed here exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code). Modules are imported only when
their command runs or when help is printed, so ``lightly-airflow datapool …`` never imports torch.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "embed": "lightly_airflow.embedding.cli",
    "metadata": "lightly_airflow.metadata.cli",
    "predictions": "lightly_airflow.predictions.cli",
    "select": "lightly_airflow.selection.cli",
    "recipe": "lightly_airflow.selection.recipes",
    "datapool": "lightly_airflow.datapool.cli",
    "list": "lightly_airflow.datasource.cli",
    "report": "lightly_airflow.report.cli",
}

PYDANTIC_PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"
"""Set to ``__all__`` by :func:`main` unless already set (pydantic's documented switch; see there)."""
OPENBLAS_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"
"""Set to ``4`` by :func:`main` unless already set or numpy is loaded (OpenBLAS' idle threads sleep at once)."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command registered (or only ``only``, to keep imports small)."""
    parser = argparse.ArgumentParser(prog="lightly-airflow", description="Curate image and video data into a datapool.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            continue  # the folder of that command is not built yet
        mod.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lightly-airflow`` command (:func:`console` is the console script's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return _run(_parser(argv), argv)


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    """The environment the command's libraries read when they load, and its parser (its modules imported)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    if command == "select" and "pyarrow" not in sys.modules:
        # Arrow on the system allocator (read only when pyarrow loads): its default mimalloc pool keeps the
        # Parquet decoder's freed pages resident (docs/selection.md "Memory of a select process").
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if "numpy" not in sys.modules:
        # numpy's OpenBLAS starts its worker threads when numpy loads, and each busy-waits 2**28 cycles (~0.1 s)
        # for work before it sleeps, at start and after every call it shares: a core spun while the command
        # imports and reads (a select's Parquet decode on a 2-core machine). 2**4 cycles: they sleep at once and
        # a shared BLAS call wakes them (OpenBLAS' documented variable, read when it loads; a value set is kept).
        os.environ.setdefault(OPENBLAS_TIMEOUT_ENV, "4")
    if "pydantic" not in sys.modules and PYDANTIC_PLUGINS_ENV not in os.environ:
        # pydantic looks for plugins (observability hooks such as logfire's) by scanning every installed
        # distribution's entry points when it builds its first validator: 0.08 s of a select's 0.8 s next to
        # Airflow's ~400 distributions, for the command's own config models. An explicit value (empty: load
        # them) is kept; docs/selection.md "How it is fast".
        os.environ[PYDANTIC_PLUGINS_ENV] = "__all__"
    return build_parser(only=command if command in COMMANDS else None)


def _run(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"lightly-airflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        # A path the user gave that names a folder where a file belongs (or the reverse), or one this user may not
        # read or write: one line naming the path, not a traceback.
        fix = f"\nFix: {_PATH_FIXES[type(exc)]}" if exc.errno is not None else ""  # (ours carry their fix)
        print(f"lightly-airflow {args.command}: error: {exc}{fix}", file=sys.stderr)
        return 1


_PATH_FIXES: dict[type[OSError], str] = {
    IsADirectoryError: "that path is a folder: give the path of a file",
    NotADirectoryError: "a part of that path is a file, not a folder: correct the path",
    PermissionError: "give a path this user may read (inputs) or write (outputs), or change its permissions",
}


def positive_int(value: str) -> int:
    """An option's integer >= 1 (an argparse ``type``)."""
    number = _integer(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive integer")
    return number


def non_negative_int(value: str) -> int:
    """An option's integer >= 0 (an argparse ``type``)."""
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be 0 or a positive integer")
    return number


def prepare_out(out: str, what: str = "the output Parquet file", option: str = "--out") -> None:
    """Before any work, as the commands' outputs: the folder of a local ``option`` (``out``) is created; a path that
    is a folder, or whose folder cannot be made, is a ``ValueError`` naming ``option`` and ``what`` belongs there (a
    bucket URI is not checked: its store answers when the output is written)."""
    from pathlib import Path

    from lightly_airflow.storage import local_path, protocol_of

    if protocol_of(out) != "file":
        return
    path = Path(local_path(out))
    problem = None
    if path.is_dir():
        problem = "is a folder"
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = f"its folder cannot be made ({exc})"
    if problem:
        raise ValueError(f"{option} {out!r}: {problem}\nFix: give the path of {what}")


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError:  # (argparse would name the type function: "invalid positive_int value")
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None


def console() -> int:
    """The ``lightly-airflow`` console script: :func:`main`, then every object left to the process' end.

    At exit the interpreter's last garbage collections visit every object numba and LLVM created while
    compiling or loading kernels: 0.26 s after one compiled kernel, 0.44 s after a parallel one, measured
    after the work of a ``select`` of 1,000,000 x 64 embeddings was done (written, logged). ``gc.freeze()``
    takes them out of the collector's reach; atexit handlers and module teardown still run (log handlers
    flush); only cycles left at exit are not collected, and the process' memory goes back to the system
    whole. Tests call :func:`main` in their own process and keep their collector.

    The command's modules are imported with the collector off, then frozen: the imports (numpy, pyarrow; torch
    for ``embed``) allocate hundreds of thousands of objects that live as long as the process, and the
    collections they trigger traverse them again and again (a ``select``: 84 + 8 collections -> 39 + 2; a small
    one ends ~11 ms sooner, docs/selection.md "How it is fast"). The command itself runs with it on."""
    argv = sys.argv[1:]
    gc.disable()
    try:
        parser = _parser(argv)
    finally:
        gc.freeze()
        gc.enable()
    rc = _run(parser, argv)
    gc.freeze()
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
