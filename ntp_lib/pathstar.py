"""Part II: the path-star task of Bachmann & Nagarajan (2024), its objectives and its diagnostics.

A path-star graph G(d, l, N) has a source ``s`` with ``d`` arms of ``l - 1`` nodes each; the goal ``g``
is the leaf of one arm. Node labels are ``1 + d(l - 1)`` distinct draws from ``{0..N-1}``. A sample is
the shuffled edge list, the query and the path (Section 3 of the paper)::

    u,v|u,v|...|u,v/s,g=s,v1,...,g

Token ids (the reference code's): nodes ``0..N-1``, ``|`` = N, ``=`` = N+1, ``/`` = N+2, ``$`` = N+3
(the teacherless dummy). Commas are dropped; no BOS/EOS/PAD, so the vocabulary is ``V = N + 4``. With
``E = d(l - 1)`` edges the prefix (everything up to and including ``=``) has ``P = 3E + 3`` tokens and
the target ``l`` tokens.

Shape letters: n graphs, B batch, T = P + l - 1 input positions, E edges, l path length, V vocabulary.

Target positions are numbered 1..l as in the paper: position 1 is ``s`` (copied from the query),
position 2 the first node after ``s`` (the *indecipherable token*: under teacher forcing it is learned
last, at ~1/d on new graphs), positions 3..l follow one edge from the true previous node (the
*Clever-Hans cheat*); position l is ``g``, which can also be copied from the query.

>>> task = PathStar(degree=2, path_len=3, num_nodes=10)
>>> text = task.sample_text(1, seed=0)[0]
>>> task.decode(task.encode(text)) == text
True
>>> task.prefix_len, task.seq_len, task.vocab_size
(15, 18, 14)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from ntp_lib.gpt import IGNORE_INDEX, generate
from ntp_lib.runtime import check_positive_ints

OBJECTIVES = ("standard", "teacherless", "reverse")
_TOKEN_RE = re.compile(r"\d+|[|=/$]")


@dataclass(frozen=True)
class PathStar:
    """The task G(degree, path_len, num_nodes) and its tokenizer.

    Raises:
        ValueError: for degree < 1, path_len < 2, or num_nodes < 1 + degree * (path_len - 1)
            (the graph needs that many distinct labels).
    """

    degree: int
    path_len: int
    num_nodes: int

    def __post_init__(self) -> None:
        for name, low in (("degree", 1), ("path_len", 2), ("num_nodes", 2)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        need = 1 + self.degree * (self.path_len - 1)
        if self.num_nodes < need:
            raise ValueError(f"num_nodes={self.num_nodes} is too small for G({self.degree}, {self.path_len}): "
                             f"need num_nodes >= 1 + degree*(path_len-1) = {need} distinct labels")

    # -- sizes and special tokens ------------------------------------------------------------
    @property
    def num_edges(self) -> int:
        """E = d(l - 1)."""
        return self.degree * (self.path_len - 1)

    @property
    def prefix_len(self) -> int:
        """Length P = 3E + 3 of the prefix (edges with separators, then ``s g =``)."""
        return 3 * self.num_edges + 3

    @property
    def seq_len(self) -> int:
        """P + l tokens in a full sample."""
        return self.prefix_len + self.path_len

    @property
    def vocab_size(self) -> int:
        return self.num_nodes + 4

    @property
    def PIPE(self) -> int:  # noqa: N802 - the paper's symbol names
        return self.num_nodes

    @property
    def EQUALS(self) -> int:  # noqa: N802
        return self.num_nodes + 1

    @property
    def SLASH(self) -> int:  # noqa: N802
        return self.num_nodes + 2

    @property
    def DOLLAR(self) -> int:  # noqa: N802
        return self.num_nodes + 3

    def __str__(self) -> str:
        return f"G({self.degree},{self.path_len}), N={self.num_nodes}"

    # -- sampling ----------------------------------------------------------------------------
    def sample(self, n: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Draw ``n`` graphs, vectorised. Returns arrays

        ``tokens`` (n, P + l) int64, ``edges`` (n, E, 2), ``source`` (n,), ``goal`` (n,),
        ``path`` (n, l) and ``arms`` (n, d, l - 1) (arm 0 is the goal arm).
        """
        check_positive_ints(n=n)
        d, l, N, E = self.degree, self.path_len, self.num_nodes, self.num_edges
        rng = np.random.default_rng(seed)
        # A uniformly random injective labelling: the first 1 + d(l-1) columns of a random permutation.
        labels = np.argsort(rng.random((n, N)), axis=1)[:, : 1 + d * (l - 1)]
        source = labels[:, 0]
        arms = labels[:, 1:].reshape(n, d, l - 1)                      # (n, d, l-1)
        parents = np.concatenate([np.repeat(source[:, None, None], d, 1), arms[:, :, :-1]], axis=2)
        edges = np.stack([parents, arms], axis=-1).reshape(n, E, 2)     # (n, E, 2), pointing away from s
        order = np.argsort(rng.random((n, E)), axis=1)                  # shuffle edges, arms interleaved
        edges = np.take_along_axis(edges, order[:, :, None], axis=1)
        path = np.concatenate([source[:, None], arms[:, 0]], axis=1)    # (n, l): s, v1, ..., g
        goal = path[:, -1]
        seps = np.full((n, E, 1), self.PIPE)
        seps[:, -1, 0] = self.SLASH
        prefix = np.concatenate([np.concatenate([edges, seps], axis=2).reshape(n, 3 * E),
                                 source[:, None], goal[:, None], np.full((n, 1), self.EQUALS)], axis=1)
        tokens = np.concatenate([prefix, path], axis=1).astype(np.int64)
        return {"tokens": tokens, "edges": edges, "source": source, "goal": goal, "path": path, "arms": arms}

    def sample_text(self, n: int, seed: int = 0) -> list[str]:
        """``n`` samples in the paper's text format ``u,v|...|u,v/s,g=s,...,g``."""
        return [self.decode(row) for row in self.sample(n, seed)["tokens"]]

    # -- tokenizer -----------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Text to token ids (commas dropped). Raises ValueError on characters or nodes out of range."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        compact = text.replace(" ", "")
        ids: list[int] = []
        pos = 0
        special = {"|": self.PIPE, "=": self.EQUALS, "/": self.SLASH, "$": self.DOLLAR}
        for m in _TOKEN_RE.finditer(compact):
            gap = compact[pos:m.start()]
            if gap not in ("", ","):
                raise ValueError(f"cannot parse {gap!r} at character {pos} of {text!r}: "
                                 "expected node ids 0..N-1 separated by ',' and the symbols | / = $")
            tok = m.group()
            if tok.isdigit():
                if int(tok) >= self.num_nodes:
                    raise ValueError(f"node id {tok} out of range for {self}: expected 0..{self.num_nodes - 1}")
                ids.append(int(tok))
            else:
                ids.append(special[tok])
            pos = m.end()
        if compact[pos:] not in ("", ","):
            raise ValueError(f"cannot parse {compact[pos:]!r} at the end of {text!r}")
        return ids

    def decode(self, ids) -> str:
        """Token ids (a sequence or 1-D array/tensor) to text; raises ValueError for ids outside [0, V)."""
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
        symbols = {self.PIPE: "|", self.EQUALS: "=", self.SLASH: "/", self.DOLLAR: "$"}
        out: list[str] = []
        prev_is_item = False
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} out of range: expected 0..{self.vocab_size - 1} for {self}")
            is_item = i < self.num_nodes or i == self.DOLLAR
            if is_item and prev_is_item:
                out.append(",")
            out.append(str(i) if i < self.num_nodes else symbols[i])
            prev_is_item = is_item
        return "".join(out)

    def validate(self, text: str) -> None:
        """Check that ``text`` is a correct sample of this task; raise ValueError saying what is wrong.

        Checks the layout (E edges, ``/s,g=``, l target tokens), that the edges form a path-star
        around ``s`` with d arms of l-1 distinct nodes, and that the target is the path s -> g.
        """
        ids = self.encode(text)
        P, l, E = self.prefix_len, self.path_len, self.num_edges
        if len(ids) != self.seq_len:
            raise ValueError(f"expected {self.seq_len} tokens (prefix {P} + target {l}) for {self}, got {len(ids)}")
        seps = ids[2:3 * E:3]
        if any(t != self.PIPE for t in seps[:-1]) or seps[-1] != self.SLASH or ids[P - 1] != self.EQUALS:
            raise ValueError(f"expected the layout u,v|...|u,v/s,g=..., got {text!r}")
        node_slots = [t for j, t in enumerate(ids[:3 * E]) if j % 3 != 2] + ids[3 * E:P - 1] + ids[P:]
        if any(t >= self.num_nodes for t in node_slots):
            raise ValueError(f"expected node ids in the edges, query and target of {text!r}")
        edges = [(ids[3 * k], ids[3 * k + 1]) for k in range(E)]
        s, g = ids[3 * E], ids[3 * E + 1]
        children: dict[int, list[int]] = {}
        for u, v in edges:
            children.setdefault(u, []).append(v)
        labels = {u for e in edges for u in e}
        if len(labels) != 1 + E:
            raise ValueError(f"expected {1 + E} distinct node labels, got {len(labels)}")
        if len(children.get(s, [])) != self.degree:
            raise ValueError(f"source {s} must have {self.degree} children, has {len(children.get(s, []))}")
        for v in children.get(s, []):  # each arm: a chain of l-1 nodes
            length, node = 1, v
            while node in children:
                if len(children[node]) != 1:
                    raise ValueError(f"node {node} branches: arms must be simple paths")
                node, length = children[node][0], length + 1
            if length != l - 1:
                raise ValueError(f"arm starting at {v} has {length} nodes, expected {l - 1}")
        target = ids[P:]
        if target[0] != s or target[-1] != g or any(b not in children.get(a, []) for a, b in zip(target, target[1:])):
            raise ValueError(f"target {target} is not the path from s={s} to g={g}")

    def is_valid(self, text: str) -> bool:
        """``validate`` as a boolean."""
        try:
            self.validate(text)
        except ValueError:
            return False
        return True

    # -- objectives (Section 5 of the paper) ------------------------------------------------
    def target_slice(self) -> slice:
        """Positions of the input/label arrays (length P + l - 1) that predict the l target tokens."""
        return slice(self.prefix_len - 1, self.seq_len - 1)

    def make_dataset(self, tokens: np.ndarray | torch.Tensor, objective: str = "standard"
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``x`` and labels ``y``, both (n, P + l - 1), labels ``IGNORE_INDEX`` off the target.

        - ``standard``: teacher forcing, x = seq[:-1], y = seq[1:].
        - ``teacherless``: the l - 1 target tokens in the input are replaced by ``$`` (multi-token
          objective: every target token is predicted from the prefix alone).
        - ``reverse``: the target is written g, ..., s (teacher forced); the prefix is unchanged.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        seq = torch.as_tensor(np.asarray(tokens), dtype=torch.long).clone()
        if seq.dim() != 2 or seq.shape[1] != self.seq_len:
            raise ValueError(f"tokens must have shape (n, {self.seq_len}) for {self}, got {tuple(seq.shape)}")
        if int(seq.min()) < 0 or int(seq.max()) >= self.vocab_size:
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}) for {self}")
        P = self.prefix_len
        if objective == "reverse":
            seq[:, P:] = seq[:, P:].flip(1)
        x, y = seq[:, :-1].clone(), seq[:, 1:].clone()
        y[:, : P - 1] = IGNORE_INDEX
        if objective == "teacherless":
            x[:, P:] = self.DOLLAR
        return x, y


# -- model checks and decoding -----------------------------------------------------------------
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
    """Teacher-forced accuracy on target positions 3..l (the reference code's count), or 3..l-1
    with ``include_goal=False`` (the goal g at position l can be copied from the query). NaN if empty."""
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


def mask_target_inputs(task: PathStar, x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Token masking (after Frydenlund, 2025): replace each target *input* token by ``$`` with probability p.

    Teacher forcing on the masked input takes away part of the Clever-Hans shortcut: a masked previous
    node cannot be followed, so the model must find it from the goal. ``p=1`` is the teacherless objective.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"mask probability p must be in [0, 1], got {p!r}")
    P = task.prefix_len
    x = x.clone()
    m = torch.rand(x[:, P:].shape, generator=generator) < p
    x[:, P:][m.to(x.device)] = task.DOLLAR
    return x


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
