"""Experiment entry points: ``python -m ntp_lib.experiments NAME [options]`` prints one JSON line.

Each part of the book contributes a module here that defines ``register(subparsers)``; it adds
its sub-commands, each with ``set_defaults(run=fn)`` where ``fn(args) -> dict`` returns the values
to print. The modules are listed in ``PART_MODULES``; a module that is missing is skipped, so the
entry point works while a part is being written.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from typing import Any

PART_MODULES = ("implicit_bias", "pathstar", "bottleneck")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ntp_lib.experiments",
                                     description="Run one of the book's experiments; print one JSON line.")
    sub = parser.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name in PART_MODULES:
        try:
            module = importlib.import_module(f"ntp_lib.experiments.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"ntp_lib.experiments.{name}":
                continue
            raise
        module.register(sub)
    return parser


def _jsonable(value: Any) -> Any:
    """NumPy/torch scalars and arrays to plain Python; non-finite floats to None (valid JSON)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # what was actually asked for: main([...]) records its own arguments
    try:
        result = args.run(args)
    except ValueError as err:  # bad input: one clear line, exit code 2 like argparse
        parser.exit(2, f"error: {err}\n")
    print(json.dumps(_jsonable(result), sort_keys=True))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
