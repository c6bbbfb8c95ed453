"""Tests of ntp_lib.implicit_bias: the solvers against the definitions of Thrampoulidis (2024)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.optimize import nnls

from ntp_lib import implicit_bias as ib


@pytest.fixture(scope="module")
def small():
    return ib.random_ntp_data(m=8, d=12, V=6, support_size=3, seed=1)


@pytest.fixture(scope="module")
def small_mm(small):
    return ib.w_mm(small)


# ---- data validation ---------------------------------------------------------------------------

GOOD_H = [[1.0, 0.0], [0.0, 1.0]]
GOOD_P = [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize("kwargs, match", [
    ({"contexts": [[1.0, 0.0]]}, "probs must have one row per context"),
    ({"contexts": [1.0, 0.0]}, "contexts must be a 2-D array"),
    ({"probs": [[0.5, 0.5], [1.0, 0.0], [1.0, 0.0]]}, "probs must have one row per context"),
    ({"probs": [[1.5, -0.5, 0.0], [0.0, 0.0, 1.0]]}, r"probs must be >= 0, got probs\[0, 1\]"),
    ({"probs": [[0.5, 0.4, 0.0], [0.0, 0.0, 1.0]]}, "probs rows must sum to 1.*row 0 sums to 0.9"),
    ({"probs": [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]}, "probs row 0 has an empty support"),
    ({"probs": [[np.nan, 0.5, 0.5], [0.0, 0.0, 1.0]]}, "probs must be finite"),
    ({"contexts": [[np.inf, 0.0], [0.0, 1.0]]}, "contexts must be finite"),
    ({"weights": [1.0, 2.0, 3.0]}, r"weights must have shape \(m,\) = \(2,\)"),
    ({"weights": [1.0, -1.0]}, "weights must be > 0"),
    ({"weights": [1.0, np.inf]}, "weights must be finite"),
])
def test_ntpdata_rejects_bad_input(kwargs, match):
    args = {"contexts": GOOD_H, "probs": GOOD_P, **kwargs}
    with pytest.raises(ValueError, match=match):
        ib.NTPData(args["contexts"], args["probs"], args.get("weights"))


def test_ntpdata_basics():
    d = ib.NTPData(GOOD_H, GOOD_P, weights=[1.0, 3.0])
    assert d.weights.tolist() == [0.25, 0.75]
    assert [s.tolist() for s in d.supports] == [[0, 1], [2]]
    assert d.sparsity == pytest.approx(0.5)
    assert d.entropy_floor == pytest.approx(0.25 * np.log(2))


def test_generators_match_the_paper_settings():
    toy = ib.toy_2d()
    assert (toy.m, toy.d, toy.V) == (3, 2, 5) and set(toy.support_sizes) == {3}
    big = ib.random_ntp_data()
    assert (big.m, big.d, big.V) == (50, 60, 10) and set(big.support_sizes) == {6}
    assert 1.2 < big.entropy_floor < 1.7   # Dirichlet(1) on 6 tokens: E[H] = H_6 - 1 = 1.45
    with pytest.raises(ValueError, match="support_size must be <= V"):
        ib.random_ntp_data(V=4, support_size=5)


def test_from_corpus_builds_empirical_distributions():
    tokens = "a b a c a b b a".split()
    d = ib.from_corpus(tokens, vocab_size=3, context_len=1, d=4, min_count=1, max_contexts=None)
    # vocab = two most frequent (a, b) + <other>; after 'a': b, c->other, b, <end>
    assert d.vocab == ["a", "b", "<other>"]
    j = d.context_labels.index("a")
    assert d.probs[j].tolist() == pytest.approx([0.0, 2 / 3, 1 / 3])
    with pytest.raises(ValueError, match="vocab_size must be an int >= 2"):
        ib.from_corpus(tokens, vocab_size=1)


# ---- loss ------------------------------------------------------------------------------------

def test_gradient_matches_finite_differences(small):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((small.V, small.d))
    G = ib.ce_gradient(W, small)
    E = rng.standard_normal(W.shape)
    eps = 1e-6
    fd = (ib.cross_entropy(W + eps * E, small) - ib.cross_entropy(W - eps * E, small)) / (2 * eps)
    assert fd == pytest.approx((G * E).sum(), rel=1e-6)
    assert np.allclose(G.sum(0), 0)   # columns sum to zero: the 1 u^T part never moves


def test_ce_exceeds_entropy_and_W_shape_checked(small):
    W = np.random.default_rng(1).standard_normal((small.V, small.d))
    assert ib.cross_entropy(W, small) > small.entropy_floor
    with pytest.raises(ValueError, match=r"W must have shape \(V, d\) = \(6, 12\)"):
        ib.cross_entropy(W.T, small)


# ---- geometry --------------------------------------------------------------------------------

def test_w_star_solves_log_odds_and_lies_in_F(small):
    Ws = ib.w_star(small)
    L = small.contexts @ Ws.T
    for j, S in enumerate(small.supports):
        for z in S:
            for z2 in S:
                assert L[j, z] - L[j, z2] == pytest.approx(
                    np.log(small.probs[j, z] / small.probs[j, z2]), abs=1e-8)
    assert np.allclose(ib.project_F(Ws, small), Ws, atol=1e-10)


def test_w_mm_satisfies_6a_6b(small, small_mm):
    L = small.contexts @ small_mm.T
    for j, S in enumerate(small.supports):
        out = np.setdiff1d(np.arange(small.V), S)
        assert np.ptp(L[j, S]) < 1e-6                               # (6a)
        assert (L[j, S].min() - L[j, out].max()) >= 1 - 1e-6        # (6b)
    assert ib.margin(small_mm, small) == pytest.approx(1.0, abs=1e-6)
    assert np.allclose(ib.project_F(small_mm, small), 0, atol=1e-6)   # W_mm is in F-perp


def test_w_mm_kkt(small, small_mm):
    """Stationarity: W_mm = sum of active margin constraints with multipliers >= 0, plus F."""
    c = small.constraints
    w = small_mm.ravel()
    active = np.abs(c["A_in"] @ w - 1) < 1e-5
    Q = small.F_basis                                    # remove the F part (equality multipliers)
    perp = lambda X: X - Q @ (Q.T @ X)
    lam, res = nnls(perp(c["A_in"][active].T), perp(w))
    assert res < 1e-5 * np.linalg.norm(w)
    assert np.all(lam >= 0) and lam.sum() > 0
    # complementary slackness is built in (only active constraints carry weight); primal feasible:
    assert np.all(c["A_in"] @ w >= 1 - 1e-6)


def test_one_hot_equals_classic_multiclass_svm():
    import cvxpy as cp

    rng = np.random.default_rng(3)
    m, d, V = 7, 5, 4
    H = rng.standard_normal((m, d))
    y = np.array([0, 1, 2, 3, 0, 1, 2])
    data = ib.NTPData(H, np.eye(V)[y])
    assert data.entropy_floor == 0 and data.F_basis.shape[1] == 0
    W = cp.Variable((V, d))   # the multiclass hard-margin SVM, written independently
    cons = [(W[y[j]] - W[v]) @ H[j] >= 1 for j in range(m) for v in range(V) if v != y[j]]
    cp.Problem(cp.Minimize(cp.norm(W, "fro")), cons).solve()
    assert np.allclose(ib.w_mm(data), W.value, atol=1e-4)


def test_checks_return_certificates_or_reasons(small):
    sep = ib.check_separability(small)
    assert sep.holds and ib.margin(sep.certificate, small) >= 1 - 1e-6
    comp = ib.check_compatibility(small)
    assert comp.holds and np.allclose(comp.certificate, ib.w_star(small))
    # two identical contexts with different supports: not separable, not compatible
    H = np.array([[1.0, 0.0], [1.0, 0.0]])
    P = np.array([[0.5, 0.5, 0.0], [0.2, 0.0, 0.8]])
    bad = ib.NTPData(H, P)
    s = ib.check_separability(bad)
    assert not s.holds and s.certificate is None and "infeasible" in s.reason
    with pytest.raises(ValueError, match="not NTP-separable"):
        ib.w_mm(bad)
    P2 = np.array([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])
    c = ib.check_compatibility(ib.NTPData(H, P2))
    assert not c.holds and "inconsistent" in c.reason
    with pytest.raises(ValueError, match="not NTP_H-compatible"):
        ib.w_star(ib.NTPData(H, P2))


def test_lemma1_overparameterized_is_separable_and_compatible():
    data = ib.random_ntp_data(m=10, d=11, V=5, support_size=3, seed=4)
    assert ib.check_separability(data) and ib.check_compatibility(data)


def test_norm_variants(small, small_mm):
    with pytest.raises(ValueError, match="norm must be one of"):
        ib.w_mm(small, norm="l1")
    Wmax = ib.w_mm(small, norm="max")
    assert ib.margin(Wmax, small) >= 1 - 1e-5
    assert np.abs(Wmax).max() <= np.abs(small_mm).max() + 1e-6     # optimal in its own norm
    assert ib.normalized_margin(small_mm, small, "fro") >= ib.normalized_margin(Wmax, small, "fro") - 1e-6
    assert ib.normalized_margin(Wmax, small, "max") >= ib.normalized_margin(small_mm, small, "max") - 1e-6


# ---- dynamics --------------------------------------------------------------------------------

@pytest.mark.parametrize("opt", ib.OPTIMIZERS)
def test_optimizers_decrease_ce_and_align(small, small_mm, opt):
    tr = ib.optimize(small, opt, steps=3000, Wmm=small_mm)
    assert np.all(tr.excess_ce > 0) and tr.excess_ce[-1] < tr.excess_ce[0]
    assert tr.norm[-1] > tr.norm[0]
    assert tr.cos_mm[-1] > 0.8
    assert set(tr.final()) >= {"excess_ce", "norm", "cos_mm", "cos_mm_shifted", "dist_F", "step"}


def test_gd_direction_improves_with_steps(small, small_mm):
    tr = ib.optimize(small, "gd", steps=20_000, Wmm=small_mm)
    assert tr.cos_mm[-1] > tr.cos_mm[len(tr.cos_mm) // 2] > tr.cos_mm[5]
    assert tr.dist_F[-1] < tr.dist_F[len(tr.dist_F) // 2]


def test_ridge_path_converges_in_direction(small, small_mm):
    tr = ib.ridge_path(small, [1e-1, 1e-2, 1e-3, 1e-4], Wmm=small_mm)
    assert np.all(np.diff(tr.norm) > 0) and np.all(np.diff(tr.cos_mm) > 0)


def test_optimize_rejects_bad_arguments(small, small_mm):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        ib.optimize(small, "lbfgs", Wmm=small_mm)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        ib.optimize(small, "sgd", batch_size=0, Wmm=small_mm)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        ib.optimize(small, "gd", steps=0, Wmm=small_mm)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        ib.optimize(small, "gd", lr=-1.0, Wmm=small_mm)
    with pytest.raises(ValueError, match="lambdas must be"):
        ib.ridge_path(small, [0.0], Wmm=small_mm)


def test_hessian_matches_finite_differences_and_vanishes_off_F_in_the_limit(small, small_mm):
    rng = np.random.default_rng(0)
    W, D = rng.standard_normal((2, small.V, small.d))
    eps = 1e-4
    second = (ib.cross_entropy(W + eps * D, small) - 2 * ib.cross_entropy(W, small)
              + ib.cross_entropy(W - eps * D, small)) / eps ** 2
    assert D.ravel() @ ib.ce_hessian(W, small) @ D.ravel() == pytest.approx(second, rel=1e-4)
    # Along W* + R W_mm the Hessian tends to limit_hessian, which is zero on F-perp (e.g. on W_mm)
    Wst = ib.w_star(small)
    far = ib.ce_hessian(Wst + 60 * small_mm, small)
    assert np.abs(far - ib.limit_hessian(small)).max() < 1e-6
    assert np.abs(ib.limit_hessian(small) @ small_mm.ravel()).max() < 1e-10
    lam_min, lam_max = ib.curvature_on_F(small)
    assert 0 < lam_min < lam_max <= np.linalg.eigvalsh(ib.limit_hessian(small))[-1] + 1e-12


def test_curvature_on_F_refuses_one_hot_data():
    one_hot = ib.NTPData(np.eye(3), np.eye(3))
    with pytest.raises(ValueError, match="one-hot data"):
        ib.curvature_on_F(one_hot)


def test_orthonormal_twin_keeps_supports_and_probabilities(small):
    twin = ib.orthonormal_twin(small, seed=3)
    assert np.allclose(twin.contexts @ twin.contexts.T, np.eye(small.m))
    assert np.array_equal(twin.support_mask, small.support_mask)
    assert np.allclose(twin.probs, small.probs, rtol=1e-14) and np.allclose(twin.weights, small.weights, rtol=1e-14)
    with pytest.raises(ValueError, match="need d >= m, got d=3 < m=8"):
        ib.orthonormal_twin(ib.random_ntp_data(m=8, d=3, V=6, support_size=3))


def test_trajectory_separates_the_two_parts_of_theorem_2(small, small_mm):
    tr = ib.optimize(small, "gd", steps=5000, Wmm=small_mm)
    # cos_perp measures the F-perp part alone: at least as aligned as the whole W_k, which carries W*
    assert np.all(tr.cos_perp >= tr.cos_mm - 1e-12)
    assert tr.margin_perp[-1] > 0 and tr.margin_perp[-1] > tr.margin_perp[-2]


def test_sgd_gradient_is_unbiased_and_seeded(small):
    from ntp_lib.implicit_bias.dynamics import _sampled_gradient

    W = np.random.default_rng(1).standard_normal((small.V, small.d))
    joint = (small.weights[:, None] * small.probs).ravel()
    mean = _sampled_gradient(W, small, np.random.default_rng(0), joint, 200_000)
    assert np.abs(mean - ib.ce_gradient(W, small)).max() < 0.01 * np.abs(ib.ce_gradient(W, small)).max() + 2e-3
    a = ib.optimize(small, "sgd", steps=200, seed=5).W
    assert np.array_equal(a, ib.optimize(small, "sgd", steps=200, seed=5).W)
    assert not np.array_equal(a, ib.optimize(small, "sgd", steps=200, seed=6).W)


def test_ufm_nuclear_norm_identity():
    data = ib.random_ntp_data(m=6, d=4, V=5, support_size=2, seed=0)
    out = ib.train_ufm(data, d=8, lam=1e-2, steps=3000, lr=0.5)
    assert out["loss"][-1] < out["loss"][0]
    W, H = out["W"], out["H"]
    # at a stationary point of the balanced problem, (||W||^2 + ||H||^2)/2 = ||WH||_*
    nuc = np.linalg.svd(out["logits"], compute_uv=False).sum()
    assert 0.5 * ((W ** 2).sum() + (H ** 2).sum()) == pytest.approx(nuc, rel=0.02)


def test_experiment_cli_prints_one_json_line():
    out = subprocess.run([sys.executable, "-m", "ntp_lib.experiments", "implicit-bias", "--setting",
                          "toy", "--optimizer", "ngd", "--steps", "200"],
                         capture_output=True, text=True, check=True).stdout
    rec = json.loads(out)
    assert rec["setting"] == "toy" and rec["step"] == 200 and rec["excess_ce"] > 0
    bad = subprocess.run([sys.executable, "-m", "ntp_lib.experiments", "implicit-bias", "--steps", "0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--steps must be >= 1" in bad.stderr
