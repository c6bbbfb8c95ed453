"""Part I: the implicit bias of next-token prediction in linear models (Thrampoulidis, NeurIPS 2024).

The model (paper section 2). ``m`` distinct contexts with fixed embeddings ``h_j`` (rows of
``contexts``, shape (m, d)), context frequencies ``pi_j`` (``weights``, shape (m,)), and for each
context an empirical next-token distribution ``p_j`` over a vocabulary of ``V`` tokens (rows of
``probs``, shape (m, V)) with support ``S_j = {z : p_jz > 0}``. A linear decoder ``W`` (V, d) gives
logits ``W h_j`` and the cross-entropy

    CE(W) = - sum_j pi_j sum_{z in S_j} p_jz log softmax_z(W h_j)  >=  H (the entropy floor).

What this module provides, with the paper's names:

- :class:`NTPData` and generators: :func:`toy_2d` (Figs 1-2), :func:`random_ntp_data`
  (the overparameterized setting of Figs 4-5), :func:`from_corpus` (real text).
- The geometry: :func:`w_mm` (NTP-SVM, Def. 3), :func:`w_star` (the finite part in the data
  subspace F), :func:`project_F`, :func:`check_compatibility` (Def. 1),
  :func:`check_separability` (Def. 2), :func:`margin`.
- The loss: :func:`cross_entropy`, :func:`ce_gradient`.
- The dynamics: :func:`optimize` (GD, normalized GD, Adam, sign descent) and :func:`ridge_path`,
  each returning a :class:`Trajectory` of what the paper plots; :func:`train_ufm` for the
  unconstrained-features model of Zhao et al. (2024).

Shapes: m contexts, d embedding dimension, V vocabulary. ``W`` is always (V, d); vec(W) is its
row-major flattening (index ``v * d + k``), so the constraint row of ``(e_z - e_v)^T W h_j`` is
``kron(e_z - e_v, h_j)``.

>>> data = toy_2d(seed=0)
>>> data.m, data.d, data.V, int(data.support_sizes.max())
(3, 2, 5, 3)
>>> bool(check_separability(data).holds and check_compatibility(data).holds)
True
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ntp_lib.runtime import check_positive_ints

OPTIMIZERS = ("gd", "ngd", "adam", "sign")
NORMS = ("fro", "max", "spectral")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def _one_blas_thread():
    """A context with BLAS limited to one thread (when threadpoolctl is installed).

    The problems here are small: a multi-threaded SVD or least-squares solve on a shared CPU is
    several times slower than a single-threaded one, and one thread also gives bit-reproducible
    results.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        from contextlib import nullcontext
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _as_finite_array(name: str, value, ndim: int) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}") from err
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must be non-empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(f"{name} must be finite, got {arr[tuple(bad)]} at index {bad}")
    return arr


class NTPData:
    """Contexts, their next-token distributions and their frequencies (paper section 2).

    Args:
        contexts: (m, d) context embeddings ``h_j``, finite.
        probs: (m, V) next-token distributions ``p_j``: entries >= 0, each row summing to 1
            (tolerance 1e-6) with a non-empty support.
        weights: (m,) context frequencies ``pi_j`` > 0; ``None`` means uniform. They are
            normalized to sum to 1.
        vocab: optional names of the V tokens (for plots).
        context_labels: optional names of the m contexts.

    Raises:
        ValueError: naming the argument and what was expected, for mismatched shapes, non-finite
            values, negative probabilities, empty supports or rows not summing to 1.

    >>> d = NTPData([[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    >>> d.support_sizes.tolist(), round(d.entropy_floor, 4)
    ([2, 1], 0.3466)
    """

    def __init__(self, contexts, probs, weights=None, vocab: Sequence[str] | None = None,
                 context_labels: Sequence[str] | None = None) -> None:
        H = _as_finite_array("contexts", contexts, 2)
        P = _as_finite_array("probs", probs, 2)
        if P.shape[0] != H.shape[0]:
            raise ValueError(f"probs must have one row per context: contexts has shape {H.shape} "
                             f"(m={H.shape[0]}), probs has shape {P.shape}")
        if P.shape[1] < 2:
            raise ValueError(f"probs needs a vocabulary of V >= 2 tokens, got shape {P.shape}")
        if np.any(P < 0):
            j, z = np.argwhere(P < 0)[0]
            raise ValueError(f"probs must be >= 0, got probs[{j}, {z}] = {P[j, z]}")
        empty = np.flatnonzero(P.sum(1) == 0)
        if empty.size:
            raise ValueError(f"probs row {empty[0]} has an empty support (all zeros); every context "
                             "needs at least one next token")
        sums = P.sum(1)
        off = np.flatnonzero(np.abs(sums - 1) > 1e-6)
        if off.size:
            raise ValueError(f"probs rows must sum to 1 (tolerance 1e-6), row {off[0]} sums to "
                             f"{sums[off[0]]:.6g}")
        m = H.shape[0]
        if weights is None:
            w = np.full(m, 1.0 / m)
        else:
            w = _as_finite_array("weights", weights, 1)
            if w.shape != (m,):
                raise ValueError(f"weights must have shape (m,) = ({m},), got {w.shape}")
            if np.any(w <= 0):
                raise ValueError(f"weights must be > 0, got {w[w <= 0][0]} at index "
                                 f"{int(np.flatnonzero(w <= 0)[0])}")
            w = w / w.sum()
        if vocab is not None and len(vocab) != P.shape[1]:
            raise ValueError(f"vocab must have V={P.shape[1]} names, got {len(vocab)}")
        if context_labels is not None and len(context_labels) != m:
            raise ValueError(f"context_labels must have m={m} names, got {len(context_labels)}")
        self.contexts, self.probs, self.weights = H, P / sums[:, None], w
        self.vocab = list(vocab) if vocab is not None else None
        self.context_labels = list(context_labels) if context_labels is not None else None

    def __repr__(self) -> str:
        return (f"NTPData(m={self.m}, d={self.d}, V={self.V}, mean |S_j|={self.support_sizes.mean():.2f}, "
                f"H={self.entropy_floor:.4f})")

    @property
    def m(self) -> int:
        return self.contexts.shape[0]

    @property
    def d(self) -> int:
        return self.contexts.shape[1]

    @property
    def V(self) -> int:
        return self.probs.shape[1]

    @cached_property
    def support_mask(self) -> np.ndarray:
        """Whether ``z in S_j``, as an (m, V) boolean array ``support_mask[j, z]``."""
        return self.probs > 0

    @property
    def supports(self) -> list[np.ndarray]:
        """The supports ``S_j`` as sorted index arrays, one per context."""
        return [np.flatnonzero(row) for row in self.support_mask]

    @property
    def support_sizes(self) -> np.ndarray:
        """(m,) ints ``|S_j|``."""
        return self.support_mask.sum(1)

    @property
    def sparsity(self) -> float:
        """The fraction ``1 - mean_j |S_j| / V`` of (context, token) pairs outside the supports."""
        return float(1.0 - self.support_mask.mean())

    @cached_property
    def entropy_floor(self) -> float:
        """``H = - sum_j pi_j sum_{z in S_j} p_jz log p_jz``, the infimum of CE (paper section 2)."""
        P = self.probs
        plogp = np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)
        return float(-(self.weights * plogp.sum(1)).sum()) + 0.0   # + 0.0: never print -0.0

    @cached_property
    def constraints(self) -> dict[str, np.ndarray]:
        """The linear maps of Definitions 1-2 on vec(W) (row-major, length V*d).

        One anchor per context, ``a_j = min S_j``. Rows of ``A_eq`` are ``kron(e_z - e_a, h_j)`` for
        ``z in S_j \\ {a_j}`` (they span F) with right-hand side ``b_eq = log(p_jz / p_ja)`` (Def. 1);
        rows of ``A_in`` are ``kron(e_a - e_v, h_j)`` for ``v not in S_j`` (Def. 2, eq. 6b).
        """
        V, d, H = self.V, self.d, self.contexts
        eq_j, eq_z, eq_a, in_j, in_v, in_a = [], [], [], [], [], []
        for j, S in enumerate(self.supports):
            out = np.flatnonzero(~self.support_mask[j])
            eq_j += [j] * (len(S) - 1)
            eq_z += list(S[1:])
            eq_a += [S[0]] * (len(S) - 1)
            in_j += [j] * len(out)
            in_v += list(out)
            in_a += [S[0]] * len(out)

        def rows(js, plus, minus):            # kron(e_plus - e_minus, h_j), one row each
            A = np.zeros((len(js), V, d))
            idx = np.arange(len(js))
            A[idx, plus] += H[js]
            A[idx, minus] -= H[js]
            return A.reshape(len(js), V * d)

        eq_j, in_j = np.array(eq_j, dtype=int), np.array(in_j, dtype=int)
        b_eq = np.log(self.probs[eq_j, eq_z] / self.probs[eq_j, eq_a]) if len(eq_j) else np.zeros(0)
        return {"A_eq": rows(eq_j, np.array(eq_z, dtype=int), np.array(eq_a, dtype=int)), "b_eq": b_eq,
                "A_in": rows(in_j, np.array(in_a, dtype=int), np.array(in_v, dtype=int))}

    @cached_property
    def F_basis(self) -> np.ndarray:
        """(V*d, r) orthonormal basis of the data subspace F (vectorized row-major)."""
        A = self.constraints["A_eq"]
        if A.shape[0] == 0:
            return np.zeros((self.V * self.d, 0))
        with _one_blas_thread():
            _, s, Vt = np.linalg.svd(A, full_matrices=False)
        r = int((s > s[0] * max(A.shape) * np.finfo(float).eps).sum())
        return Vt[:r].T


def _dirichlet_probs(rng: np.random.Generator, m: int, V: int, support_size: int) -> np.ndarray:
    P = np.zeros((m, V))
    for j in range(m):
        S = rng.choice(V, size=support_size, replace=False)
        P[j, S] = rng.dirichlet(np.ones(support_size))
    return P


def random_ntp_data(m: int = 50, d: int = 60, V: int = 10, support_size: int = 6, seed: int = 0,
                    weights: str = "uniform") -> NTPData:
    """The paper's overparameterized setting (appendix A, Figs 4-5), by default m=50, d=60, V=10.

    Gaussian embeddings ``h_j ~ N(0, I_d / d)`` (so ``||h_j|| ~ 1``), random supports of size
    ``support_size`` and probabilities ``~ Dirichlet(1, ..., 1)`` on them (expected entropy
    ``1 + 1/2 + ... + 1/|S| - 1``: 1.45 nats for ``|S| = 6``, the paper's H ~ 1.445).

    Args:
        weights: ``"uniform"`` or ``"random"`` (Dirichlet(1) context frequencies).
    """
    for name, val, lo in (("m", m, 1), ("d", d, 1), ("V", V, 2), ("support_size", support_size, 1)):
        if int(val) != val or val < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {val!r}")
    if support_size > V:
        raise ValueError(f"support_size must be <= V={V}, got {support_size}")
    if weights not in ("uniform", "random"):
        raise ValueError(f"weights must be 'uniform' or 'random', got {weights!r}")
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((m, d)) / np.sqrt(d)
    P = _dirichlet_probs(rng, m, V, support_size)
    pi = rng.dirichlet(np.ones(m)) if weights == "random" else None
    return NTPData(H, P, pi)


def toy_2d(seed: int = 0) -> NTPData:
    """The 2-D toy example of Figs 1-2: d=2, m=3 contexts, V=5 words, ``|S_j| = 3``.

    Contexts A, B, C sit at 90, 210 and 330 degrees. Word 2 follows only A, word 0 follows A and
    B, word 1 follows A and C, words 3 and 4 follow B and C::

        S_A = {0, 1, 2},  S_B = {0, 3, 4},  S_C = {1, 3, 4}

    (In two dimensions many support patterns are not NTP-separable: two words that share two
    linearly independent contexts must get equal embeddings. This pattern is.)

    Probabilities on the supports are ``Dirichlet(1, 1, 1)`` draws (``seed``).
    """
    rng = np.random.default_rng(seed)
    angles = np.deg2rad([90.0, 210.0, 330.0])
    H = np.stack([np.cos(angles), np.sin(angles)], 1)
    P = np.zeros((3, 5))
    for j, S in enumerate(([0, 1, 2], [0, 3, 4], [1, 3, 4])):
        P[j, S] = rng.dirichlet(np.ones(3))
    return NTPData(H, P, vocab=[f"w{z}" for z in range(5)], context_labels=["A", "B", "C"])


def from_corpus(tokens: Sequence[str], vocab_size: int = 30, context_len: int = 1, d: int = 64,
                min_count: int = 5, max_contexts: int | None = 60, seed: int = 0) -> NTPData:
    """NTP data from real text: contexts are the distinct prefixes of ``context_len`` tokens.

    Tokens outside the ``vocab_size - 1`` most frequent become ``"<other>"`` (so V = vocab_size).
    Each context that occurs at least ``min_count`` times (the ``max_contexts`` most frequent,
    ``None`` for all) gets the empirical distribution of its next token and its frequency as weight.
    Its embedding is a fixed map: the concatenated one-hot codes of its tokens, times a seeded
    Gaussian matrix of shape (context_len * V, d) scaled by 1/sqrt(d).

    >>> from ntp_lib.corpus import load_python_docs, words
    >>> data = from_corpus(words(load_python_docs(max_chars=20_000)), vocab_size=20, d=16)
    >>> data.V, data.d, bool(data.support_sizes.min() >= 1)
    (20, 16, True)
    """
    tokens = list(tokens)
    if int(vocab_size) != vocab_size or vocab_size < 2:
        raise ValueError(f"vocab_size must be an int >= 2, got {vocab_size!r}")
    check_positive_ints(context_len=context_len, d=d, min_count=min_count)
    if max_contexts is not None and (int(max_contexts) != max_contexts or max_contexts < 1):
        raise ValueError(f"max_contexts must be None or an int >= 1, got {max_contexts!r}")
    if len(tokens) <= context_len:
        raise ValueError(f"tokens must be longer than context_len={context_len}, got {len(tokens)}")
    top = [w for w, _ in Counter(tokens).most_common(vocab_size - 1)]
    vocab = sorted(top) + ["<other>"]
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index.get(t, vocab_size - 1) for t in tokens])
    follows: dict[tuple[int, ...], Counter] = {}
    for i in range(context_len, len(ids)):
        follows.setdefault(tuple(ids[i - context_len:i]), Counter())[ids[i]] += 1
    kept = [(sum(c.values()), ctx) for ctx, c in follows.items() if sum(c.values()) >= min_count]
    kept.sort(key=lambda t: (-t[0], t[1]))
    if max_contexts is not None:
        kept = kept[:max_contexts]
    if not kept:
        raise ValueError(f"no context occurs min_count={min_count} times; lower min_count")
    m = len(kept)
    P, counts, onehot = np.zeros((m, vocab_size)), np.zeros(m), np.zeros((m, context_len * vocab_size))
    for j, (n, ctx) in enumerate(kept):
        for z, c in follows[ctx].items():
            P[j, z] = c / n
        counts[j] = n
        onehot[j, [k * vocab_size + t for k, t in enumerate(ctx)]] = 1.0
    proj = np.random.default_rng(seed).standard_normal((context_len * vocab_size, d)) / np.sqrt(d)
    labels = [" ".join(vocab[t] for t in ctx) for _, ctx in kept]
    return NTPData(onehot @ proj, P, counts, vocab=vocab, context_labels=labels)


# ----------------------------------------------------------------------------------------------
# Loss
# ----------------------------------------------------------------------------------------------

def _check_W(W, data: NTPData) -> np.ndarray:
    W = _as_finite_array("W", W, 2)
    if W.shape != (data.V, data.d):
        raise ValueError(f"W must have shape (V, d) = ({data.V}, {data.d}), got {W.shape}")
    return W


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


def cross_entropy(W, data: NTPData) -> float:
    """``CE(W) = - sum_j pi_j sum_{z in S_j} p_jz log softmax_z(W h_j)`` (paper section 2)."""
    W = _check_W(W, data)
    logp = _log_softmax(data.contexts @ W.T)                         # (m, V)
    return float(-(data.weights * np.where(data.support_mask, data.probs * logp, 0.0).sum(1)).sum())


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
    ce = -(data.weights * np.where(data.support_mask, data.probs * logp, 0.0).sum(1)).sum()
    G = ((np.exp(logp) - data.probs) * data.weights[:, None]).T @ data.contexts
    return float(ce), G


def smoothness_step(data: NTPData) -> float:
    """The safe constant GD step ``1 / lambda_max(sum_j pi_j h_j h_j^T)`` (Lemmas 2-3).

    The softmax Jacobian has spectral norm <= 1/2, so CE is L-smooth with
    ``L <= lambda_max / 2`` and this step is ``1 / (2L)``.
    """
    Sigma = (data.contexts * data.weights[:, None]).T @ data.contexts
    return float(1.0 / np.linalg.eigvalsh(Sigma)[-1])


# ----------------------------------------------------------------------------------------------
# Geometry: F, W*, W_mm, the two conditions
# ----------------------------------------------------------------------------------------------

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
    import cvxpy as cp

    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    c = data.constraints
    if c["A_in"].shape[0] == 0:
        return np.zeros((data.V, data.d))
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
    return np.asarray(w.value).reshape(data.V, data.d)


def margin(W, data: NTPData) -> float:
    """``min_j min_{z in S_j, v not in S_j} (e_z - e_v)^T W h_j``: the in- vs out-of-support margin."""
    W = _check_W(W, data)
    L = data.contexts @ W.T                                            # (m, V)
    inside = np.where(data.support_mask, L, np.inf).min(1)
    outside = np.where(data.support_mask, -np.inf, L).max(1)
    return float((inside - outside).min())


def normalized_margin(W, data: NTPData, norm: str = "fro") -> float:
    """``margin(P_perp W) / ||P_perp W||``: the margin per unit norm of W's part in F-perp.

    F-perp is exactly the set of W that satisfy (6a), and it holds every NTP-SVM, so for each norm
    ``normalized_margin(W) <= 1 / ||w_mm(data, norm)||``, with equality iff W's F-perp part points
    along a max-margin direction of that norm (Def. 3 and its max-norm / spectral variants).
    """
    W = _check_W(W, data)
    Wp = W - project_F(W, data)
    n = norm_of(Wp, norm)
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


# ----------------------------------------------------------------------------------------------
# Dynamics
# ----------------------------------------------------------------------------------------------

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
    W: np.ndarray = field(repr=False)
    lr: float | None = None

    def final(self) -> dict[str, float]:
        """The last recorded values, as plain floats."""
        keys = ("excess_ce", "norm", "cos_mm", "cos_mm_shifted", "dist_F", "margin")
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
        self.rows.append((x, ce - self.H, np.linalg.norm(Wc), cosine(Wc, self.Wmm),
                          cosine(Wc - self.Wst, self.Wmm),
                          float(np.linalg.norm(project_F(Wc, self.data) - self.Wst)),
                          margin(Wc, self.data) / max(np.linalg.norm(Wc), 1e-300)))

    def trajectory(self, name: str, x_name: str, W: np.ndarray, lr: float | None) -> Trajectory:
        a = np.array(self.rows).T
        return Trajectory(name, x_name, a[0], a[1], a[2], a[3], a[4], a[5], a[6], W, lr)


def record_points(steps: int, n: int = 60) -> np.ndarray:
    """About ``n`` log-spaced step numbers in [1, steps] (ints, unique, ending at ``steps``)."""
    return np.unique(np.round(np.geomspace(1, steps, n)).astype(int))


def optimize(data: NTPData, optimizer: str = "gd", steps: int = 10_000, lr: float | None = None,
             betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8, W0: np.ndarray | None = None,
             n_records: int = 60, Wmm: np.ndarray | None = None,
             Wst: np.ndarray | None = None, lr_power: float = 0.0,
             callback: Callable[[int, np.ndarray], None] | None = None) -> Trajectory:
    """Minimize CE over the linear decoder from ``W0`` (default 0) and record the paper's panels.

    Optimizers (paper section 5 and appendix A):

    - ``"gd"``: ``W <- W - lr grad``; default ``lr`` = :func:`smoothness_step` (Lemma 2's safe step).
    - ``"ngd"``: normalized GD, ``W <- W - lr grad / ||grad||_F``; default lr 0.01.
    - ``"adam"``: Adam with ``betas`` (paper: 0.9, 0.99), bias correction; default lr 0.01.
    - ``"sign"``: sign descent ``W <- W - lr sign(grad)``; default lr 0.01.

    The step at iteration k is ``lr * k ** -lr_power`` (``lr_power=0``: constant; sign descent
    with a constant step stalls in a cycle, a decaying one keeps going, as in Fan et al. 2025).
    ``callback(k, W)``, if given, is called at every recorded step (e.g. to measure other margins).
    ``Wmm`` and ``Wst`` (the references) are computed when not given. Returns a
    :class:`Trajectory` recorded at about ``n_records`` log-spaced steps.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    check_positive_ints(steps=steps)
    if lr is None:
        lr = smoothness_step(data) if optimizer == "gd" else 0.01
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not (np.isfinite(lr_power) and 0 <= lr_power <= 1):
        raise ValueError(f"lr_power must lie in [0, 1], got {lr_power!r}")
    if not all(0 <= b < 1 for b in betas):
        raise ValueError(f"betas must lie in [0, 1), got {betas!r}")
    W = np.zeros((data.V, data.d)) if W0 is None else _check_W(W0, data).copy()
    with _one_blas_thread():
        return _optimize_loop(data, optimizer, int(steps), float(lr), float(lr_power), betas, eps, W,
                              n_records, Wmm, Wst, callback)


def _optimize_loop(data, optimizer, steps, lr0, lr_power, betas, eps, W, n_records, Wmm,
                   Wst, callback) -> Trajectory:
    rec = _Recorder(data, w_mm(data) if Wmm is None else Wmm, w_star(data) if Wst is None else Wst)
    when = set(record_points(steps, n_records).tolist())
    M, S = np.zeros_like(W), np.zeros_like(W)
    b1, b2 = betas
    for k in range(1, steps + 1):
        ce, G = _ce_grad_fast(W, data)
        lr = lr0 * k ** -lr_power if lr_power else lr0
        if optimizer == "gd":
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
    pi, P, mask = data.weights, data.probs, data.support_mask
    loss = np.empty(int(steps))
    for k in range(int(steps)):
        L = W @ Hm                                                    # (V, m)
        logp = _log_softmax(L.T)                                      # (m, V)
        ce = -(pi * np.where(mask, P * logp, 0.0).sum(1)).sum()
        loss[k] = ce + 0.5 * lam * ((W * W).sum() + (Hm * Hm).sum())
        R = ((np.exp(logp) - P) * pi[:, None]).T                      # dCE/dL, (V, m)
        gW, gH = R @ Hm.T + lam * W, W.T @ R + lam * Hm
        W, Hm = W - lr * gW, Hm - lr * gH
    return {"W": W, "H": Hm, "logits": W @ Hm, "loss": loss}
