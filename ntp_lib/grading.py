"""Checkers for the book's graded exercises: a student's answer against the library's own computation.

Each part of the book ends with a notebook of graded exercises (``06-graded-exercises.ipynb``). A student
writes a small function, runs it on the data the notebook gives, and passes the result to the exercise's
checker, which

1. validates the answer first: its type, its shape and that it is finite. An answer of the wrong kind
   (``None`` because the function has no ``return``, a list of the wrong length, a NaN) raises
   :class:`AnswerFormatError`, whose message names what was expected;
2. computes the expected answer itself, with the library's functions (``ib.w_star``,
   ``ps.clever_hans_from_accuracy``, ``bn.w_error_curve``...): no answer is stored here;
3. compares, with a tolerance far above machine precision (1e-6 relative, where the solutions' rounding
   noise is about 1e-12) and far below what a plausible mistake gives (an unweighted mean, a log in base 2,
   an off-by-one in the positions: 1e-4 and more). A wrong answer raises :class:`AnswerError`, saying
   what was expected in shape and kind and how far off the answer is (to one significant figure), never
   the expected value; a right one prints one line, ``Correct: ...``, and returns True.

Both errors are subclasses of ``AssertionError`` (a grader counts them as failed checks);
:class:`AnswerFormatError` is also a ``ValueError``, the library's error for bad input.

>>> import numpy as np
>>> from ntp_lib import implicit_bias as ib
>>> data = ib.NTPData([[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
>>> check_entropy_floor(data.entropy_floor, data)
Correct: the entropy floor H of these 2 contexts, to 1e-06.
True
>>> check_entropy_floor(None, data)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ntp_lib.grading.AnswerFormatError: expected the entropy floor H (...), got None: does your function end with ...
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ntp_lib.runtime import as_finite_array

#: The relative tolerance of every real-valued check, a million times the solutions' rounding noise (about
#: 1e-12) and a hundred times below the smallest plausible mistake of these exercises (1e-4 relative and more).
RTOL = 1e-6


class AnswerError(AssertionError):
    """A student's answer is wrong: the message says what was expected and how far off it is."""


class AnswerFormatError(AnswerError, ValueError):
    """A student's answer is not of the expected kind (type, shape, finiteness): nothing was compared."""


# --------------------------------------------------------------------------- shared validation

def _kind(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    return type(value).__name__


def _no_none(value: Any, what: str) -> None:
    if value is None:
        raise AnswerFormatError(f"expected {what}, got None: does your function end with `return ...`?")


def _number(value: Any, what: str) -> float:
    """``value`` as a float if it is one finite real number (a Python, NumPy or 0-d torch scalar)."""
    _no_none(value, what)
    if hasattr(value, "detach"):                    # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    ok = not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok:
        raise AnswerFormatError(f"expected {what}, got {_kind(value)}")
    if not math.isfinite(float(value)):
        raise AnswerFormatError(f"expected {what}, got {float(value)}: a finite number is needed")
    return float(value)


def _integer(value: Any, what: str) -> int:
    """``value`` as an int if it is one (Python or NumPy int, or a 0-d integer array; bools refused)."""
    _no_none(value, what)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        hint = " (round it with int(...) if it is a whole number)" if isinstance(value, (float, np.floating)) else ""
        raise AnswerFormatError(f"expected {what}, got {_kind(value)}{hint}")
    return int(value)


def _array(value: Any, what: str, shape: tuple[int, ...], integer: bool = False) -> np.ndarray:
    """``value`` as a finite float64 array of exactly ``shape`` (integer-valued if ``integer``).

    The checks are :func:`ntp_lib.runtime.as_finite_array`'s (numeric, number of dimensions, finite), with
    the expected shape added to the message.
    """
    _no_none(value, f"{what}, an array of shape {shape}")
    if isinstance(value, (str, bytes, dict)):
        raise AnswerFormatError(f"expected {what}, an array of shape {shape}, got {_kind(value)}")
    try:
        arr = as_finite_array("it", value, len(shape))
    except ValueError as err:
        raise AnswerFormatError(f"expected {what}, an array of shape {shape}: {err}") from None
    if arr.shape != shape:
        raise AnswerFormatError(f"expected {what}, an array of shape {shape}, got shape {arr.shape}")
    if integer and not np.array_equal(arr, np.round(arr)):
        raise AnswerFormatError(f"expected {what}, an array of integers (token ids), got non-integer values")
    return arr


def _tuple(value: Any, what: str, names: tuple[str, ...]) -> tuple:
    _no_none(value, what)
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        got = f"a {type(value).__name__} of length {len(value)}" if isinstance(value, (tuple, list)) else _kind(value)
        raise AnswerFormatError(f"expected {what}: a tuple ({', '.join(names)}), got {got}")
    return tuple(value)


def _about(rel: float) -> str:
    """A relative error to one significant figure, as a percentage: enough to judge, too coarse to solve."""
    return f"about {float(f'{rel:.1g}') * 100:g}%" if rel < 1e6 else "more than a million times its size"


def _compare_number(answer: float, expected: float, what: str, hint: str = "") -> None:
    err = abs(answer - expected)
    if err <= RTOL * max(1.0, abs(expected)):
        return
    rel = err / abs(expected) if expected != 0 else err
    size = f"off by {_about(rel)} of the expected value" if expected != 0 else f"off by {rel:.1g} (it should be 0)"
    raise AnswerError(f"{what} is wrong: your value is {size}." + (f" {hint}" if hint else ""))


def _compare_array(answer: np.ndarray, expected: np.ndarray, what: str, hint: str = "") -> None:
    scale = max(1.0, float(np.linalg.norm(expected)))
    err = float(np.linalg.norm(answer - expected))
    if err <= RTOL * scale:
        return
    rel = err / float(np.linalg.norm(expected)) if np.linalg.norm(expected) > 0 else err
    raise AnswerError(f"{what} is wrong: the distance from your array to the expected one is {_about(rel)} "
                      f"of the expected array's norm." + (f" {hint}" if hint else ""))


def _correct(message: str) -> bool:
    print(f"Correct: {message}")
    return True


def _checker_input(name: str, value: Any, kind: type, what: str) -> Any:
    """The checker's own inputs (the notebook's data), refused with a ValueError if they are not what it needs."""
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be {what}, got {type(value).__name__}: pass the notebook's {name}")
    return value


# --------------------------------------------------------------------------- Part I: implicit bias

def _ntp_data(data: Any):
    from ntp_lib.implicit_bias import NTPData

    return _checker_input("data", data, NTPData, "an ib.NTPData")


def check_entropy_floor(answer: Any, data) -> bool:
    """The entropy floor ``H = -sum_j pi_j sum_{z in S_j} p_jz log p_jz`` of ``data`` (a float, in nats).

    Expected: ``data.entropy_floor``.
    """
    data = _ntp_data(data)
    value = _number(answer, "the entropy floor H (a finite real number, in nats)")
    expected = data.entropy_floor
    plogp = np.where(data.probs > 0, data.probs * np.log(np.where(data.probs > 0, data.probs, 1.0)), 0.0)
    hints = []
    if abs(value - expected / math.log(2)) <= 1e-3 * expected:
        hints.append("It looks like a logarithm in base 2: the book's entropies are in nats (np.log).")
    if abs(value + expected) <= 1e-3 * expected:
        hints.append("Check the sign: an entropy is >= 0.")
    if abs(value - float(-plogp.sum(1).mean())) <= 1e-3 * expected and not np.allclose(data.weights, 1 / data.m):
        hints.append("Every context is weighted by its frequency pi_j (data.weights), not equally.")
    _compare_number(value, expected, "H", " ".join(hints))
    return _correct(f"the entropy floor H of these {data.m} contexts, to {RTOL:g}.")


def check_w_star(answer: Any, data) -> bool:
    """``W*`` (V, d): the minimum-Frobenius-norm solution of the log-odds equations of ``data`` (Def. 1).

    Expected: ``ib.w_star(data)``. A wrong W is diagnosed: does it solve the equations at all, and if it
    does, how much of it lies outside the data subspace F (the part a minimum-norm solution does not have).
    """
    from ntp_lib import implicit_bias as ib

    data = _ntp_data(data)
    W = _array(answer, "W* (the decoder, one row per token)", (data.V, data.d))
    expected = ib.w_star(data)
    c = data.constraints
    residual = float(np.abs(c["A_eq"] @ W.ravel() - c["b_eq"]).max()) if len(c["b_eq"]) else 0.0
    largest = float(np.abs(c["b_eq"]).max(initial=0.0))
    if residual > 1e-6 * (1 + largest):
        hint = (f"It does not solve the log-odds equations (e_z - e_z')^T W h_j = log(p_jz / p_jz'): the largest "
                f"of the {len(c['b_eq'])} residuals is {_about(residual / max(1.0, largest))} of the largest log-odds.")
    else:
        outside = float(np.linalg.norm(W - ib.project_F(W, data)) / np.linalg.norm(W))
        hint = (f"It solves the log-odds equations but is not the minimum-norm solution: {_about(outside)} of its "
                "norm lies outside the data subspace F (lstsq and pinv give the minimum-norm one).")
    _compare_array(W, expected, "W*", hint)
    return _correct(f"W* of these {data.m} contexts, shape ({data.V}, {data.d}), to {RTOL:g}.")


def check_margin(answer: Any, W: Any, data) -> bool:
    """The margin ``min_j min_{z in S_j, v not in S_j} (e_z - e_v)^T W h_j`` of the decoder ``W`` (a float).

    Expected: ``ib.margin(W, data)``.
    """
    from ntp_lib import implicit_bias as ib

    data = _ntp_data(data)
    W = as_finite_array("W", W, 2)
    value = _number(answer, "the margin of W (a finite real number)")
    expected = ib.margin(W, data)
    _compare_number(value, expected, "The margin",
                    "It is a minimum over contexts j, over tokens z in S_j and over tokens v outside S_j "
                    "of the logit difference (W h_j)_z - (W h_j)_v.")
    return _correct(f"the margin of this W on {data.m} contexts, to {RTOL:g}.")


# --------------------------------------------------------------------------- Part II: path-star

def _path_star(task: Any):
    from ntp_lib.pathstar import PathStar

    return _checker_input("task", task, PathStar, "a ps.PathStar")


def _tokens(task, tokens: Any) -> np.ndarray:
    tokens = np.asarray(tokens.detach().cpu() if hasattr(tokens, "detach") else tokens)
    if tokens.ndim != 2 or tokens.shape[1] != task.seq_len:
        raise ValueError(f"tokens must have shape (n, {task.seq_len}) for {task}, got {tokens.shape}: "
                         "pass the notebook's tokens")
    return tokens


def _where_different(answer: np.ndarray, expected: np.ndarray, name: str) -> str:
    bad = answer != expected
    i, t = np.argwhere(bad)[0]
    return (f"{name} differs from the expected one at {int(bad.sum())} of {bad.size} entries "
            f"({int(bad.any(1).sum())} of {len(bad)} graphs), first in graph {int(i)} at position {int(t)}")


def check_reverse_dataset(answer: Any, task, tokens: Any) -> bool:
    """The reverse objective's teacher-forced pair ``(x, y)``, each (n, P + l - 1), for the graphs ``tokens``.

    Expected: ``task.make_dataset(tokens, "reverse")``: the target written g, ..., s, then inputs
    ``x = seq[:, :-1]``, labels ``y = seq[:, 1:]`` with ``IGNORE_INDEX`` (-100) before the target.
    """
    task = _path_star(task)
    tokens = _tokens(task, tokens)
    shape = (len(tokens), task.seq_len - 1)
    x, y = _tuple(answer, "the inputs and labels of the reverse objective", ("x", "y"))
    x = _array(x, "x (the inputs)", shape, integer=True)
    y = _array(y, "y (the labels)", shape, integer=True)
    ex, ey = (t.numpy() for t in task.make_dataset(tokens, "reverse"))
    wrong = [_where_different(a, e, name) for a, e, name in ((x, ex, "x"), (y, ey, "y")) if not np.array_equal(a, e)]
    if wrong:
        raise AnswerError("; ".join(wrong) + ". The prefix is unchanged, the target is reversed (g first, s last), "
                          "x and y are the sequence shifted by one, and y is IGNORE_INDEX before the target.")
    return _correct(f"the reverse objective's inputs and labels for {len(tokens)} graphs of {task}.")


def check_path_metrics(answer: Any, pred: Any, target: Any) -> bool:
    """``(exact_match, clever_hans, indecipherable)`` of predictions ``pred`` against ``target``, both (n, l).

    Expected, from the per-position accuracies ``acc = (pred == target).mean(0)``: the fraction of rows
    right at every position, ``ps.clever_hans_from_accuracy(acc)`` (positions 3..l) and
    ``ps.indecipherable_from_accuracy(acc)`` (position 2).
    """
    from ntp_lib import pathstar as ps

    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim != 2 or pred.shape != target.shape or pred.shape[1] < 3:
        raise ValueError(f"pred and target must have the same shape (n, l) with l >= 3, got {pred.shape} and "
                         f"{target.shape}: pass the notebook's pred and target")
    names = ("exact_match", "clever_hans", "indecipherable")
    values = _tuple(answer, "three accuracies", names)
    values = [_number(v, f"{name} (a fraction in [0, 1])") for v, name in zip(values, names)]
    hit = pred == target
    acc = hit.mean(0)
    expected = (float(hit.all(1).mean()), ps.clever_hans_from_accuracy(acc), ps.indecipherable_from_accuracy(acc))
    meaning = ("the fraction of paths right at every position", "the mean accuracy over target positions 3..l",
               "the accuracy at target position 2")
    wrong = [f"{name} (the {k + 1}{'st' if k == 0 else 'nd' if k == 1 else 'rd'} value, {meaning[k]}) is off by "
             f"{_about(abs(v - e) / e) if e else f'{abs(v - e):.1g}'}"
             for k, (name, v, e) in enumerate(zip(names, values, expected)) if abs(v - e) > RTOL]
    if wrong:
        raise AnswerError("; ".join(wrong) + ". Positions are numbered 1..l as in the paper (column 0 is position 1).")
    return _correct(f"exact match, Clever-Hans and indecipherable-token accuracy of {len(pred)} paths.")


def check_clever_hans_cheat(answer: Any, task, graphs: dict) -> bool:
    """Teacher-forced predictions (n, l) of the Clever-Hans cheat on the graphs ``graphs`` (from ``task.sample``).

    The cheat (Bachmann & Nagarajan, Section 4) copies ``s`` from the query at position 1, guesses one of the
    ``d`` children of ``s`` at position 2 (it cannot know which arm leads to the goal), and at positions
    3..l follows the edge out of the true previous node. Checked rule by rule, and the guesses at position 2
    must find the goal arm about 1/d of the time (within five binomial standard deviations, and 0.05).
    """
    task = _path_star(task)
    _checker_input("graphs", graphs, dict, "the dict of task.sample(...)")
    n, l, d = len(graphs["path"]), task.path_len, task.degree
    pred = _array(answer, "the cheat's predictions, one row of l target tokens per graph", (n, l), integer=True)
    path, children = graphs["path"], graphs["arms"][:, :, 0]
    rules = [
        (pred[:, 0] != graphs["source"], "position 1 must copy s from the query"),
        (~(pred[:, 1:2] == children).any(1), "position 2 must be a child of s (the first node of an arm)"),
        (pred[:, 2:] != path[:, 2:], "positions 3..l must follow the edge out of the true previous node"),
    ]
    broken = [f"{rule}: wrong in {int(bad.any(-1).sum() if bad.ndim > 1 else bad.sum())} of {n} graphs"
              for bad, rule in rules if bad.any()]
    if broken:
        raise AnswerError("; ".join(broken) + ".")
    hit = float((pred[:, 1] == path[:, 1]).mean())
    tol = max(0.05, 5 * math.sqrt((1 / d) * (1 - 1 / d) / n))
    if abs(hit - 1 / d) > tol:
        raise AnswerError(f"position 2 finds the goal arm in {_about(hit)} of the graphs: a cheat that reads only "
                          f"edges cannot tell the {d} arms apart and must guess, say the first child of s it "
                          "meets in the edge list.")
    return _correct(f"the cheat copies s, guesses among the {d} arms, then follows edges, on {n} graphs.")


# --------------------------------------------------------------------------- Part III: the softmax bottleneck

def check_numerical_rank(answer: Any, M: Any, rtol: float) -> bool:
    """The number of singular values of ``M`` above ``rtol`` times the largest (an int).

    Expected: ``bn.numerical_rank(M, rtol)``.
    """
    from ntp_lib import bottleneck as bn

    M = as_finite_array("M", M, 2)
    k = min(M.shape)
    value = _integer(answer, f"the numerical rank of M (an int in [0, {k}])")
    expected = bn.numerical_rank(M, rtol)
    if value != expected:
        side = "large" if value > expected else "small"
        raise AnswerError(f"The numerical rank is wrong: your count is too {side}. Count the singular values "
                          f"sigma_i > rtol * sigma_1 (rtol = {rtol:g}), relative to the largest one.")
    return _correct(f"the numerical rank of this {M.shape[0]} x {M.shape[1]} matrix at rtol = {rtol:g}.")


def check_w_error_curve(answer: Any, sigma: Any) -> bool:
    """W-error(d) for d = 0..k from the singular values ``sigma`` (k,), an array of shape (k + 1,).

    Expected: ``bn.w_error_curve(sigma)``: ``sqrt(sum_{i > d} sigma_i^2) / ||W||_F``.
    """
    from ntp_lib import bottleneck as bn

    sigma = as_finite_array("sigma", sigma, 1)
    k = len(sigma)
    curve = _array(answer, f"W-error(d) for d = 0, 1, ..., {k}", (k + 1,))
    expected = bn.w_error_curve(sigma)
    bad = np.flatnonzero(np.abs(curve - expected) > RTOL)
    hint = (f"{len(bad)} of the {k + 1} values are off, the first at d = {int(bad[0])}: W-error(d) is the relative "
            "Frobenius error of the best rank-d approximation (Eckart-Young-Mirsky)." if len(bad) else "")
    _compare_array(curve, expected, "The W-error curve", hint)
    return _correct(f"W-error(d) for d = 0..{k}, to {RTOL:g}.")


def check_anisotropy(answer: Any, X: Any) -> bool:
    """The anisotropy of the rows of ``X`` (N, d): their mean cosine similarity over pairs i != j (a float).

    Expected: ``bn.anisotropy(X)``.
    """
    from ntp_lib import bottleneck as bn

    X = as_finite_array("X", X, 2, min_rows=2)
    value = _number(answer, "the anisotropy of X (a finite real number in [-1, 1])")
    expected = bn.anisotropy(X)
    n = X.shape[0]
    hint = ("It looks like the pairs i = j are included: the mean is over the N (N - 1) ordered pairs i != j."
            if abs(value - (expected * (n * n - n) + n) / (n * n)) <= 1e-9 else
            "It is the mean of cos(h_i, h_j) over the ordered pairs i != j.")
    _compare_number(value, expected, "The anisotropy", hint)
    return _correct(f"the anisotropy of these {n} vectors, to {RTOL:g}.")
