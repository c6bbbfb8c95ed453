"""Part I experiment: ``python -m ntp_lib.experiments implicit-bias [options]``.

Trains the linear NTP decoder on one of the paper's settings and prints the final values of the
paper's panels (Thrampoulidis 2024, Figs 4-5) as one JSON line::

    python -m ntp_lib.experiments implicit-bias --setting overparam --optimizer gd --steps 10000
"""

from __future__ import annotations

import argparse

import numpy as np

SETTINGS = ("toy", "overparam", "twin", "corpus")


def make_data(setting: str, seed: int):
    """The NTPData of a named setting: the 2-D toy, the m=50/d=60 one, its orthonormal twin (same
    supports and probabilities, orthonormal contexts), or bigrams of the corpus."""
    from ntp_lib import implicit_bias as ib

    if setting == "toy":
        return ib.toy_2d(seed=seed)
    if setting in ("overparam", "twin"):
        data = ib.random_ntp_data(m=50, d=60, V=10, support_size=6, seed=seed)
        return ib.orthonormal_twin(data, seed=seed) if setting == "twin" else data
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
    traj = ib.optimize(data, args.optimizer, steps=args.steps, lr=args.lr, lr_power=args.lr_power,
                       batch_size=args.batch_size, seed=args.seed)
    out = {"setting": args.setting, "optimizer": args.optimizer, "seed": args.seed,
           "m": data.m, "d": data.d, "V": data.V, "entropy": round(data.entropy_floor, 6),
           "lr": traj.lr}
    out.update({k: float(np.round(v, 6)) for k, v in traj.final().items()})
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("implicit-bias", help="Part I: implicit bias of NTP in linear models",
                              description=__doc__.splitlines()[0])
    p.add_argument("--setting", choices=SETTINGS, default="overparam")
    from ntp_lib.implicit_bias import OPTIMIZERS

    p.add_argument("--optimizer", choices=OPTIMIZERS, default="gd")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=None, help="step size (default: the optimizer's)")
    p.add_argument("--lr-power", type=float, default=0.0, help="step lr * k^-power (default 0: constant)")
    p.add_argument("--batch-size", type=int, default=32, help="pairs per step for --optimizer sgd")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)
