"""The dynamics: optimizers on CE and the quantities the paper tracks along their paths.

Thrampoulidis (NeurIPS 2024, arXiv:2402.18551): :func:`ridge_path` follows the regularization path
of Theorem 1; :func:`optimize` runs GD (with the safe step :func:`smoothness_step` of Lemmas 2-3),
normalized GD, Adam and sign descent (section 5, appendix A); :func:`curvature_on_F` gives the
largest stable step and the time scale of the F-part near the limit. Both return a :class:`Trajectory` of
what the figures plot: the excess CE (Prop. 1), the norm (Lemma 3) and the convergence to ``W*`` in
F and to the NTP-SVM direction off F (Theorem 2). :func:`train_ufm` trains the
unconstrained-features model of Zhao et al. (2024).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ntp_lib.implicit_bias.data import NTPData, _check_W, _one_blas_thread
from ntp_lib.implicit_bias.geometry import center, cosine, margin, project_F, w_mm, w_star
from ntp_lib.implicit_bias.loss import _ce_grad_fast, _ce_of_log_probs, _log_softmax, limit_hessian
from ntp_lib.runtime import check_positive_ints

OPTIMIZERS = ("gd", "ngd", "adam", "sign", "sgd")


@dataclass
class Trajectory:
    """What the paper's figures plot, recorded at the points ``x`` (steps, or 1/lambda for a path).

    All arrays have the length of ``x``. Cosines use the centred iterate (its ``1 u^T`` part
    removed: it never changes the loss, and only Adam and sign descent create one).

    - ``excess_ce``: CE(W_k) - H (Prop. 1: > 0, -> 0).
    - ``norm``: ||W_k||_F (Lemma 3: -> infinity).
    - ``cos_mm``: cos(W_k, W_mm); ``cos_mm_shifted``: cos(W_k - W*, W_mm) (Thm 2: both -> 1).
    - ``dist_F``: ||P_F(W_k) - W*||_F (Thm 2: -> 0).
    - ``margin``: the normalized margin ``margin(W_k) / ||W_k||_F``.
    - ``cos_perp``: cos(P_perp W_k, W_mm), the direction of the part off F alone (Thm 2: -> 1).
    - ``margin_perp``: ``margin(P_perp W_k)``, unnormalized: < 0 while the supports are not yet
      separated (no W_mm-like direction yet); in the late phase it grows like ``log k``.
    """
    name: str
    x_name: str
    x: np.ndarray
    excess_ce: np.ndarray
    norm: np.ndarray
    cos_mm: np.ndarray
    cos_mm_shifted: np.ndarray
    dist_F: np.ndarray
    margin: np.ndarray
    cos_perp: np.ndarray
    margin_perp: np.ndarray
    W: np.ndarray = field(repr=False)
    lr: float | None = None

    def final(self) -> dict[str, float]:
        """The last recorded values, as plain floats."""
        keys = ("excess_ce", "norm", "cos_mm", "cos_mm_shifted", "dist_F", "margin", "cos_perp",
                "margin_perp")
        out = {k: float(getattr(self, k)[-1]) for k in keys}
        out[self.x_name] = float(self.x[-1])
        return out


class _Recorder:
    def __init__(self, data: NTPData, Wmm: np.ndarray, Wst: np.ndarray):
        self.data, self.Wmm, self.Wst = data, Wmm, Wst
        self.H = data.entropy_floor
        self.rows: list[tuple[float, ...]] = []

    def __call__(self, x: float, W: np.ndarray, ce: float) -> None:
        Wc = center(W)
        WF = project_F(Wc, self.data)
        self.rows.append((x, ce - self.H, np.linalg.norm(Wc), cosine(Wc, self.Wmm),
                          cosine(Wc - self.Wst, self.Wmm), float(np.linalg.norm(WF - self.Wst)),
                          margin(Wc, self.data) / max(np.linalg.norm(Wc), 1e-300),
                          cosine(Wc - WF, self.Wmm), margin(Wc - WF, self.data)))

    def trajectory(self, name: str, x_name: str, W: np.ndarray, lr: float | None) -> Trajectory:
        a = np.array(self.rows).T
        return Trajectory(name, x_name, *a, W=W, lr=lr)


def record_points(steps: int, n: int = 60) -> np.ndarray:
    """About ``n`` log-spaced step numbers in [1, steps] (ints, unique, ending at ``steps``)."""
    return np.unique(np.round(np.geomspace(1, steps, n)).astype(int))


def smoothness_step(data: NTPData) -> float:
    """The safe constant GD step ``1 / lambda_max(sum_j pi_j h_j h_j^T)`` (Lemmas 2-3).

    The softmax Jacobian has spectral norm <= 1/2, so CE is L-smooth with
    ``L <= lambda_max / 2`` and this step is ``1 / (2L)``.
    """
    Sigma = (data.contexts * data.weights[:, None]).T @ data.contexts
    return float(1.0 / np.linalg.eigvalsh(Sigma)[-1])


def curvature_on_F(data: NTPData) -> tuple[float, float]:
    """``(lambda_min, lambda_max)`` of :func:`~ntp_lib.implicit_bias.loss.limit_hessian` on F.

    Near the limit of Theorem 2 the loss is a quadratic in the F-part (plus terms of the size of the
    out-of-support mass), so GD with step ``lr`` is stable there only if ``lr < 2 / lambda_max``, and
    the slowest F direction shrinks by a factor e about every ``1 / (lr * lambda_min)`` steps.
    (The book's reading of the theorem, not a statement of the paper.)
    """
    Q = data.F_basis
    if Q.shape[1] == 0:
        raise ValueError("F = {0} (one-hot data): there is no F-part to converge")
    with _one_blas_thread():
        ev = np.linalg.eigvalsh(Q.T @ limit_hessian(data) @ Q)
    return float(ev[0]), float(ev[-1])


def optimize(data: NTPData, optimizer: str = "gd", steps: int = 10_000, lr: float | None = None,
             betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8, W0: np.ndarray | None = None,
             n_records: int = 60, Wmm: np.ndarray | None = None,
             Wst: np.ndarray | None = None, lr_power: float = 0.0,
             callback: Callable[[int, np.ndarray], None] | None = None, batch_size: int = 32,
             seed: int = 0) -> Trajectory:
    """Minimize CE over the linear decoder from ``W0`` (default 0) and record the paper's panels.

    Optimizers (paper section 5 and appendix A):

    - ``"gd"``: ``W <- W - lr grad``; default ``lr`` = :func:`smoothness_step` (Lemma 2's safe step).
    - ``"ngd"``: normalized GD, ``W <- W - lr grad / ||grad||_F``; default lr 0.01.
    - ``"adam"``: Adam with ``betas`` (paper: 0.9, 0.99), bias correction; default lr 0.01.
    - ``"sign"``: sign descent ``W <- W - lr sign(grad)``; default lr 0.01.
    - ``"sgd"``: stochastic GD on ``batch_size`` (context, next token) pairs drawn i.i.d. from
      ``pi_j p_jz`` each step (seeded by ``seed``), the unbiased estimate
      ``mean_i (softmax(W h_ji) - e_zi) h_ji^T`` of the gradient; default lr as for GD.

    The step at iteration k is ``lr * k ** -lr_power`` (``lr_power=0``: constant; sign descent
    with a constant step stalls in a cycle, a decaying one keeps going, as in Fan et al. 2025).
    ``callback(k, W)``, if given, is called at every recorded step (e.g. to measure other margins).
    ``Wmm`` and ``Wst`` (the references) are computed when not given. Returns a
    :class:`Trajectory` recorded at about ``n_records`` log-spaced steps.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    check_positive_ints(steps=steps)
    check_positive_ints(batch_size=batch_size)
    if lr is None:
        lr = smoothness_step(data) if optimizer in ("gd", "sgd") else 0.01
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not (np.isfinite(lr_power) and 0 <= lr_power <= 1):
        raise ValueError(f"lr_power must lie in [0, 1], got {lr_power!r}")
    if not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
    W = np.zeros((data.V, data.d)) if W0 is None else _check_W(W0, data).copy()
    with _one_blas_thread():
        return _optimize_loop(data, optimizer, int(steps), float(lr), float(lr_power), betas, eps, W,
                              n_records, Wmm, Wst, callback, int(batch_size), seed)


def _sampled_gradient(W: np.ndarray, data: NTPData, rng: np.random.Generator, joint: np.ndarray,
                      batch_size: int) -> np.ndarray:
    """SGD's gradient estimate from ``batch_size`` pairs ``(j, z) ~ pi_j p_jz``, shape (V, d)."""
    pairs = rng.choice(joint.size, size=batch_size, p=joint)
    j, z = np.divmod(pairs, data.V)
    R = np.exp(_log_softmax(data.contexts[j] @ W.T))                   # (B, V)
    R[np.arange(batch_size), z] -= 1.0
    return R.T @ data.contexts[j] / batch_size


def _optimize_loop(data, optimizer, steps, lr0, lr_power, betas, eps, W, n_records, Wmm,
                   Wst, callback, batch_size, seed) -> Trajectory:
    rec = _Recorder(data, w_mm(data) if Wmm is None else Wmm, w_star(data) if Wst is None else Wst)
    when = set(record_points(steps, n_records).tolist())
    M, S = np.zeros_like(W), np.zeros_like(W)
    b1, b2 = betas
    rng = np.random.default_rng(seed)
    joint = (data.weights[:, None] * data.probs).ravel()
    for k in range(1, steps + 1):
        if optimizer == "sgd":
            G = _sampled_gradient(W, data, rng, joint, batch_size)
        else:
            G = _ce_grad_fast(W, data)[1]
        lr = lr0 * k ** -lr_power if lr_power else lr0
        if optimizer in ("gd", "sgd"):
            W -= lr * G
        elif optimizer == "ngd":
            W -= lr * G / max(np.linalg.norm(G), 1e-300)
        elif optimizer == "sign":
            W -= lr * np.sign(G)
        else:
            M = b1 * M + (1 - b1) * G
            S = b2 * S + (1 - b2) * G * G
            W -= lr * (M / (1 - b1 ** k)) / (np.sqrt(S / (1 - b2 ** k)) + eps)
        if k in when:
            rec(k, W, _ce_grad_fast(W, data)[0])
            if callback is not None:
                callback(k, W.copy())
    return rec.trajectory(optimizer, "step", W, lr0)


def ridge_path(data: NTPData, lambdas: Sequence[float], Wmm: np.ndarray | None = None,
               Wst: np.ndarray | None = None, tol: float = 1e-10) -> Trajectory:
    """The ridge regularization path ``W_lambda = argmin CE(W) + lambda/2 ||W||_F^2`` (Thm 1).

    Solved with L-BFGS for each lambda in decreasing order, warm-started from the previous
    solution. The trajectory's ``x`` is ``1/lambda`` (increasing), ``lr`` is None.
    """
    from scipy.optimize import minimize

    lam = np.sort(np.asarray(lambdas, dtype=float))[::-1]
    if lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
        raise ValueError(f"lambdas must be a non-empty list of finite numbers > 0, got {lambdas!r}")
    rec = _Recorder(data, w_mm(data) if Wmm is None else Wmm, w_star(data) if Wst is None else Wst)
    shape = (data.V, data.d)
    w = np.zeros(data.V * data.d)
    for lm in lam:
        def f(v, lm=lm):
            ce, G = _ce_grad_fast(v.reshape(shape), data)
            return ce + 0.5 * lm * v @ v, G.ravel() + lm * v
        w = minimize(f, w, jac=True, method="L-BFGS-B",
                     options={"maxiter": 20_000, "gtol": tol, "ftol": 1e-15}).x
        rec(1.0 / lm, w.reshape(shape), _ce_grad_fast(w.reshape(shape), data)[0])
    return rec.trajectory("ridge", "inv_lambda", w.reshape(shape), None)


def train_ufm(data: NTPData, d: int, lam: float = 1e-3, steps: int = 5000, lr: float = 0.5,
              seed: int = 0) -> dict[str, np.ndarray]:
    """The unconstrained-features model (Zhao et al. 2024): learn W (V, d) and H (d, m) jointly.

    Minimizes ``CE(L) + lam/2 (||W||_F^2 + ||H||_F^2)`` over logits ``L = W H`` (V, m) by plain
    GD from a small random start; only the supports and probabilities of ``data`` are used
    (its fixed ``contexts`` are ignored). Since ``min_{WH=L} (||W||^2 + ||H||^2)/2 = ||L||_*``, this
    is CE with a nuclear-norm penalty on the logits.

    Returns a dict with ``W``, ``H``, ``logits`` (V, m) and ``loss`` (per step).
    """
    check_positive_ints(d=d, steps=steps)
    if not (lam > 0 and np.isfinite(lam)):
        raise ValueError(f"lam must be a finite number > 0, got {lam!r}")
    rng = np.random.default_rng(seed)
    W = 0.1 * rng.standard_normal((data.V, d))
    Hm = 0.1 * rng.standard_normal((d, data.m))
    pi, P = data.weights, data.probs
    loss = np.empty(int(steps))
    for k in range(int(steps)):
        L = W @ Hm                                                    # (V, m)
        logp = _log_softmax(L.T)                                      # (m, V)
        ce = _ce_of_log_probs(logp, data)
        loss[k] = ce + 0.5 * lam * ((W * W).sum() + (Hm * Hm).sum())
        R = ((np.exp(logp) - P) * pi[:, None]).T                      # dCE/dL, (V, m)
        gW, gH = R @ Hm.T + lam * W, W.T @ R + lam * Hm
        W, Hm = W - lr * gW, Hm - lr * gH
    return {"W": W, "H": Hm, "logits": W @ Hm, "loss": loss}
