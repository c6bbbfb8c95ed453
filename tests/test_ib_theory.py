"""Tests of the statements Part I proves (Thrampoulidis 2024, Prop. 1, Lemma 1, Def. 3's KKT conditions).

They check the library against the theory chapters 02 and 03 write out: the multipliers of the NTP-SVM
(``svm_duals``), the explicit bound of Prop. 1's construction, the conditions on the book's small examples.
"""

import numpy as np
import pytest

from ntp_lib import implicit_bias as ib


@pytest.fixture(scope="module")
def small():
    return ib.random_ntp_data(m=8, d=12, V=6, support_size=3, seed=1)


def _perp(W, data):
    return W - ib.project_F(W, data)


def _stationarity_sum(lam, data, anchor="first"):
    """sum_{j, v not in S_j} lambda_jv (e_a - e_v) h_j^T, with a_j the first or last token of S_j."""
    E = np.eye(data.V)
    G = np.zeros((data.V, data.d))
    for j, S in enumerate(data.supports):
        a = S[0] if anchor == "first" else S[-1]
        for v in np.flatnonzero(~data.support_mask[j]):
            G += lam[j, v] * np.outer(E[a] - E[v], data.contexts[j])
    return G


@pytest.mark.parametrize("which", ["toy", "small"])
def test_svm_duals_satisfy_kkt(which, small):
    data = ib.toy_2d(seed=0) if which == "toy" else small
    lam, W = ib.svm_duals(data), ib.w_mm(data)
    assert lam.shape == (data.m, data.V)
    assert np.all(lam[data.support_mask] == 0)                        # no constraint on the support
    assert lam.min() > -1e-7                                           # dual feasibility
    for anchor in ("first", "last"):                                   # stationarity, for any anchor
        G = _stationarity_sum(lam, data, anchor)
        assert np.abs(_perp(G, data) - W).max() < 1e-6
        assert np.abs(_perp(G - W, data)).max() < 1e-6                 # G - W_mm lies in F
    L = data.contexts @ W.T
    gap = np.where(data.support_mask, np.inf, L.min(1, where=data.support_mask, initial=np.inf)[:, None] - L)
    inactive = (~data.support_mask) & (gap > 1 + 1e-3)
    assert np.all(lam[inactive] < 1e-6)                                # complementary slackness
    assert lam.max() > 1e-3 and np.all(gap[lam > 1e-3] < 1 + 1e-6)     # support vectors have margin 1
    assert lam.sum() == pytest.approx(np.linalg.norm(W) ** 2, rel=1e-6)


def test_svm_duals_of_the_toy_are_two_symmetric_support_vectors():
    toy = ib.toy_2d(seed=0)
    lam = ib.svm_duals(toy)
    sv = sorted(zip(*np.nonzero(lam > 1e-4)))
    assert [(toy.context_labels[j], toy.vocab[v]) for j, v in sv] == [("B", "w2"), ("C", "w2")]
    assert lam[1, 2] == pytest.approx(lam[2, 2], rel=1e-6)            # B and C are mirror images


def test_binary_one_hot_duals_are_the_classic_svm_duals():
    """V = 2, one-hot: W_mm = [u/2; -u/2] with u the binary hard-margin SVM, u = sum_j 2 lambda_j s_j h_j."""
    rng = np.random.default_rng(0)
    H = rng.standard_normal((6, 8))                                    # d > m: separable (Lemma 1)
    y = np.array([0, 1, 0, 1, 1, 0])
    data = ib.NTPData(H, np.eye(2)[y])
    W, lam = ib.w_mm(data), ib.svm_duals(data)
    u, s = W[0] - W[1], np.where(y == 0, 1.0, -1.0)
    assert np.allclose(W[0], -W[1], atol=1e-7)
    alpha = 2 * lam[np.arange(6), 1 - y]                               # the classic SVM's multipliers
    assert np.allclose((alpha * s) @ H, u, atol=1e-6)
    assert np.all(s * (H @ u) >= 1 - 1e-6)


def test_svm_duals_edge_cases():
    full = ib.NTPData([[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5], [0.3, 0.7]])   # (6b) is empty
    assert np.array_equal(ib.svm_duals(full), np.zeros((2, 2)))
    clash = ib.NTPData([[1.0, 0.0], [1.0, 0.0]], [[0.5, 0.5, 0.0], [0.2, 0.0, 0.8]])
    with pytest.raises(ValueError, match="not NTP-separable"):
        ib.svm_duals(clash)


def test_the_conditions_on_the_books_examples():
    """02-conditions: the clash breaks separability only, the same support with two distributions breaks
    compatibility only, the three contexts together break both."""
    h = [1.0, 0.0]
    clash = ib.NTPData([h, h], [[0.5, 0.5, 0.0], [0.2, 0.0, 0.8]])
    same = ib.NTPData([h, h], [[0.5, 0.5, 0.0], [0.2, 0.8, 0.0]])
    both = ib.NTPData([h, h, h], [[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.2, 0.0, 0.8]])
    outcome = [(bool(ib.check_compatibility(D)), bool(ib.check_separability(D))) for D in (clash, same, both)]
    assert outcome == [(True, False), (False, True), (False, False)]


def _out_in_odds(data):
    """rho_j = (out-of-support mass) / (in-support mass) of softmax(W* h_j), shape (m,)."""
    q = ib.softmax(data.contexts @ ib.w_star(data).T)
    s = np.where(data.support_mask, q, 0.0).sum(1)
    return (1 - s) / s


def test_prop1_upper_bound(small):
    """CE(W* + U) - H <= sum_j pi_j log(1 + rho_j e^{-mu(U)}) <= C e^{-mu(U)} for every U in F-perp."""
    C = float(small.weights @ _out_in_odds(small))
    Ws, Wmm = ib.w_star(small), ib.w_mm(small)
    rng = np.random.default_rng(2)
    Us = [g * Wmm for g in (0.0, 1.0, 5.0, 20.0)] + [_perp(rng.standard_normal(Wmm.shape), small) for _ in range(3)]
    for U in Us:
        mu = ib.margin(U, small)
        excess = ib.cross_entropy(Ws + U, small) - small.entropy_floor
        tight = float(small.weights @ np.log1p(_out_in_odds(small) * np.exp(-mu)))
        assert excess <= tight + 1e-12 and tight <= C * np.exp(-mu) + 1e-12


def test_kl_lower_bound(small):
    """KL(p_j || q_j) >= -log(in-support mass) >= log(1 + e^{-(max_S L - L_v)} / |S_j|): Thm 1's lower bound."""
    rng = np.random.default_rng(3)
    for _ in range(5):
        W = 3 * rng.standard_normal((small.V, small.d))
        L = small.contexts @ W.T
        q = ib.softmax(L)
        kl = np.where(small.support_mask, small.probs * np.log(np.where(small.support_mask, small.probs, 1) / q),
                      0).sum(1)
        s = np.where(small.support_mask, q, 0.0).sum(1)
        assert np.all(kl >= -np.log(s) - 1e-12)
        top = L.max(1, where=small.support_mask, initial=-np.inf)
        for j in range(small.m):
            for v in np.flatnonzero(~small.support_mask[j]):
                assert -np.log(s[j]) >= np.log1p(np.exp(L[j, v] - top[j]) / small.support_sizes[j]) - 1e-12


def test_full_supports_reach_the_floor_at_a_finite_w():
    """Without the standing assumption (some |S_j| < V) CE reaches H at W*, and (6b) is empty."""
    data = ib.label_smoothed(ib.random_ntp_data(m=6, d=6, V=4, support_size=2, seed=0), 0.1)
    assert ib.check_separability(data).holds and ib.check_compatibility(data).holds
    assert ib.cross_entropy(ib.w_star(data), data) - data.entropy_floor < 1e-12


def test_lemma1_at_d_equal_m_reaches_any_logits():
    """The book's reading of Lemma 1: m linearly independent contexts (d >= m) reach any logit matrix."""
    rng = np.random.default_rng(4)
    m = d = 7
    H = rng.standard_normal((m, d))
    L = rng.standard_normal((m, 5))
    W = L.T @ np.linalg.solve(H @ H.T, H)                              # W = L^T (H H^T)^{-1} H
    assert np.allclose(H @ W.T, L, atol=1e-9)
    data = ib.random_ntp_data(m=m, d=d, V=5, support_size=3, seed=4)
    assert ib.check_separability(data).holds and ib.check_compatibility(data).holds
