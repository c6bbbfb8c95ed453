"""The path-star task of Bachmann & Nagarajan (2024): graphs, their tokenizer and the training objectives.

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

from ntp_lib.gpt import IGNORE_INDEX
from ntp_lib.runtime import check_int, check_positive_ints

OBJECTIVES = ("standard", "teacherless", "reverse", "masked")
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
            check_int(name, getattr(self, name), low=low)
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

    @property
    def symbols(self) -> list[str]:
        """The text of every token id, in id order.

        Node labels ``"0"`` to ``str(N - 1)``, then ``"|"``, ``"="``, ``"/"`` and ``"$"``.
        """
        return [str(i) for i in range(self.num_nodes)] + ["|", "=", "/", "$"]

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
        symbols = self.symbols
        out: list[str] = []
        prev_is_item = False
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} out of range: expected 0..{self.vocab_size - 1} for {self}")
            is_item = i < self.num_nodes or i == self.DOLLAR
            if is_item and prev_is_item:
                out.append(",")
            out.append(symbols[i])
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

    def make_dataset(self, tokens: np.ndarray | torch.Tensor, objective: str = "standard", mask_prob: float = 0.5,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``x`` and labels ``y``, both (n, P + l - 1), labels ``IGNORE_INDEX`` off the target.

        - ``standard``: teacher forcing, x = seq[:-1], y = seq[1:].
        - ``teacherless``: the l - 1 target tokens in the input are replaced by ``$`` (multi-token
          objective: every target token is predicted from the prefix alone).
        - ``reverse``: the target is written g, ..., s (teacher forced); the prefix is unchanged.
        - ``masked``: teacher forcing with each target input replaced by ``$`` with probability
          ``mask_prob`` (token masking, after Frydenlund 2025; see :func:`mask_target_inputs`), drawn
          from ``generator``. A training run calls this on every batch, so the masks change each step.
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
        if objective == "masked":
            g = generator if generator is not None else torch.Generator().manual_seed(0)
            x = mask_target_inputs(self, x, mask_prob, g)
        return x, y


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
