"""The loss of the linear NTP model: the cross-entropy ``CE(W)`` and its gradient.

Thrampoulidis (NeurIPS 2024, arXiv:2402.18551), section 2: for a decoder ``W`` (V, d),

    CE(W) = - sum_j pi_j sum_{z in S_j} p_jz log softmax_z(W h_j)  >=  H,

the entropy floor ``H`` (:attr:`~ntp_lib.implicit_bias.data.NTPData.entropy_floor`), and
``grad CE(W) = sum_j pi_j (softmax(W h_j) - p_j) h_j^T``. The CE formula is written once, in
``_ce_of_log_probs``; :func:`cross_entropy`, the optimizers' inner loop and ``train_ufm`` all call it.
"""

from __future__ import annotations

import numpy as np

from ntp_lib.implicit_bias.data import NTPData, _check_W


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an (m, V) array, computed stably."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    # Floor at -600: probabilities below e^-600 are set to e^-600 (harmless; it changes CE by
    # < V e^-600) so that exp never returns subnormal floats, whose arithmetic is ~10x slower.
    z = np.maximum(logits - logits.max(axis=-1, keepdims=True), -600.0)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _ce_of_log_probs(logp: np.ndarray, data: NTPData) -> np.floating:
    """``- sum_j pi_j sum_{z in S_j} p_jz logp_jz`` for (m, V) log-probabilities ``logp``."""
    return -(data.weights * np.where(data.support_mask, data.probs * logp, 0.0).sum(1)).sum()


def cross_entropy(W, data: NTPData) -> float:
    """``CE(W) = - sum_j pi_j sum_{z in S_j} p_jz log softmax_z(W h_j)`` (paper section 2)."""
    W = _check_W(W, data)
    logp = _log_softmax(data.contexts @ W.T)                         # (m, V)
    return float(_ce_of_log_probs(logp, data))


def ce_gradient(W, data: NTPData) -> np.ndarray:
    """``grad CE(W) = sum_j pi_j (softmax(W h_j) - p_j) h_j^T``, shape (V, d).

    Every column sums to zero, so gradient steps never change the ``1 u^T`` component of W.
    """
    W = _check_W(W, data)
    R = softmax(data.contexts @ W.T) - data.probs                     # (m, V)
    return (R * data.weights[:, None]).T @ data.contexts


def _ce_grad_fast(W: np.ndarray, data: NTPData) -> tuple[float, np.ndarray]:
    """CE and its gradient without input checks (the optimizers' inner loop)."""
    logits = data.contexts @ W.T
    logp = _log_softmax(logits)
    ce = _ce_of_log_probs(logp, data)
    G = ((np.exp(logp) - data.probs) * data.weights[:, None]).T @ data.contexts
    return float(ce), G
