"""The geometry of the linear NTP model: the data subspace F, ``W*``, the NTP-SVM ``W_mm`` and margins.

Thrampoulidis (NeurIPS 2024, arXiv:2402.18551): Definition 1 (NTP_H-compatibility, the log-odds
equations; their minimum-norm solution ``W*`` lies in F) in :func:`check_compatibility`,
:func:`w_star` and :func:`project_F`; Definition 2 (NTP-separability, constraints (6a)-(6b)) in
:func:`check_separability`; Definition 3 (the NTP-SVM ``argmin ||W|| s.t. (6a)-(6b)``) in
:func:`w_mm`, with its max-norm and spectral variants. :func:`margin`, :func:`normalized_margin`,
:func:`norm_of`, :func:`cosine` and :func:`center` measure how far a W is from these directions;
:func:`quotient_norm` measures a W modulo the ``1 u^T`` shifts the softmax ignores.
:func:`project_out_log_odds` gives the projected context embeddings of the subspace collapse of
Zhao et al. (2024), for learned embeddings. :func:`svm_duals` gives the NTP-SVM's KKT multipliers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ntp_lib.implicit_bias.data import NTPData, _check_W, _one_blas_thread
from ntp_lib.runtime import as_finite_array

NORMS = ("fro", "max", "spectral")


@dataclass
class Check:
    """The outcome of :func:`check_compatibility` or :func:`check_separability`.

    ``holds`` says whether the condition holds; ``certificate`` is a W (V, d) that proves it
    (``None`` when it fails); ``reason`` says why, in words, with the number that decided.
    """
    holds: bool
    certificate: np.ndarray | None
    reason: str

    def __bool__(self) -> bool:
        return self.holds


def center(W: np.ndarray) -> np.ndarray:
    """Remove the ``1 u^T`` component (subtract each column's mean): it never changes the softmax."""
    W = np.asarray(W, dtype=float)
    return W - W.mean(axis=0, keepdims=True)


def project_F(W, data: NTPData) -> np.ndarray:
    """Orthogonal projection (Frobenius inner product) of W (V, d) onto the data subspace F."""
    W = _check_W(W, data)
    Q = data.F_basis
    return (Q @ (Q.T @ W.ravel())).reshape(data.V, data.d)


def w_star(data: NTPData, check: bool = True) -> np.ndarray:
    """``W*``: the minimum-Frobenius-norm solution of the log-odds equations (Def. 1), shape (V, d).

    It solves ``(e_z - e_z')^T W h_j = log(p_jz / p_jz')`` for all ``z, z' in S_j`` and lies in F
    (the row space of the equations), so it is the unique solution inside F.

    Raises:
        ValueError: if ``check`` and the equations have no solution (not NTP_H-compatible).
    """
    c = data.constraints
    if c["A_eq"].shape[0] == 0:                  # one-hot data: F = {0}
        return np.zeros((data.V, data.d))
    with _one_blas_thread():
        w, *_ = np.linalg.lstsq(c["A_eq"], c["b_eq"], rcond=None)
    if check:
        res = np.abs(c["A_eq"] @ w - c["b_eq"]).max()
        if res > 1e-6 * (1 + np.abs(c["b_eq"]).max()):
            raise ValueError(f"data is not NTP_H-compatible: the log-odds equations leave a "
                             f"residual of {res:.3g} (use check_compatibility for details)")
    return w.reshape(data.V, data.d)


def check_compatibility(data: NTPData, tol: float = 1e-6) -> Check:
    """Definition 1 (NTP_H-compatibility): do the log-odds equations have a solution?

    Certificate: ``W*``. Failure reason: the least-squares residual, which is > tol.
    """
    c = data.constraints
    if c["A_eq"].shape[0] == 0:
        return Check(True, np.zeros((data.V, data.d)), "one-hot data: no equations to satisfy")
    with _one_blas_thread():
        w, *_ = np.linalg.lstsq(c["A_eq"], c["b_eq"], rcond=None)
    res = float(np.abs(c["A_eq"] @ w - c["b_eq"]).max())
    bound = tol * (1 + np.abs(c["b_eq"]).max())
    if res <= bound:
        # The residual itself sits at machine precision and differs between CPUs: report the bound.
        return Check(True, w.reshape(data.V, data.d),
                     f"W* solves all {len(c['b_eq'])} log-odds equations (max residual < {bound:.0e})")
    return Check(False, None, f"the {len(c['b_eq'])} log-odds equations are inconsistent: the best "
                 f"least-squares W misses one by {res:.3g}")


def check_separability(data: NTPData) -> Check:
    """Definition 2 (NTP-separability): is there W with (6a) and (6b)? Solved as an LP (HiGHS).

    Certificate: a feasible W (not the NTP-SVM; use :func:`w_mm` for that). Failure reason: the
    LP's infeasibility status.
    """
    from scipy.optimize import linprog

    c = data.constraints
    n = data.V * data.d
    if c["A_in"].shape[0] == 0:
        return Check(True, np.zeros((data.V, data.d)), "every support is the whole vocabulary: "
                     "(6b) is empty")
    for method in ("highs-ds", "highs-ipm"):   # the dual simplex rarely ends "unknown"; then IPM
        res = linprog(np.zeros(n), A_ub=-c["A_in"], b_ub=-np.ones(len(c["A_in"])),
                      A_eq=c["A_eq"] if len(c["A_eq"]) else None,
                      b_eq=np.zeros(len(c["A_eq"])) if len(c["A_eq"]) else None,
                      bounds=(None, None), method=method)
        if res.status in (0, 2):
            break
    if res.status == 0:
        return Check(True, res.x.reshape(data.V, data.d),
                     f"a W meets all {len(c['A_eq'])} equalities (6a) and {len(c['A_in'])} margins (6b)")
    if res.status == 2:
        return Check(False, None, f"no W satisfies (6a)-(6b): the LP with {len(c['A_eq'])} equalities "
                     f"and {len(c['A_in'])} margin constraints is infeasible")
    raise RuntimeError(f"the separability LP did not finish: {res.message}")


def w_mm(data: NTPData, norm: str = "fro") -> np.ndarray:
    """The NTP-SVM (Def. 3): ``argmin ||W|| s.t. (6a) and (6b)``, shape (V, d), solved with cvxpy.

    Args:
        norm: ``"fro"`` (the paper's Frobenius norm, a strongly convex QP: ``cp.sum_squares``,
            NOT ``cp.norm2`` which is the spectral norm of a matrix), ``"max"`` (entrywise
            max-norm, an LP; the bias of sign descent per Fan et al. 2025) or ``"spectral"``
            (``sigma_max(W)``, an SDP-representable problem). Only "fro" has a unique solution.

    Raises:
        ValueError: for an unknown norm, or if the data are not NTP-separable.
    """
    return _ntp_svm(data, norm)[0]


def _ntp_svm(data: NTPData, norm: str):
    """Solve the NTP-SVM of :func:`w_mm`: ``(W_mm, the cvxpy constraint (6b))``, the constraint
    ``None`` when (6b) is empty. One problem, shared by :func:`w_mm` and :func:`svm_duals`."""
    import cvxpy as cp

    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    c = data.constraints
    if c["A_in"].shape[0] == 0:
        return np.zeros((data.V, data.d)), None
    w = cp.Variable(data.V * data.d)
    W = cp.reshape(w, (data.V, data.d), order="C")
    objective = {"fro": lambda: cp.sum_squares(w),          # ||W||_F^2
                 "max": lambda: cp.norm(w, "inf"),          # max_ij |W_ij|
                 "spectral": lambda: cp.sigma_max(W)}[norm]()
    cons = [c["A_in"] @ w >= 1]
    if c["A_eq"].shape[0]:
        cons.append(c["A_eq"] @ w == 0)
    prob = cp.Problem(cp.Minimize(objective), cons)
    with warnings.catch_warnings():   # "optimal_inaccurate" is accepted below; no stderr chatter
        warnings.simplefilter("ignore", UserWarning)
        if norm == "spectral":   # an SDP: Clarabel fails on it here, SCS solves it (to ~1e-6)
            prob.solve(solver=cp.SCS, eps=1e-7, max_iters=100_000)
        else:
            prob.solve(solver=cp.CLARABEL)
    if prob.status in ("infeasible", "infeasible_inaccurate"):
        raise ValueError("data is not NTP-separable: the NTP-SVM constraints (6a)-(6b) are infeasible "
                         "(use check_separability for details)")
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"NTP-SVM solver finished with status {prob.status!r}")
    return np.asarray(w.value).reshape(data.V, data.d), cons[0]


def margin(W, data: NTPData) -> float:
    """``min_j min_{z in S_j, v not in S_j} (e_z - e_v)^T W h_j``: the in- vs out-of-support margin."""
    W = _check_W(W, data)
    L = data.contexts @ W.T                                            # (m, V)
    inside = np.where(data.support_mask, L, np.inf).min(1)
    outside = np.where(data.support_mask, -np.inf, L).max(1)
    return float((inside - outside).min())


def normalized_margin(W, data: NTPData, norm: str = "fro", quotient: bool = False) -> float:
    """``margin(P_perp W) / ||P_perp W||``: the margin per unit norm of W's part in F-perp.

    F-perp is exactly the set of W that satisfy (6a), and it holds every NTP-SVM, so for each norm
    ``normalized_margin(W) <= 1 / ||w_mm(data, norm)||``, with equality iff W's F-perp part points
    along a max-margin direction of that norm (Def. 3 and its max-norm / spectral variants).

    With ``quotient=True`` the norm is :func:`quotient_norm`, ``min_u ||P_perp W - 1 u^T||``: a
    ``1 u^T`` part (which Adam and sign descent grow) changes neither the softmax nor the margin, so
    it should not count. The bound is the same, because (6a)-(6b) are invariant to ``1 u^T`` and
    every ``w_mm`` already minimizes over that freedom.
    """
    W = _check_W(W, data)
    Wp = W - project_F(W, data)
    n = quotient_norm(Wp, norm) if quotient else norm_of(Wp, norm)
    return margin(Wp, data) / n if n > 0 else 0.0


def norm_of(W: np.ndarray, norm: str) -> float:
    """``||W||`` for ``norm`` in ("fro", "max", "spectral")."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if norm == "fro":
        return float(np.linalg.norm(W))
    if norm == "max":
        return float(np.abs(W).max())
    return float(np.linalg.norm(W, 2))


def cosine(A: np.ndarray, B: np.ndarray) -> float:
    """Frobenius cosine ``<A, B> / (||A|| ||B||)`` (0 if either is zero)."""
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    return float((A * B).sum() / (na * nb)) if na > 0 and nb > 0 else 0.0


def quotient_norm(W: np.ndarray, norm: str) -> float:
    """``min_u ||W - 1 u^T||``: the norm of W's class modulo ``1 u^T`` (u in R^d), which the softmax ignores.

    Closed forms (the book's, with their one-line proofs), for W of shape (V, d):

    - ``"fro"`` and ``"spectral"``: the norm of :func:`center` (W). The centring projector
      ``C = I - 1 1^T / V`` maps every ``W - 1 u^T`` to ``C W`` and has spectral norm 1, so
      ``sigma_i(C W) <= sigma_i(W - 1 u^T)`` for every i and every u.
    - ``"max"``: ``max_k (max_i W_ik - min_i W_ik) / 2``. Each column k is shifted by its own
      ``u_k``, and the shift that minimizes ``max_i |W_ik - u_k|`` is the midrange of the column.

    >>> W = np.array([[4.0, 1.0], [0.0, 1.0], [2.0, -1.0]])
    >>> norm_of(W, "max"), quotient_norm(W, "max")
    (4.0, 2.0)
    >>> shifted = W + np.outer(np.ones(3), [5.0, -3.0])
    >>> bool(np.isclose(quotient_norm(shifted, "spectral"), quotient_norm(W, "spectral")))
    True
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    W = np.asarray(W, dtype=float)
    if norm == "max":
        return float((W.max(axis=0) - W.min(axis=0)).max() / 2)
    return norm_of(center(W), norm)


def project_out_log_odds(W, H, data: NTPData) -> np.ndarray:
    """Context embeddings with their in-support log-odds directions removed, shape (d, m).

    Column j is ``h_j`` projected onto the orthogonal complement of
    ``span{w_z - w_z' : z, z' in S_j}`` (w_z the rows of W, shape (V, d); h_j the columns of H,
    shape (d, m)). The removed part is the one that sets the in-support log-odds
    ``(w_z - w_z')^T h_j``; what remains gives every in-support token the same logit. This is the
    book's construction of the projection under which Zhao et al. (2024) predict that contexts with
    the same support collapse ("subspace collapse"); a context with ``|S_j| = 1`` is left as is.

    Raises:
        ValueError: if W is not (V, d) or H is not (d, m) for the data's V and m.

    >>> data = NTPData(np.zeros((2, 1)), [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> project_out_log_odds(W, np.array([[2.0, 1.0], [1.0, 1.0]]), data).round(6).tolist()
    [[1.5, 1.0], [1.5, 1.0]]
    """
    W = as_finite_array("W", W, 2)
    H = as_finite_array("H", H, 2)
    if W.shape[0] != data.V or H.shape != (W.shape[1], data.m):
        raise ValueError(f"W must be (V, d) and H (d, m) with V={data.V}, m={data.m} and a common d, "
                         f"got W {W.shape} and H {H.shape}")
    out = H.copy()
    for j, S in enumerate(data.supports):
        if len(S) > 1:
            D = (W[S[1:]] - W[S[0]]).T                             # (d, |S_j| - 1)
            U, sv, _ = np.linalg.svd(D, full_matrices=False)
            Q = U[:, sv > sv.max(initial=0.0) * max(D.shape) * np.finfo(float).eps]   # basis of span(D)
            out[:, j] -= Q @ (Q.T @ H[:, j])
    return out


def svm_duals(data: NTPData) -> np.ndarray:
    """The multipliers ``lambda_jv >= 0`` of the margin constraints (6b) at the NTP-SVM, shape (m, V).

    Def. 3 written as ``min (1/2) ||W||_F^2`` s.t. (6a)-(6b) has the KKT conditions (for any
    anchors ``a_j in S_j``)::

        W_mm = P_perp( sum_{j, v not in S_j} lambda_jv (e_{a_j} - e_v) h_j^T )    (stationarity)
        lambda_jv >= 0,    lambda_jv ((e_{a_j} - e_v)^T W_mm h_j - 1) = 0          (slackness)

    where ``P_perp`` removes the F-part, which the multipliers of (6a) supply. Under (6a) the
    constraints (6b) for different ``z in S_j`` coincide, so one multiplier per (context j,
    out-of-support token v) is determined, as in ``data.constraints``; entry ``[j, v]`` is 0 for
    ``v in S_j`` (no constraint). Slackness gives ``sum(lambda) = ||W_mm||_F^2``. The values are the
    dual variables of the problem :func:`w_mm` solves (Clarabel, an interior-point method): an
    inactive constraint gets a multiplier at the solver's tolerance (about 1e-8), not an exact 0.

    Raises:
        ValueError: if the data are not NTP-separable (there is no NTP-SVM).

    >>> data = NTPData([[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    >>> svm_duals(data).round(4).tolist()
    [[0.0, 0.0, 0.6667], [0.3333, 0.3333, 0.0]]
    """
    _, con = _ntp_svm(data, "fro")
    lam = np.zeros((data.m, data.V))
    if con is not None:
        # the rows of A_in are the pairs (j, v not in S_j) in row-major order; the solved objective is
        # ||W||_F^2 = 2 * (1/2)||W||_F^2, so its multipliers are twice those of the KKT form above
        lam[~data.support_mask] = np.asarray(con.dual_value, dtype=float) / 2
    return lam
