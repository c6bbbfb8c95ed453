"""Synthetic targets for the softmax bottleneck: ideal logits of a chosen spectrum, and fitting them.

The "ideal representations" setting of Godey, de la Clergerie & Sagot (COLM 2024, arXiv:2404.07647),
Theorem 5.3: :func:`spectrum_logits` builds target logits L* (C, V) whose ideal head has a chosen
singular spectrum; :func:`fit_distributions` fits a model (free contexts + a head, see
:mod:`ntp_lib.bottleneck.heads`) to the target distributions softmax(L*) and returns the loss gap,
the mean KL(p* || q), measured with :func:`soft_cross_entropy` minus the floor :func:`entropy`.

The experiments of the chapter on the rank bound, built from these pieces: :func:`rank_experiment`
(loss gap of rank-d softmax models against d, with :func:`power_spectrum` targets) and
:func:`mos_experiment` (softmax against a mixture of softmaxes of the same width).

Shape letters: C contexts, V vocabulary, k = len(spectrum).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ntp_lib.bottleneck.heads import ContextModel, FullHead, MixtureOfSoftmaxes
from ntp_lib.bottleneck.metrics import numerical_rank, w_error_curve


def spectrum_logits(num_contexts: int, vocab_size: int, spectrum: Any,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ideal logits L* = U diag(s) Q^T (C, V) with a chosen singular spectrum s (k,), k <= min(C, V).

    U (C, k) and Q (V, k) have orthonormal columns, so the ideal representations U are orthonormal
    and the ideal head W* = Q diag(s) (V, k) has singular values exactly ``spectrum``: the setting
    of Godey et al.'s Theorem 5.3. The target next-token distributions are softmax(L*) row-wise.

    Returns:
        (logits (C, V), W_star (V, k)), float64.
    """
    s = torch.as_tensor(np.asarray(spectrum, dtype=np.float64))
    if s.dim() != 1 or s.numel() < 1 or not torch.isfinite(s).all():
        raise ValueError(f"spectrum must be a finite 1-D vector, got shape {tuple(s.shape)}")
    k = s.numel()
    if num_contexts < k or vocab_size < k:
        raise ValueError(f"need num_contexts >= len(spectrum) and vocab_size >= len(spectrum), got "
                         f"{num_contexts}, {vocab_size}, {k}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(num_contexts, k, generator=g, dtype=torch.float64))
    Q, _ = torch.linalg.qr(torch.randn(vocab_size, k, generator=g, dtype=torch.float64))
    W_star = Q * s
    return U @ W_star.T, W_star


def soft_cross_entropy(log_q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_v p_v log q_v, for targets ``p`` (N, V) and log-probabilities (N, V)."""
    return -(p * log_q).sum(-1).mean()


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Mean row entropy -sum_v p_v log p_v of a distribution matrix (N, V): the loss floor."""
    return -(p * torch.log(p.clamp_min(1e-300))).sum(-1).mean()


def fit_distributions(model: nn.Module, targets: torch.Tensor, steps: int = 1000, lr: float = 0.03,
                      seed: int = 0) -> float:
    """Fit ``model`` (context ids (C,) -> log-probabilities (C, V)) to target rows ``targets`` (C, V).

    Full-batch AdamW on the soft cross-entropy through :func:`ntp_lib.train.train` (warmup, cosine
    decay). Returns the final loss minus the targets' entropy: the mean KL(p* || q) >= 0, the
    "loss gap" of Godey et al. Theorem 5.3.
    """
    from ntp_lib.train import TrainConfig, train

    targets = torch.as_tensor(targets, dtype=torch.float32)
    if targets.dim() != 2 or not torch.isfinite(targets).all():
        raise ValueError(f"targets must be a finite (C, V) matrix, got shape {tuple(targets.shape)}")
    ids = torch.arange(targets.shape[0])
    cfg = TrainConfig(steps=steps, lr=lr, warmup_steps=max(1, steps // 20), seed=seed, log_every=0,
                      progress=False)
    train(model, cfg, lambda step, g: (ids, targets), loss_fn=lambda m, x, y: soft_cross_entropy(m(x), y))
    with torch.no_grad():
        return float(soft_cross_entropy(model(ids), targets) - entropy(targets))


# --------------------------------------------------------------------------- the rank bound, measured

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
    logits, W_star = spectrum_logits(num_contexts, vocab_size, spectrum, g)
    P = torch.softmax(logits, -1)
    curve = w_error_curve(spectrum)
    U, S, Vh = torch.linalg.svd(logits, full_matrices=False)
    out: dict[str, Any] = {"ranks": list(ranks), "gap": [], "gap_truncated": [], "w_error": [],
                           "tail": [], "rank_log_q": [], "entropy": float(entropy(P)),
                           "rank_log_p": numerical_rank(torch.log(P)), "rank_logits": numerical_rank(logits)}
    ids = torch.arange(num_contexts)
    for d in ranks:
        if not 1 <= d <= min(k, vocab_size):
            raise ValueError(f"each rank must be in [1, {min(k, vocab_size)}], got {d}")
        torch.manual_seed(seed)
        model = ContextModel(num_contexts, FullHead(d, vocab_size), d)
        gap = fit_distributions(model, P, steps=steps, lr=lr, seed=seed)
        with torch.no_grad():
            log_q = model(ids)
        L_d = (U[:, :d] * S[:d]) @ Vh[:d]
        gap_t = float(soft_cross_entropy(torch.log_softmax(L_d, -1), P) - entropy(P))
        out["gap"].append(gap)
        out["gap_truncated"].append(gap_t)
        out["w_error"].append(float(curve[d]))
        out["tail"].append(float(np.sqrt((spectrum[d:] ** 2).sum())))
        out["rank_log_q"].append(numerical_rank(log_q, 1e-5))
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
    for name, head in (("softmax", FullHead(d, V)), ("mos", MixtureOfSoftmaxes(d, V, n_components))):
        torch.manual_seed(seed)
        model = ContextModel(C, head, d)
        out[f"gap_{name}"] = fit_distributions(model, P, steps=steps, lr=lr, seed=seed)
        with torch.no_grad():
            out[f"rank_{name}"] = numerical_rank(model(ids), 1e-5)
    return out
