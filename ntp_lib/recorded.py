"""Recorded results: runs too long for a notebook, shipped inside ntp_lib as package data.

Each part's recorded runs live in ``ntp_lib/data/<part>/`` as JSON files named ``runs_*.json``
(``{name: result}``), each run with its exact
``command``, ``config``, ``machine`` and ``ntp_lib_version``. They are read through
``importlib.resources``, so an installed ntp_lib (``pip install``, on Colab) finds them as well as
a clone of the repository does.

>>> runs = load_recorded("pathstar")
>>> all("command" in run for run in runs.values())
True
>>> recorded_files("pathstar", "runs_g23_obj*")
['runs_g23_objectives.json', 'runs_g23_objectives_jobs.txt']
"""

from __future__ import annotations

import fnmatch
import json
from importlib import resources
from importlib.abc import Traversable
from typing import Any

#: The parts that have recorded results (folders of ``ntp_lib/data``).
PARTS = ("pathstar",)


def _folder(part: str) -> Traversable:
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    return resources.files("ntp_lib") / "data" / part


def recorded_files(part: str, pattern: str = "*.json") -> list[str]:
    """Names of the recorded files of ``part`` matching ``pattern``, sorted."""
    return sorted(f.name for f in _folder(part).iterdir() if fnmatch.fnmatch(f.name, pattern))


def load_recorded_file(part: str, name: str) -> Any:
    """The parsed JSON of one recorded file, e.g. ``load_recorded_file("pathstar", "benchmark.json")``."""
    if name not in recorded_files(part):
        raise ValueError(f"no recorded file {name!r} for {part!r}; have {recorded_files(part)}")
    return json.loads((_folder(part) / name).read_text(encoding="utf-8"))


def load_recorded(part: str, pattern: str = "runs_*.json") -> dict[str, dict[str, Any]]:
    """All recorded runs ``{name: result}`` of ``part`` from its JSON files matching ``pattern``.

    Raises ValueError naming the folder if no file matches (e.g. an ntp_lib built without its data).
    """
    names = recorded_files(part, pattern)
    if not names:
        raise ValueError(f"no recorded results matching {pattern!r} in {_folder(part)}")
    runs: dict[str, dict[str, Any]] = {}
    for name in names:
        runs.update(load_recorded_file(part, name))
    return runs
