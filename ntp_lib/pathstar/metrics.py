"""Diagnostics of a model on the path-star task (Bachmann & Nagarajan 2024, Sections 4-5).

Decoding a target (:func:`predict`: autoregressive, teacher-forced or teacherless), accuracies per target
position and their two summaries, the Clever-Hans accuracy (positions 3..l, the cheat of Section 4) and
the indecipherable-token accuracy (position 2), exact match, two interventions that locate the failure
(:func:`edge_following_rate`, :func:`exact_match_given_first`), and :func:`evaluate`, all of them on one split.

Shape letters: n graphs, P prefix length, l path length, V vocabulary.
"""

from __future__ import annotations

import numpy as np
import torch

from ntp_lib.gpt import generate
from ntp_lib.pathstar.task import PathStar


def model_vocab_size(model: torch.nn.Module) -> int:
    """The vocabulary size V of a book model (``GPT`` or ``HFCausalLM``)."""
    if hasattr(model, "config") and hasattr(model.config, "vocab_size"):
        return int(model.config.vocab_size)
    if hasattr(model, "vocab_size"):
        return int(model.vocab_size)
    raise ValueError(f"cannot tell the vocabulary size of {type(model).__name__}")


def check_model(model: torch.nn.Module, task: PathStar) -> None:
    """Raise ValueError unless the model's vocabulary is the task's (V = N + 4)."""
    V = model_vocab_size(model)
    if V != task.vocab_size:
        raise ValueError(f"model vocabulary {V} does not match the tokenizer of {task}: expected "
                         f"vocab_size = num_nodes + 4 = {task.vocab_size}")


@torch.no_grad()
def predict(model: torch.nn.Module, task: PathStar, x: torch.Tensor, mode: str = "generate",
            batch_size: int = 1024) -> torch.Tensor:
    """Predicted target tokens (n, l) for inputs ``x`` (n, P + l - 1) made by ``make_dataset``.

    - ``generate``: greedy autoregressive decoding from the prefix (the model sees its own outputs);
    - ``teacher_forced``: one pass on ``x`` (the model sees the true previous target tokens);
    - ``teacherless``: one pass with ``$`` in place of the target inputs (the teacherless inference).
    """
    modes = ("generate", "teacher_forced", "teacherless")
    if mode not in modes:
        raise ValueError(f"mode must be one of {modes}, got {mode!r}")
    check_model(model, task)
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    P, l = task.prefix_len, task.path_len
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(dev)
        if mode == "generate":
            out.append(generate(model, xb[:, :P], l)[:, P:].cpu())
        else:
            if mode == "teacherless":
                xb = xb.clone()
                xb[:, P:] = task.DOLLAR
            logits, _ = model(xb)
            out.append(logits[:, task.target_slice()].argmax(-1).cpu())
    model.train(was_training)
    return torch.cat(out)


def _targets(task: PathStar, y: torch.Tensor) -> torch.Tensor:
    return y[:, task.target_slice()].cpu()


def per_position_accuracy(model: torch.nn.Module, task: PathStar, x: torch.Tensor, y: torch.Tensor,
                          mode: str = "teacher_forced") -> np.ndarray:
    """Accuracy at each target position 1..l, shape (l,). ``mode`` as in :func:`predict`."""
    pred = predict(model, task, x, mode)
    return (pred == _targets(task, y)).float().mean(0).numpy()


def exact_match(model: torch.nn.Module, task: PathStar, x: torch.Tensor, y: torch.Tensor,
                mode: str = "generate") -> float:
    """Fraction of graphs whose whole target is decoded correctly (autoregressive by default)."""
    pred = predict(model, task, x, mode)
    return float((pred == _targets(task, y)).all(1).float().mean())


def clever_hans_accuracy(model: torch.nn.Module, task: PathStar, x: torch.Tensor, y: torch.Tensor,
                         include_goal: bool = True) -> float:
    """Teacher-forced accuracy on target positions 3..l (the positions the paper attributes to the cheat),
    or 3..l-1 with ``include_goal=False`` (the goal g at position l can be copied from the query).
    NaN if empty."""
    return clever_hans_from_accuracy(per_position_accuracy(model, task, x, y, "teacher_forced"), include_goal)


def indecipherable_accuracy(model: torch.nn.Module, task: PathStar, x: torch.Tensor, y: torch.Tensor) -> float:
    """Teacher-forced accuracy on target position 2, the first node after s (~1/d when unsolved)."""
    return indecipherable_from_accuracy(per_position_accuracy(model, task, x, y, "teacher_forced"))


def clever_hans_from_accuracy(acc: np.ndarray, include_goal: bool = True) -> float:
    """Clever-Hans accuracy from per-position accuracies ``acc`` (l,): mean over positions 3..l, or 3..l-1
    with ``include_goal=False``. NaN if empty. The one definition behind :func:`clever_hans_accuracy`
    and :func:`evaluate`."""
    part = acc[2:] if include_goal else acc[2:-1]
    return float(part.mean()) if part.size else float("nan")


def indecipherable_from_accuracy(acc: np.ndarray) -> float:
    """Indecipherable-token accuracy from per-position accuracies ``acc`` (l,): position 2."""
    return float(acc[1])


@torch.no_grad()
def edge_following_rate(model: torch.nn.Module, task: PathStar, data: dict[str, np.ndarray],
                        seed: int = 0) -> float:
    """Intervention on the Clever-Hans cheat: teacher-force a *wrong* previous node and see if the model
    simply follows its edge.

    For each graph the input at target position 2 (the true v1) is replaced by the first node of
    another arm (a non-goal arm); the label there would be v2. We return how often the model predicts
    the child of the substituted node at position 3 instead: ~1 means position 3 is solved by one edge
    lookup from the previous token, whatever the goal (the cheat of Section 4 of the paper).
    Needs ``degree >= 2`` and ``path_len >= 4`` (so the substituted node has a child before the leaf).
    """
    if task.degree < 2 or task.path_len < 4:
        raise ValueError(f"edge_following_rate needs degree >= 2 and path_len >= 4, got {task}")
    x, _ = task.make_dataset(data["tokens"], "standard")
    rng = np.random.default_rng(seed)
    n = len(x)
    other = rng.integers(1, task.degree, size=n)               # a non-goal arm
    arms = data["arms"]
    wrong = arms[np.arange(n), other, 0]                       # its first node
    child = arms[np.arange(n), other, 1]                       # and that node's child
    x = x.clone()
    P = task.prefix_len
    x[:, P + 1] = torch.as_tensor(wrong)                       # the input at target position 2 (v1)
    pred = predict(model, task, x, "teacher_forced")[:, 2]     # prediction of target position 3
    return float((pred == torch.as_tensor(child)).float().mean())


@torch.no_grad()
def exact_match_given_first(model: torch.nn.Module, task: PathStar, x: torch.Tensor, y: torch.Tensor,
                            batch_size: int = 1024) -> float:
    """Intervention on the indecipherable token: give the model s *and* the true v1, then decode the rest.

    If this is ~1 while plain exact match is ~1/d, all of the failure sits at position 2.
    """
    check_model(model, task)
    model.eval()
    dev = next(model.parameters()).device
    P, l = task.prefix_len, task.path_len
    hits = []
    for i in range(0, len(x), batch_size):
        seq = generate(model, x[i:i + batch_size, :P + 2].to(dev), l - 2)  # from prefix, s, v1 (teacher-forced)
        hits.append((seq[:, P:].cpu() == _targets(task, y[i:i + batch_size])).all(1))
    return float(torch.cat(hits).float().mean())


def evaluate(model: torch.nn.Module, task: PathStar, x: torch.Tensor, y: torch.Tensor,
             objective: str = "standard") -> dict[str, float]:
    """All headline metrics on one split: exact match (the objective's own decoding), per-position
    accuracies, Clever-Hans accuracy (3..l and 3..l-1) and indecipherable-token accuracy."""
    decode = "teacherless" if objective == "teacherless" else "generate"
    tgt = _targets(task, y)
    gen = predict(model, task, x, decode)
    # A teacherless model never sees true target tokens: its per-position accuracies come from one pass.
    tf = predict(model, task, x, "teacherless" if objective == "teacherless" else "teacher_forced")
    tf_acc = (tf == tgt).float().mean(0).numpy()
    return {
        "exact_match": float((gen == tgt).all(1).float().mean()),
        "per_position_generated": [round(float(a), 4) for a in (gen == tgt).float().mean(0)],
        "per_position_teacher_forced": [round(float(a), 4) for a in tf_acc],
        "clever_hans_accuracy": clever_hans_from_accuracy(tf_acc),
        "clever_hans_accuracy_no_goal": clever_hans_from_accuracy(tf_acc, include_goal=False),
        "indecipherable_accuracy": indecipherable_from_accuracy(tf_acc),
    }
