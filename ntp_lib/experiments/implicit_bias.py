"""Part I experiment: ``python -m ntp_lib.experiments implicit-bias [options]``.

Trains the linear NTP decoder on one of the paper's settings and prints the final values of the
paper's panels (Thrampoulidis 2024, Figs 4-5) as one JSON line::

    python -m ntp_lib.experiments implicit-bias --setting overparam --optimizer gd --steps 10000
"""

from __future__ import annotations

import argparse

import numpy as np

SETTINGS = ("toy", "overparam", "corpus")


def make_data(setting: str, seed: int):
    """The NTPData of a named setting: the 2-D toy, the m=50/d=60 one, or bigrams of the corpus."""
    from ntp_lib import implicit_bias as ib

    if setting == "toy":
        return ib.toy_2d(seed=seed)
    if setting == "overparam":
        return ib.random_ntp_data(m=50, d=60, V=10, support_size=6, seed=seed)
    if setting == "corpus":
        from ntp_lib.corpus import load_python_docs, words

        return ib.from_corpus(words(load_python_docs()), vocab_size=20, context_len=1, d=32,
                              min_count=20, max_contexts=20, seed=seed)
    raise ValueError(f"setting must be one of {SETTINGS}, got {setting!r}")


def run(args: argparse.Namespace) -> dict:
    from ntp_lib import implicit_bias as ib

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    data = make_data(args.setting, args.seed)
    traj = ib.optimize(data, args.optimizer, steps=args.steps, lr=args.lr)
    out = {"setting": args.setting, "optimizer": args.optimizer, "seed": args.seed,
           "m": data.m, "d": data.d, "V": data.V, "entropy": round(data.entropy_floor, 6),
           "lr": traj.lr}
    out.update({k: float(np.round(v, 6)) for k, v in traj.final().items()})
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("implicit-bias", help="Part I: implicit bias of NTP in linear models",
                              description=__doc__.splitlines()[0])
    p.add_argument("--setting", choices=SETTINGS, default="overparam")
    p.add_argument("--optimizer", choices=("gd", "ngd", "adam", "sign"), default="gd")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=None, help="step size (default: the optimizer's)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
