"""Part II on the command line: train a model on the path-star task and report the paper's diagnostics.

    python -m ntp_lib.experiments pathstar --objective standard --scale cpu
    python -m ntp_lib.experiments pathstar --objective teacherless --layers 4 --width 128 --device cuda

One flag per field of :class:`ntp_lib.pathstar.run.PathStarConfig` (generated from it, so the two cannot
drift), plus ``--scale`` (start from ``PathStarConfig.at_scale``; without it, from the defaults) and
``--threads`` (default: every core of the machine). Prints what :func:`ntp_lib.pathstar.run.run_pathstar`
returns as one JSON line, with the command that made it.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import Any

import ntp_lib
from ntp_lib.pathstar import OBJECTIVES, PathStarConfig, run_pathstar
from ntp_lib.pathstar.run import DEVICES, MODELS
from ntp_lib.runtime import SCALES

_TYPES = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str}
_CHOICES = {"objective": OBJECTIVES, "model": MODELS, "device": DEVICES}


def config_from_args(args: argparse.Namespace) -> PathStarConfig:
    """The configuration a parsed command line asks for: ``--scale``'s setting (or the defaults) and the flags given."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(PathStarConfig)
             if getattr(args, f.name) is not None}
    return PathStarConfig.at_scale(args.scale, **given) if args.scale else PathStarConfig.from_dict(given)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config_from_args(args)
    ntp_lib.setup(seed=cfg.seed, threads=args.threads, figures=False)
    result = run_pathstar(cfg)
    result["command"] = shlex.join(["python", "-m", "ntp_lib.experiments", *getattr(args, "argv", ["pathstar"])])
    return result


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pathstar", help="Part II: path-star task (Bachmann & Nagarajan 2024)",
                              description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=SCALES, default=None,
                   help="start from the chapters' setting (default: PathStarConfig's defaults)")
    for f in dataclasses.fields(PathStarConfig):
        default = f.default
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=_TYPES[str(f.type)], default=None,
                       choices=_CHOICES.get(f.name), help=f"{f.metadata['help']} (default: {default})")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: every core)")
    p.set_defaults(run=_run)
