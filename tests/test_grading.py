"""ntp_lib.grading: every checker passes the reference answer, fails plausible wrong ones, and answers bad input
(wrong shape, wrong type, NaN, None) with a message naming what was expected, never a traceback from inside.

The reference answers here are the library's own (the notebooks' reference solutions are checked by nbval);
each wrong answer is a mistake a student could make.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax

from ntp_lib import bottleneck as bn
from ntp_lib import grading
from ntp_lib import implicit_bias as ib
from ntp_lib import pathstar as ps
from ntp_lib.grading import AnswerError, AnswerFormatError

# --------------------------------------------------------------------------- the exercises' data


@pytest.fixture(scope="module")
def data():
    return ib.random_ntp_data(m=6, d=8, V=5, support_size=3, seed=0, weights="random")


@pytest.fixture(scope="module")
def graphs():
    task = ps.PathStar(degree=4, path_len=5, num_nodes=30)
    return task, task.sample(300, seed=1)


@pytest.fixture(scope="module")
def matrices():
    rng = np.random.default_rng(0)
    log_q = log_softmax(rng.standard_normal((120, 8)) @ rng.standard_normal((60, 8)).T, axis=1)
    sigma = np.linalg.svd(rng.standard_normal((60, 20)) * 0.85 ** np.arange(20), compute_uv=False)
    reps = rng.standard_normal((200, 16)) + 1.5
    return log_q, sigma, reps


def _plogp(data):
    P = data.probs
    return np.where(P > 0, P * np.log(np.where(P > 0, P, 1.0)), 0.0)


def _cheat(task, graphs):
    """The Clever-Hans cheat from the graphs' pieces: s, the first child of s in the shuffled edge list, then the
    true path (the child of each true previous node)."""
    pred = graphs["path"].copy()
    for i, edges in enumerate(graphs["edges"]):
        pred[i, 1] = next(v for u, v in edges if u == graphs["source"][i])
    return pred


def _noisy(task, graphs):
    rng = np.random.default_rng(2)
    pred = graphs["path"].copy()
    noise = rng.random(pred.shape) < 0.2
    pred[noise] = rng.integers(0, task.num_nodes, noise.sum())
    return pred


def _metrics(pred, target):
    hit = pred == target
    acc = hit.mean(0)
    return hit.all(1).mean(), acc[2:].mean(), acc[1]


# --------------------------------------------------------------------------- right answers pass


def test_reference_answers_pass(data, graphs, matrices, capsys):
    task, g = graphs
    log_q, sigma, reps = matrices
    W = np.random.default_rng(1).standard_normal((data.V, data.d))
    x, y = task.make_dataset(g["tokens"], "reverse")
    pred = _noisy(task, g)
    checks = [
        grading.check_entropy_floor(data.entropy_floor, data),
        grading.check_w_star(ib.w_star(data), data),
        grading.check_margin(ib.margin(W, data), W, data),
        grading.check_reverse_dataset((x, y), task, g["tokens"]),                      # torch tensors
        grading.check_reverse_dataset((x.numpy(), y.numpy()), task, g["tokens"]),      # NumPy arrays
        grading.check_path_metrics(_metrics(pred, g["path"]), pred, g["path"]),
        grading.check_clever_hans_cheat(_cheat(task, g), task, g),
        grading.check_numerical_rank(bn.numerical_rank(log_q, 1e-6), log_q, 1e-6),
        grading.check_w_error_curve(bn.w_error_curve(sigma), sigma),
        grading.check_anisotropy(bn.anisotropy(reps), reps),
    ]
    assert all(c is True for c in checks)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(checks) and all(line.startswith("Correct: ") for line in lines)


def test_answers_within_tolerance_pass_and_numpy_scalars_are_accepted(data, matrices):
    log_q, _, reps = matrices
    assert grading.check_entropy_floor(np.float64(data.entropy_floor) * (1 + 1e-8), data)
    assert grading.check_w_star(ib.w_star(data) + 1e-9, data)
    assert grading.check_numerical_rank(np.int64(bn.numerical_rank(log_q, 1e-6)), log_q, 1e-6)
    assert grading.check_anisotropy(np.float32(bn.anisotropy(reps)), reps)


# --------------------------------------------------------------------------- wrong answers fail, without the answer


def _fails(check, *args, match):
    with pytest.raises(AnswerError, match=match) as info:
        check(*args)
    assert not isinstance(info.value, AnswerFormatError), "a wrong value of the right kind is not a format error"
    return str(info.value)


def test_wrong_entropy_floors(data):
    H = data.entropy_floor
    msg = _fails(grading.check_entropy_floor, H / np.log(2), data, match="base 2")
    assert f"{H:.3f}" not in msg and f"{H:.2f}" not in msg
    _fails(grading.check_entropy_floor, float(-_plogp(data).sum(1).mean()), data, match="weighted by its frequency")
    _fails(grading.check_entropy_floor, -H, data, match="sign")
    _fails(grading.check_entropy_floor, H + 1e-3, data, match="off by about 0.1%")


def test_wrong_w_stars(data):
    Ws = ib.w_star(data)
    shifted = Ws + 1.0                                    # a 1 u^T shift still solves the equations
    _fails(grading.check_w_star, shifted, data, match="not the minimum-norm solution")
    _fails(grading.check_w_star, Ws + np.random.default_rng(0).standard_normal(Ws.shape), data,
           match="does not solve the log-odds equations")
    _fails(grading.check_w_star, np.zeros_like(Ws), data, match="about 100%")


def test_wrong_margins(data):
    W = np.random.default_rng(1).standard_normal((data.V, data.d))
    L = data.contexts @ W.T
    inside = np.where(data.support_mask, L, np.inf).min(1)
    outside = np.where(data.support_mask, -np.inf, L).max(1)
    _fails(grading.check_margin, float((inside - outside).max()), W, data, match="minimum over contexts")
    _fails(grading.check_margin, float((inside - L.max(1)).min()), W, data, match="The margin is wrong")


def test_wrong_reverse_datasets(graphs):
    task, g = graphs
    tokens = g["tokens"]
    x, y = task.make_dataset(tokens, "standard")          # not reversed
    msg = _fails(grading.check_reverse_dataset, (x, y), task, tokens, match=r"x differs .* y differs")
    assert "IGNORE_INDEX" in msg
    xr, yr = task.make_dataset(tokens, "reverse")
    unmasked = yr.clone()
    unmasked[:, : task.prefix_len - 1] = xr[:, 1: task.prefix_len]
    _fails(grading.check_reverse_dataset, (xr, unmasked), task, tokens, match=r"^y differs")
    _fails(grading.check_reverse_dataset, (yr, xr), task, tokens, match=r"x differs")


def test_wrong_path_metrics(graphs):
    task, g = graphs
    pred, target = _noisy(task, g), g["path"]
    em, ch, ind = _metrics(pred, target)
    hit = pred == target
    _fails(grading.check_path_metrics, (hit.mean(), ch, ind), pred, target, match=r"^exact_match \(the 1st")
    _fails(grading.check_path_metrics, (em, hit.mean(0)[1:].mean(), hit.mean(0)[0]), pred, target,
           match=r"clever_hans .* indecipherable")                     # positions counted from 0
    _fails(grading.check_path_metrics, (em, hit.mean(0)[2:-1].mean(), ind), pred, target, match="3..l")


def test_wrong_cheats(graphs):
    task, g = graphs
    _fails(grading.check_clever_hans_cheat, g["path"], task, g, match="goal arm")        # knows the goal arm
    wrong_arm = g["path"].copy()
    wrong_arm[:, 1] = g["arms"][:, 1, 0]                                                  # never the goal arm
    _fails(grading.check_clever_hans_cheat, wrong_arm, task, g, match="goal arm")
    bad = _cheat(task, g)
    bad[:, 0] = g["goal"]
    _fails(grading.check_clever_hans_cheat, bad, task, g, match="position 1 must copy s")
    bad = _cheat(task, g)
    bad[:, 2:] = np.roll(bad[:, 2:], 1, axis=1)
    _fails(grading.check_clever_hans_cheat, bad, task, g, match="positions 3..l")
    bad = _cheat(task, g)
    bad[:, 1] = g["arms"][:, 0, 1]                                                        # not a child of s
    _fails(grading.check_clever_hans_cheat, bad, task, g, match="position 2 must be a child of s")


def test_wrong_bottleneck_answers(matrices):
    log_q, sigma, reps = matrices
    rank = bn.numerical_rank(log_q, 1e-6)
    _fails(grading.check_numerical_rank, rank - 1, log_q, 1e-6, match="too small")      # d, the +1 forgotten
    _fails(grading.check_numerical_rank, min(log_q.shape), log_q, 1e-6, match="too large")
    tail = np.concatenate([np.cumsum((sigma ** 2)[::-1])[::-1], [0.0]])
    _fails(grading.check_w_error_curve, tail / tail[0], sigma, match="first at d = 1")   # no square root
    _fails(grading.check_w_error_curve, np.sqrt(tail), sigma, match="first at d = 0")    # not normalized
    U = reps / np.linalg.norm(reps, axis=1, keepdims=True)
    _fails(grading.check_anisotropy, float((U @ U.T).mean()), reps, match="pairs i = j are included")
    _fails(grading.check_anisotropy, float((reps @ reps.T).mean()), reps, match="The anisotropy is wrong")


# --------------------------------------------------------------------------- bad input: a clear message


def _bad(check, *args, match):
    with pytest.raises(AnswerFormatError, match=match) as info:
        check(*args)
    assert isinstance(info.value, ValueError) and isinstance(info.value, AssertionError)
    assert info.value.__cause__ is None and (info.value.__suppress_context__ or info.value.__context__ is None), (
        "no chained traceback from inside the library")


NONE = "got None: does your function end with `return ...`"


@pytest.mark.parametrize("answer, match", [
    (None, NONE), ("0.9", "a finite real number, in nats.*got str"), ([0.9], "got list"),
    (np.array([0.9, 0.1]), r"got ndarray of shape \(2,\)"), (float("nan"), "got nan: a finite number is needed"),
    (True, "got bool"), (float("inf"), "got inf"),
])
def test_entropy_floor_bad_input(data, answer, match):
    _bad(grading.check_entropy_floor, answer, data, match=match)


@pytest.mark.parametrize("make, match", [
    (lambda W: None, NONE), (lambda W: W.T, r"shape \(5, 8\), got shape \(8, 5\)"),
    (lambda W: W.ravel(), r"must be a 2-D array"), (lambda W: "W", "got str"),
    (lambda W: np.where(np.eye(*W.shape) > 0, np.nan, W), "must be finite, got nan"),
    (lambda W: [[1, 2], [3]], "numeric array"),
])
def test_w_star_bad_input(data, make, match):
    _bad(grading.check_w_star, make(ib.w_star(data)), data, match=match)


def test_margin_bad_input(data):
    W = np.ones((data.V, data.d))
    _bad(grading.check_margin, None, W, data, match=NONE)
    _bad(grading.check_margin, np.nan, W, data, match="margin of W.*got nan")
    _bad(grading.check_margin, (1.0,), W, data, match="got tuple")


def test_reverse_dataset_bad_input(graphs):
    task, g = graphs
    x, y = task.make_dataset(g["tokens"], "reverse")
    shape = r"\(300, 55\)"
    _bad(grading.check_reverse_dataset, None, task, g["tokens"], match=NONE)
    _bad(grading.check_reverse_dataset, x, task, g["tokens"], match=r"a tuple \(x, y\), got Tensor")
    _bad(grading.check_reverse_dataset, (x, y, y), task, g["tokens"], match="got a tuple of length 3")
    _bad(grading.check_reverse_dataset, (x[:, 1:], y), task, g["tokens"], match=f"shape {shape}, got shape")
    _bad(grading.check_reverse_dataset, (x, None), task, g["tokens"],
         match=f"y \\(the labels\\), an array of shape {shape}, got None")
    _bad(grading.check_reverse_dataset, (x, y.double() / 2), task, g["tokens"], match="array of integers")
    _bad(grading.check_reverse_dataset, (x.double() * np.nan, y), task, g["tokens"], match="must be finite")


def test_path_metrics_bad_input(graphs):
    task, g = graphs
    pred = _noisy(task, g)
    _bad(grading.check_path_metrics, None, pred, g["path"], match=NONE)
    _bad(grading.check_path_metrics, (0.1, 0.2), pred, g["path"],
         match=r"a tuple \(exact_match, clever_hans, indecipherable\)")
    _bad(grading.check_path_metrics, (0.1, np.nan, 0.3), pred, g["path"], match="clever_hans.*got nan")
    _bad(grading.check_path_metrics, np.zeros(3), pred, g["path"], match="got ndarray")
    _bad(grading.check_path_metrics, (0.1, None, 0.3), pred, g["path"], match="clever_hans .*got None")


def test_cheat_bad_input(graphs):
    task, g = graphs
    _bad(grading.check_clever_hans_cheat, None, task, g, match=NONE)
    _bad(grading.check_clever_hans_cheat, g["path"][:, :-1], task, g, match=r"shape \(300, 5\), got shape \(300, 4\)")
    _bad(grading.check_clever_hans_cheat, g["path"] + 0.5, task, g, match="integers")
    _bad(grading.check_clever_hans_cheat, np.full((300, 5), np.nan), task, g, match="finite")


def test_bottleneck_bad_input(matrices):
    log_q, sigma, reps = matrices
    _bad(grading.check_numerical_rank, None, log_q, 1e-6, match=NONE)
    _bad(grading.check_numerical_rank, 9.0, log_q, 1e-6, match=r"an int in \[0, 60\]\), got float \(round it")
    _bad(grading.check_numerical_rank, np.array([9, 1]), log_q, 1e-6, match="got ndarray of shape")
    _bad(grading.check_w_error_curve, None, sigma, match=NONE)
    _bad(grading.check_w_error_curve, bn.w_error_curve(sigma)[1:], sigma,
         match=r"d = 0, 1, ..., 20, an array of shape \(21,\)")
    _bad(grading.check_w_error_curve, np.full(21, np.nan), sigma, match="finite")
    _bad(grading.check_w_error_curve, {"d": 1}, sigma, match="got dict")
    _bad(grading.check_anisotropy, None, reps, match=NONE)
    _bad(grading.check_anisotropy, np.nan, reps, match="anisotropy of X.*got nan")
    _bad(grading.check_anisotropy, "0.7", reps, match="got str")


def test_checkers_refuse_the_wrong_data():
    """The checkers' own inputs (the notebook's data) are checked too: a ValueError that says what to pass."""
    with pytest.raises(ValueError, match="data must be an ib.NTPData"):
        grading.check_entropy_floor(1.0, {"probs": [[1.0]]})
    with pytest.raises(ValueError, match="task must be a ps.PathStar"):
        grading.check_reverse_dataset((None, None), "G(2,5)", np.zeros((1, 20)))
    with pytest.raises(ValueError, match="pred and target must have the same shape"):
        grading.check_path_metrics((0.1, 0.2, 0.3), np.zeros((4, 5)), np.zeros((4, 6)))

