"""Part III experiments: the softmax bottleneck at CPU scale (Yang et al. 2018; Godey et al. 2024).

Sub-commands of ``python -m ntp_lib.experiments`` (each prints one JSON line):

- ``bottleneck-rank``: free contexts + a rank-d softmax head fitted to synthetic targets with a
  controlled spectrum; loss gap against d and against the ideal head's W-error (Theorem 5.3).
- ``ngram-spectrum``: W-error curve of the n-gram matrix of the offline corpus under a BPE tokenizer.
- ``small-lm``: a small causal LM (:class:`ntp_lib.gpt.GPT`) trained on the offline corpus, with
  anisotropy, singular entropy and validation loss traced across training.
- ``rank-heads``: rank-restricted heads W = A B fitted on the frozen features of such a model.

The functions are also what the chapters call.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ntp_lib import bottleneck as bn
from ntp_lib import ngram
from ntp_lib.corpus import load_python_docs
from ntp_lib.gpt import GPT, GPTConfig
from ntp_lib.lm import fixed_windows, random_crops
from ntp_lib.train import TrainConfig, train

# --------------------------------------------------------------------------- synthetic rank bound

def power_spectrum(k: int, scale: float = 120.0, decay: float = 0.7) -> np.ndarray:
    """s_i = scale * i^(-decay), i = 1..k: a slowly decaying spectrum like language's (k,)."""
    if k < 1 or scale <= 0 or decay < 0:
        raise ValueError(f"need k >= 1, scale > 0, decay >= 0; got {k}, {scale}, {decay}")
    return scale * np.arange(1, k + 1, dtype=np.float64) ** -decay


def rank_experiment(num_contexts: int = 256, vocab_size: int = 128, k: int = 64,
                    ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64), scale: float = 120.0,
                    decay: float = 0.7, steps: int = 1500, lr: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Loss gap of the best softmax model with hidden size d, for each d in ``ranks``.

    For each d: a :class:`~ntp_lib.bottleneck.heads.ContextModel` with a
    :class:`~ntp_lib.bottleneck.heads.FullHead` of width d is fitted; also reported: the gap of the
    truncated-SVD model (ideal contexts, the ideal head W* cut to rank d: a feasible rank-d model, so
    an upper bound on the best gap), the W-error of W* at d, and the numerical rank of the fitted
    log-probability matrix (<= d + 1).
    """
    g = torch.Generator().manual_seed(seed)
    spectrum = power_spectrum(k, scale, decay)
    logits, W_star = bn.spectrum_logits(num_contexts, vocab_size, spectrum, g)
    P = torch.softmax(logits, -1)
    curve = bn.w_error_curve(spectrum)
    U, S, Vh = torch.linalg.svd(logits, full_matrices=False)
    out: dict[str, Any] = {"ranks": list(ranks), "gap": [], "gap_truncated": [], "w_error": [],
                           "tail": [], "rank_log_q": [], "entropy": float(bn.entropy(P)),
                           "rank_log_p": bn.numerical_rank(torch.log(P)), "rank_logits": bn.numerical_rank(logits)}
    ids = torch.arange(num_contexts)
    for d in ranks:
        if not 1 <= d <= min(k, vocab_size):
            raise ValueError(f"each rank must be in [1, {min(k, vocab_size)}], got {d}")
        torch.manual_seed(seed)
        model = bn.ContextModel(num_contexts, bn.FullHead(d, vocab_size), d)
        gap = bn.fit_distributions(model, P, steps=steps, lr=lr, seed=seed)
        with torch.no_grad():
            log_q = model(ids)
        L_d = (U[:, :d] * S[:d]) @ Vh[:d]
        gap_t = float(bn.soft_cross_entropy(torch.log_softmax(L_d, -1), P) - bn.entropy(P))
        out["gap"].append(gap)
        out["gap_truncated"].append(gap_t)
        out["w_error"].append(float(curve[d]))
        out["tail"].append(float(np.sqrt((spectrum[d:] ** 2).sum())))
        out["rank_log_q"].append(bn.numerical_rank(log_q, 1e-5))
    out["spectrum"] = spectrum.tolist()
    out["P"] = P
    return out


def mos_experiment(P: torch.Tensor, d: int = 4, n_components: int = 4, steps: int = 1500, lr: float = 0.05,
                   seed: int = 0) -> dict[str, Any]:
    """Softmax and mixture-of-softmaxes heads of the same width d on targets P (C, V):
    loss gap and numerical rank of log q for each."""
    C, V = P.shape
    ids = torch.arange(C)
    out: dict[str, Any] = {"d": d, "n_components": n_components}
    for name, head in (("softmax", bn.FullHead(d, V)), ("mos", bn.MixtureOfSoftmaxes(d, V, n_components))):
        torch.manual_seed(seed)
        model = bn.ContextModel(C, head, d)
        out[f"gap_{name}"] = bn.fit_distributions(model, P, steps=steps, lr=lr, seed=seed)
        with torch.no_grad():
            out[f"rank_{name}"] = bn.numerical_rank(model(ids), 1e-5)
    return out


# --------------------------------------------------------------------------- n-gram spectra

def ngram_spectrum(vocab_size: int = 1024, context_length: int = 4, min_count: int = 1, k: int = 128,
                   prose_only: bool = False, text: str | None = None) -> dict[str, Any]:
    """W-error curve (d = 0..k) of the n-gram matrix of the offline corpus under a BPE tokenizer."""
    text = load_python_docs(prose_only=prose_only) if text is None else text
    tok = ngram.train_bpe(text, vocab_size)
    ids = ngram.encode(tok, text)
    M, contexts, counts = ngram.ngram_matrix(ids, context_length, vocab_size, min_count)
    k_eff = min(k, min(M.shape) - 1)
    sigma = ngram.top_singular_values(M, k_eff)
    curve = bn.w_error_curve(sigma, ngram.frobenius_norm(M))
    one_hot = float(np.mean(np.diff(M.indptr) == 1))
    return {"vocab_size": vocab_size, "context_length": context_length, "min_count": min_count,
            "tokens": int(ids.size), "contexts": int(M.shape[0]), "one_hot_rows": one_hot,
            "k": k_eff, "sigma": sigma.tolist(), "w_error": curve.tolist(),
            "d_half": ngram.rank_for_w_error(curve, 0.5)}


# --------------------------------------------------------------------------- small LMs

def lm_data(vocab_size: int = 1024, val_fraction: float = 0.1, prose_only: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Token ids of the offline corpus under a BPE tokenizer: (train (N1,), val (N2,), tokenizer)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    text = load_python_docs(prose_only=prose_only)
    tok = ngram.train_bpe(text, vocab_size)
    ids = torch.from_numpy(ngram.encode(tok, text))
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:], tok


@torch.no_grad()
def lm_metrics(model: GPT, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Validation loss, last-layer anisotropy (before and after the final LayerNorm), singular
    entropy and effective rank of the LM head: the quantities Godey et al. §4 trace through training."""
    states = model.hidden_states(x)
    logits = model.lm_head(states[-1])
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    W = model.lm_head.weight
    return {"val_loss": float(loss), "anisotropy": bn.anisotropy(states[-1].reshape(-1, states[-1].shape[-1])),
            "anisotropy_pre_ln": bn.anisotropy(states[-2].reshape(-1, states[-2].shape[-1])),
            "singular_entropy": bn.singular_entropy(W), "effective_rank": bn.effective_rank(W)}


def train_small_lm(train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, n_embd: int = 64,
                   n_layer: int = 2, n_head: int = 2, block_size: int = 64, batch_size: int = 16,
                   steps: int = 600, lr: float = 3e-3, eval_every: int = 50, n_eval: int = 32,
                   seed: int = 0) -> tuple[GPT, list[dict[str, Any]]]:
    """Train a small causal LM with an untied head (as Pythia) and trace :func:`lm_metrics`.

    ``train_loss`` is measured on ``n_eval`` fixed windows of the training stream, so that
    overfitting (train falls, validation rises) can be told apart from saturation.

    Metrics are recorded at step 0 and every ``eval_every`` steps.

    Returns:
        ``(model, history)``, one history row per evaluation: step, tokens, and the metrics.
    """
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                    n_embd=n_embd, tie_weights=False)
    model = GPT(cfg)
    xv, yv = fixed_windows(val_ids, n_eval, block_size)
    xt, yt = fixed_windows(train_ids, n_eval, block_size)

    def record(step: int, m: GPT) -> dict[str, Any]:
        with torch.no_grad():
            train_loss = float(m(xt, yt)[1])
        row = {"step": step, "tokens": step * batch_size * block_size, "train_loss": train_loss,
               **lm_metrics(m, xv, yv)}
        return row

    model.eval()
    history = [record(0, model)]
    tcfg = TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20), eval_every=eval_every,
                       log_every=0, seed=seed, progress=False)
    rows = train(model, tcfg, random_crops(train_ids, block_size, batch_size),
                 callback=lambda step, m: record(step, m))
    history += [{k: r[k] for k in history[0]} for r in rows]
    return model, history


@torch.no_grad()
def frozen_features(model: GPT, ids: torch.Tensor, n: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Final-layer features (n * T, d) of a frozen model and their next tokens (n * T,)."""
    x, y = fixed_windows(ids, n, block_size)
    h = model.hidden_states(x)[-1]
    return h.reshape(-1, h.shape[-1]), y.reshape(-1)


def fit_head(head: torch.nn.Module, H: torch.Tensor, y: torch.Tensor, steps: int = 300, lr: float = 1e-2,
             batch_size: int = 1024, seed: int = 0) -> torch.nn.Module:
    """Train a head (features (N, d) -> log-probs (N, V)) on frozen features with :func:`ntp_lib.train.train`."""
    n = H.shape[0]

    def get_batch(step: int, g: torch.Generator):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=g)
        return H[idx], y[idx]

    cfg = TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20), log_every=0, seed=seed,
                      progress=False)
    train(head, cfg, get_batch, loss_fn=lambda m, a, b: F.nll_loss(m(a), b))
    return head


@torch.no_grad()
def head_loss(head: torch.nn.Module, H: torch.Tensor, y: torch.Tensor) -> float:
    """Mean next-token loss of a head on features H (N, d) with targets y (N,)."""
    return float(F.nll_loss(head(H), y))


def rank_heads(model: GPT, train_ids: torch.Tensor, val_ids: torch.Tensor,
               ranks: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64), n_train: int = 2048, n_val: int = 64,
               steps: int = 400, lr: float = 1e-2, seed: int = 0) -> dict[str, Any]:
    """Godey et al. §5.1 at CPU scale: heads W = A B of rank r on the frozen final features.

    Also reports the model's own head and a full-rank head retrained the same way (the fair
    reference for the low-rank heads: same data, same steps).
    """
    block = model.config.block_size
    d, V = model.config.n_embd, model.config.vocab_size
    Htr, ytr = frozen_features(model, train_ids, n_train, block)
    Hva, yva = frozen_features(model, val_ids, n_val, block)
    out: dict[str, Any] = {"ranks": list(ranks), "loss": [], "d": d, "vocab_size": V}
    with torch.no_grad():
        out["loss_own_head"] = float(F.cross_entropy(model.lm_head(Hva), yva))
    torch.manual_seed(seed)
    full = fit_head(bn.FullHead(d, V), Htr, ytr, steps, lr, seed=seed)
    out["loss_full"] = head_loss(full, Hva, yva)
    for r in ranks:
        torch.manual_seed(seed)
        head = fit_head(bn.LowRankHead(d, V, r), Htr, ytr, steps, lr, seed=seed)
        out["loss"].append(head_loss(head, Hva, yva))
    return out


# --------------------------------------------------------------------------- CLI

def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(t) for t in text.split(","))


def _run_rank(args: argparse.Namespace) -> dict[str, Any]:
    out = rank_experiment(ranks=_ints(args.ranks), steps=args.steps, seed=args.seed)
    out.pop("P")
    return out


def _run_ngram(args: argparse.Namespace) -> dict[str, Any]:
    out = ngram_spectrum(args.vocab_size, args.context_length, args.min_count, args.k)
    out.pop("sigma")
    return out


def _run_small_lm(args: argparse.Namespace) -> dict[str, Any]:
    tr, va, _ = lm_data(args.vocab_size)
    _, history = train_small_lm(tr, va, args.vocab_size, n_embd=args.n_embd, steps=args.steps,
                                eval_every=args.eval_every, seed=args.seed)
    return {"n_embd": args.n_embd, "vocab_size": args.vocab_size, "steps": args.steps, "history": history}


def _run_rank_heads(args: argparse.Namespace) -> dict[str, Any]:
    tr, va, _ = lm_data(args.vocab_size)
    model, _ = train_small_lm(tr, va, args.vocab_size, n_embd=args.n_embd, steps=args.steps,
                              eval_every=args.steps, seed=args.seed)
    return rank_heads(model, tr, va, ranks=_ints(args.ranks), steps=args.head_steps, seed=args.seed)


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
