"""The data of the linear NTP model: contexts, their next-token distributions and frequencies.

The training set of Thrampoulidis, *Implicit Optimization Bias of Next-Token Prediction in Linear
Models* (NeurIPS 2024, arXiv:2402.18551), section 2. :class:`NTPData` holds ``m`` context embeddings
``h_j``, frequencies ``pi_j`` and next-token distributions ``p_j`` with supports ``S_j``, the entropy
floor ``H`` (section 2) and the linear maps on vec(W) of Definitions 1-2: the log-odds equations of
Def. 1 (their rows span the data subspace F; with right-hand side 0 they are (6a)) and the margin
constraints (6b). The generators build the paper's settings: :func:`toy_2d` (Figs 1-2),
:func:`random_ntp_data` (appendix A, Figs 4-5) and :func:`from_corpus` (real text);
:func:`orthonormal_twin` keeps a dataset's supports and probabilities with well-conditioned contexts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from ntp_lib.runtime import as_finite_array, check_positive_ints


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


def _check_W(W, data: NTPData) -> np.ndarray:
    W = as_finite_array("W", W, 2)
    if W.shape != (data.V, data.d):
        raise ValueError(f"W must have shape (V, d) = ({data.V}, {data.d}), got {W.shape}")
    return W


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
        H = as_finite_array("contexts", contexts, 2)
        P = as_finite_array("probs", probs, 2)
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
            w = as_finite_array("weights", weights, 1)
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
    check_positive_ints(m=m, d=d)
    if int(V) != V or V < 2:
        raise ValueError(f"V must be an int >= 2, got {V!r}")
    check_positive_ints(support_size=support_size)
    if support_size > V:
        raise ValueError(f"support_size must be <= V={V}, got {support_size}")
    if weights not in ("uniform", "random"):
        raise ValueError(f"weights must be 'uniform' or 'random', got {weights!r}")
    rng = np.random.default_rng(seed)
    H = rng.standard_normal((m, d)) / np.sqrt(d)
    P = _dirichlet_probs(rng, m, V, support_size)
    pi = rng.dirichlet(np.ones(m)) if weights == "random" else None
    return NTPData(H, P, pi)


def orthonormal_twin(data: NTPData, seed: int = 0) -> NTPData:
    """The same supports, probabilities and frequencies as ``data``, with orthonormal contexts.

    The ``m`` new context embeddings are the rows of a seeded random (m, d) matrix with orthonormal
    rows (so ``H H^T = I_m``; it needs ``d >= m``). Lemma 1's conditions hold, ``W_mm`` depends only
    on the supports, and every context direction has the same curvature: the well-conditioned
    counterpart of ``data``, where gradient descent shows Theorem 2 quickly.

    >>> twin = orthonormal_twin(random_ntp_data(m=5, d=8, V=4, support_size=2))
    >>> bool(np.allclose(twin.contexts @ twin.contexts.T, np.eye(5)))
    True
    """
    if data.d < data.m:
        raise ValueError(f"orthonormal contexts need d >= m, got d={data.d} < m={data.m}")
    rng = np.random.default_rng(seed)
    U, _, Vt = np.linalg.svd(rng.standard_normal((data.m, data.d)), full_matrices=False)
    return NTPData(U @ Vt, data.probs, data.weights, vocab=data.vocab, context_labels=data.context_labels)


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


def label_smoothed(data: NTPData, alpha: float) -> NTPData:
    """The same contexts and frequencies, with next-token distributions ``(1 - alpha) p_j + alpha / V``.

    Label smoothing with ``0 < alpha <= 1`` makes every support the whole vocabulary, so (6b) is
    empty: there is no margin to grow and no NTP-SVM direction. If the log-odds equations are
    solvable (Lemma 1's conditions suffice), CE reaches its floor H at the finite ``W*``
    (Prop. 1 with separability trivial). ``alpha = 0`` gives back the same distributions.

    >>> d = label_smoothed(NTPData([[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]), 0.3)
    >>> d.probs.round(2).tolist(), d.support_sizes.tolist()
    ([[0.45, 0.45, 0.1], [0.1, 0.1, 0.8]], [3, 3])
    """
    if not (isinstance(alpha, (int, float, np.floating)) and 0 <= alpha <= 1):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    probs = (1 - alpha) * data.probs + alpha / data.V
    return NTPData(data.contexts, probs, data.weights, vocab=data.vocab, context_labels=data.context_labels)
