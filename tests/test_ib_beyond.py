"""Tests of the pieces of ntp_lib.implicit_bias that chapter "Beyond the paper" relies on.

Quotient norms (norms modulo the ``1 u^T`` shifts the softmax ignores), label smoothing, and the
projection of learned context embeddings used to measure the subspace collapse of Zhao et al. (2024).
"""

import numpy as np
import pytest

from ntp_lib import implicit_bias as ib


@pytest.fixture(scope="module")
def small():
    return ib.random_ntp_data(m=8, d=12, V=6, support_size=3, seed=1)


# ---- quotient norms ------------------------------------------------------------------------------

@pytest.mark.parametrize("norm", ib.NORMS)
def test_quotient_norm_is_the_minimum_over_shifts(norm):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((7, 5)) + np.outer(np.ones(7), rng.standard_normal(5))
    q = ib.quotient_norm(W, norm)
    assert q <= ib.norm_of(W, norm) + 1e-12
    # invariant to 1 u^T, and no shift does better
    assert ib.quotient_norm(W + np.outer(np.ones(7), rng.standard_normal(5)), norm) == pytest.approx(q, rel=1e-12)
    for _ in range(200):
        u = W.mean(0) + 0.5 * rng.standard_normal(5)
        assert ib.norm_of(W - np.outer(np.ones(7), u), norm) >= q - 1e-12


def test_quotient_norm_closed_forms():
    W = np.array([[4.0, 1.0], [0.0, 1.0], [2.0, -1.0]])
    assert ib.quotient_norm(W, "max") == 2.0                       # half the largest column range
    mid = (W.max(0) + W.min(0)) / 2
    assert ib.norm_of(W - mid, "max") == 2.0                       # attained by the midrange shift
    for norm in ("fro", "spectral"):
        assert ib.quotient_norm(W, norm) == pytest.approx(ib.norm_of(ib.center(W), norm), rel=1e-12)
    # the spectral quotient norm agrees with a direct convex minimization over u
    from scipy.optimize import minimize
    res = minimize(lambda u: np.linalg.norm(W - np.outer(np.ones(3), u), 2), x0=np.zeros(2),
                   method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12})
    assert ib.quotient_norm(W, "spectral") == pytest.approx(res.fun, rel=1e-6)


def test_quotient_norm_refuses_an_unknown_norm():
    with pytest.raises(ValueError, match=r"norm must be one of \('fro', 'max', 'spectral'\), got 'nuc'"):
        ib.quotient_norm(np.eye(2), "nuc")


@pytest.mark.parametrize("norm", ib.NORMS)
def test_quotient_margin_ignores_shifts(small, norm):
    rng = np.random.default_rng(2)
    W = ib.w_mm(small) + 0.3 * rng.standard_normal((small.V, small.d))
    shift = np.outer(np.ones(small.V), 3 * rng.standard_normal(small.d))
    q = ib.normalized_margin(W, small, norm, quotient=True)
    assert ib.normalized_margin(W + shift, small, norm, quotient=True) == pytest.approx(q, rel=1e-9)
    assert ib.normalized_margin(W + shift, small, norm) < q       # the plain norm counts the shift


@pytest.mark.parametrize("norm", ib.NORMS)
def test_every_ntp_svm_already_minimizes_over_shifts(small, norm):
    """(6a)-(6b) are invariant to 1 u^T, so each w_mm's norm is its quotient norm (up to the solver)."""
    Wn = ib.w_mm(small, norm=norm)
    assert ib.quotient_norm(Wn, norm) == pytest.approx(ib.norm_of(Wn, norm), rel=1e-5)
    assert ib.normalized_margin(Wn, small, norm, quotient=True) * ib.norm_of(Wn, norm) == pytest.approx(1, rel=1e-4)


# ---- label smoothing ------------------------------------------------------------------------------

def test_label_smoothing_fills_every_support_and_keeps_W_finite(small):
    sm = ib.label_smoothed(small, 0.2)
    assert np.all(sm.support_sizes == small.V) and sm.entropy_floor > small.entropy_floor
    assert np.allclose(sm.probs, 0.8 * small.probs + 0.2 / small.V)
    assert np.allclose(ib.label_smoothed(small, 0.0).probs, small.probs)
    assert not np.any(ib.w_mm(sm))                                 # (6b) is empty: no margin direction
    Ws = ib.w_star(sm)
    assert ib.cross_entropy(Ws, sm) - sm.entropy_floor < 1e-9       # the floor is reached at a finite W
    tr = ib.optimize(sm, "gd", steps=3000, Wmm=np.zeros_like(Ws), Wst=Ws, n_records=10)
    assert tr.norm.max() < 1.01 * np.linalg.norm(Ws)               # the norm stays bounded ...
    assert np.linalg.norm(tr.W - Ws) < 0.05 * np.linalg.norm(Ws)  # ... and GD converges to W*


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan"), "0.1"])
def test_label_smoothing_refuses_a_bad_alpha(small, alpha):
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\], got"):
        ib.label_smoothed(small, alpha)


# ---- subspace collapse: the projected context embeddings ----------------------------------------

def test_projected_embeddings_give_equal_in_support_logits(small):
    rng = np.random.default_rng(3)
    d = 5
    W, H = rng.standard_normal((small.V, d)), rng.standard_normal((d, small.m))
    Hp = ib.project_out_log_odds(W, H, small)
    L = W @ Hp                                                     # (V, m)
    for j, S in enumerate(small.supports):
        assert np.ptp(L[S, j]) < 1e-10                             # no in-support log-odds left
        assert np.allclose(H[:, j] - Hp[:, j], (H[:, j] - Hp[:, j]) @ np.linalg.pinv(W[S[1:]] - W[S[0]])
                           @ (W[S[1:]] - W[S[0]]))                  # what was removed lies in span{w_z - w_z'}
    assert np.allclose(ib.project_out_log_odds(W, Hp, small), Hp)  # a projection


def test_projected_embeddings_refuse_mismatched_shapes(small):
    with pytest.raises(ValueError, match=r"W must be \(V, d\) and H \(d, m\) with V=6, m=8"):
        ib.project_out_log_odds(np.zeros((6, 4)), np.zeros((5, 8)), small)
    with pytest.raises(ValueError, match="H must be finite"):
        ib.project_out_log_odds(np.zeros((6, 4)), np.full((4, 8), np.nan), small)
