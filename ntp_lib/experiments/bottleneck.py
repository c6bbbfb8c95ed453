"""Part III on the command line: the softmax bottleneck at CPU scale (Yang et al. 2018; Godey et al. 2024).

Sub-commands of ``python -m ntp_lib.experiments`` (each prints one JSON line); each calls one library
function, which is also what the chapters call:

- ``bottleneck-rank``: :func:`ntp_lib.bottleneck.synthetic.rank_experiment`, free contexts + a rank-d
  softmax head fitted to synthetic targets with a controlled spectrum (Godey et al. Theorem 5.3).
- ``ngram-spectrum``: :func:`ntp_lib.ngram.ngram_spectrum`, the W-error curve of the n-gram matrix of
  the offline corpus under a BPE tokenizer.
- ``small-lm``: :func:`ntp_lib.bottleneck.small_lm.train_small_lm`, a small causal LM trained on the
  offline corpus, with anisotropy, singular entropy and validation loss traced across training.
- ``rank-heads``: :func:`ntp_lib.bottleneck.small_lm.rank_heads`, rank-restricted heads W = A B fitted
  on the frozen features of such a model.
"""

from __future__ import annotations

import argparse
from typing import Any

from ntp_lib import lm, ngram
from ntp_lib.bottleneck import small_lm, synthetic


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(","))


def _run_rank(args: argparse.Namespace) -> dict[str, Any]:
    out = synthetic.rank_experiment(ranks=_ints(args.ranks), steps=args.steps, seed=args.seed)
    out.pop("P")
    return out


def _run_ngram(args: argparse.Namespace) -> dict[str, Any]:
    out = ngram.ngram_spectrum(args.vocab_size, args.context_length, args.min_count, args.k)
    out.pop("sigma")
    return out


def _run_small_lm(args: argparse.Namespace) -> dict[str, Any]:
    tr, va, _ = lm.lm_data(args.vocab_size)
    _, history = small_lm.train_small_lm(tr, va, args.vocab_size, n_embd=args.n_embd, steps=args.steps,
                                         eval_every=args.eval_every, seed=args.seed)
    return {"n_embd": args.n_embd, "vocab_size": args.vocab_size, "steps": args.steps, "history": history}


def _run_rank_heads(args: argparse.Namespace) -> dict[str, Any]:
    tr, va, _ = lm.lm_data(args.vocab_size)
    model, _ = small_lm.train_small_lm(tr, va, args.vocab_size, n_embd=args.n_embd, steps=args.steps,
                                       eval_every=args.steps, seed=args.seed)
    return small_lm.rank_heads(model, tr, va, ranks=_ints(args.ranks), steps=args.head_steps, seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bottleneck-rank", help="loss gap of rank-d softmax models on synthetic targets")
    p.add_argument("--ranks", default="1,2,4,8,16,32,64")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_rank)

    p = sub.add_parser("ngram-spectrum", help="W-error curve of the offline corpus's n-gram matrix")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--context-length", type=int, default=4)
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--k", type=int, default=128)
    p.set_defaults(run=_run_ngram)

    p = sub.add_parser("small-lm", help="train a small LM, trace anisotropy and singular entropy")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_small_lm)

    p = sub.add_parser("rank-heads", help="rank-restricted heads on a frozen small LM")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--head-steps", type=int, default=400)
    p.add_argument("--ranks", default="1,2,4,8,16,32,64")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_rank_heads)
