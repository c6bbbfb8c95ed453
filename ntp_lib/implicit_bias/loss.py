"""The loss of the linear NTP model: the cross-entropy ``CE(W)`` and its gradient.

Thrampoulidis (NeurIPS 2024, arXiv:2402.18551), section 2: for a decoder ``W`` (V, d),

    CE(W) = - sum_j pi_j sum_{z in S_j} p_jz log softmax_z(W h_j)  >=  H,

the entropy floor ``H`` (:attr:`~ntp_lib.implicit_bias.data.NTPData.entropy_floor`), and
``grad CE(W) = sum_j pi_j (softmax(W h_j) - p_j) h_j^T``; :func:`ce_hessian` and
:func:`limit_hessian` give the curvature that bounds GD's step. The CE formula is written once, in
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


def _hessian_of_probs(S: np.ndarray, data: NTPData) -> np.ndarray:
    """``sum_j pi_j kron(diag(s_j) - s_j s_j^T, h_j h_j^T)`` for (m, V) rows ``s_j``: shape (V*d, V*d)."""
    V, d = data.V, data.d
    cov = S[:, :, None] * np.eye(V) - S[:, :, None] * S[:, None, :]      # (m, V, V)
    hh = data.contexts[:, :, None] * data.contexts[:, None, :]          # (m, d, d)
    Hs = np.einsum("j,jab,jkl->akbl", data.weights, cov, hh)            # (V, d, V, d)
    return Hs.reshape(V * d, V * d)


def ce_hessian(W, data: NTPData) -> np.ndarray:
    """The Hessian of CE at W on vec(W) (row-major, index ``v * d + k``), shape (V*d, V*d).

    ``sum_j pi_j kron(diag(s_j) - s_j s_j^T, h_j h_j^T)`` with ``s_j = softmax(W h_j)``: the
    softmax Jacobian ``diag(s) - s s^T`` (spectral norm <= 1/2) sandwiched by the context.
    """
    W = _check_W(W, data)
    return _hessian_of_probs(softmax(data.contexts @ W.T), data)


def limit_hessian(data: NTPData) -> np.ndarray:
    """The Hessian of CE in the limit of Theorem 2, shape (V*d, V*d).

    Along ``W* + R W_mm`` with ``R -> infinity`` the out-of-support probabilities vanish and the
    in-support ones tend to ``p_j``, so the Hessian tends to :func:`ce_hessian` with ``s_j = p_j``.
    Its quadratic form is ``sum_j pi_j Var_{z ~ p_j}(w_z^T h_j)``: zero on F-perp (where (6a) makes
    ``w_z^T h_j`` constant on each support), so it acts on the data subspace F only.
    """
    return _hessian_of_probs(data.probs, data)


def _ce_grad_fast(W: np.ndarray, data: NTPData) -> tuple[float, np.ndarray]:
    """CE and its gradient without input checks (the optimizers' inner loop)."""
    logits = data.contexts @ W.T
    logp = _log_softmax(logits)
    ce = _ce_of_log_probs(logp, data)
    G = ((np.exp(logp) - data.probs) * data.weights[:, None]).T @ data.contexts
    return float(ce), G
