"""Language-model basics used by the front matter and Part III: batches, evaluation, entropy floors.

Shapes: ``ids`` is a 1-D LongTensor (N,) of token ids; batches are (B, T).

The next-token cross-entropy of any model on a corpus is bounded below by the corpus's empirical
conditional entropy given the same context,

.. math::

    \\mathrm{CE} = H(X_{t} \\mid X_{t-k:t})
        + \\mathbb{E}_c\\, \\mathrm{KL}(\\hat p(\\cdot\\mid c)\\,\\|\\,q(\\cdot\\mid c))
        \\ge H(X_{t} \\mid X_{t-k:t}),

so the floor for a model that sees ``k`` tokens of context is :func:`conditional_entropy` with
``context_len=k`` (Thrampoulidis 2024, eq. for H; Part I of the book).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ntp_lib.gpt import IGNORE_INDEX
from ntp_lib.runtime import check_int, check_positive_ints


def as_ids(ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """A 1-D int64 tensor of token ids; ValueError if empty or not 1-D."""
    t = torch.as_tensor(ids, dtype=torch.long)
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"ids must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    return t


def random_crops(ids: torch.Tensor, block_size: int, batch_size: int):
    """``get_batch(step, generator)`` for :func:`ntp_lib.train.train`: random windows of the corpus.

    Returns x (B, T) and y (B, T) with y[:, t] = x[:, t + 1] (the next token: teacher forcing).
    """
    ids = as_ids(ids)
    check_positive_ints(block_size=block_size, batch_size=batch_size)
    if ids.numel() <= block_size:
        raise ValueError(f"corpus of {ids.numel()} tokens is too short for block_size={block_size}")

    def get_batch(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        start = torch.randint(0, ids.numel() - block_size, (batch_size,), generator=generator)
        offsets = start[:, None] + torch.arange(block_size + 1)  # (B, T + 1)
        window = ids[offsets]
        return window[:, :-1], window[:, 1:]

    return get_batch


def fixed_windows(ids: Sequence[int] | torch.Tensor, n: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` evenly spaced windows of a token stream, a fixed evaluation set: x, y of shape (n, T).

    >>> x, y = fixed_windows(torch.arange(20), 3, 4)
    >>> x.tolist(), y[:, -1].tolist()
    ([[0, 1, 2, 3], [7, 8, 9, 10], [14, 15, 16, 17]], [4, 11, 18])
    """
    ids = as_ids(ids)
    check_positive_ints(n=n, block_size=block_size)
    if ids.numel() < block_size + 2:
        raise ValueError(f"corpus of {ids.numel()} tokens is too short for block_size={block_size}")
    starts = torch.linspace(0, ids.numel() - block_size - 2, n, dtype=torch.float64).long()
    window = ids[starts[:, None] + torch.arange(block_size + 1)]  # (n, T + 1)
    return window[:, :-1], window[:, 1:]


@torch.no_grad()
def evaluate(model: torch.nn.Module, ids: torch.Tensor, block_size: int, max_windows: int = 64
             ) -> dict[str, float]:
    """Teacher-forced cross-entropy (nats/token) and next-token accuracy on consecutive windows.

    The corpus is cut into non-overlapping windows of ``block_size + 1`` tokens (at most
    ``max_windows``, evenly spaced, so the result is deterministic).
    """
    ids = as_ids(ids)
    n = (ids.numel() - 1) // block_size
    if n < 1:
        raise ValueError(f"corpus of {ids.numel()} tokens is too short for block_size={block_size}")
    chosen = torch.linspace(0, n - 1, min(n, max_windows)).round().long()
    offsets = chosen[:, None] * block_size + torch.arange(block_size + 1)
    window = ids[offsets]
    x, y = window[:, :-1], window[:, 1:]
    model.eval()
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), ignore_index=IGNORE_INDEX)
    acc = (logits.argmax(-1) == y).float().mean()
    return {"loss": loss.item(), "accuracy": acc.item()}


def conditional_entropy(ids: Sequence[int] | torch.Tensor, context_len: int) -> float:
    """Empirical entropy H(X_t | previous ``context_len`` tokens) of a corpus, in nats per token.

    ``context_len=0`` gives the unigram entropy. This is the CE floor of a model that sees exactly
    that context and is evaluated on the same corpus.

    >>> round(conditional_entropy([0, 1, 0, 1, 0, 1], 1), 6)   # deterministic alternation
    0.0
    >>> round(conditional_entropy([0, 1, 0, 1], 0), 4)         # two equally likely tokens: log 2
    0.6931
    """
    check_int("context_len", context_len, low=0)
    seq = as_ids(ids).tolist()
    if len(seq) <= context_len:
        raise ValueError(f"need more than context_len={context_len} tokens, got {len(seq)}")
    joint = Counter(tuple(seq[i - context_len:i + 1]) for i in range(context_len, len(seq)))
    ctx = Counter()
    for key, count in joint.items():
        ctx[key[:-1]] += count
    total = sum(joint.values())
    return max(0.0, -sum(c / total * math.log(c / ctx[key[:-1]]) for key, c in joint.items()))


def bigram_counts(ids: Sequence[int] | torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Count matrix C (V, V) with C[a, b] = number of times token b follows token a."""
    ids = as_ids(ids)
    if ids.numel() < 2:
        raise ValueError("need at least 2 tokens to count bigrams")
    if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
        raise ValueError(f"token ids must lie in [0, {vocab_size}), got max {int(ids.max())}")
    flat = ids[:-1] * vocab_size + ids[1:]
    return torch.bincount(flat, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size).double()


def fit_bigram(counts: torch.Tensor, steps: int = 300, lr: float = 0.5) -> tuple[torch.Tensor, list[float]]:
    """Fit a bigram softmax model (a free logit table L, (V, V)) to bigram counts with Adam.

    Minimises the next-token cross-entropy CE(L) = -sum_ab C_ab log softmax(L_a)_b / sum C, which is
    bounded below by the conditional entropy H(X_t | X_{t-1}) and approaches it only as the logits of
    never-seen pairs go to -infinity (they never get there: the norm of L grows without bound).

    Returns:
        ``(logits, losses)``: the final table (V, V) and the loss before each step (nats/token).
    """
    if counts.dim() != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"counts must be a square (V, V) matrix, got {tuple(counts.shape)}")
    if steps < 1 or not lr > 0:
        raise ValueError(f"need steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    weights = counts / counts.sum()
    logits = torch.zeros_like(counts, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    losses = []
    for _ in range(steps):
        loss = -(weights * torch.log_softmax(logits, dim=1)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return logits.detach(), losses


def lm_data(vocab_size: int = 1024, val_fraction: float = 0.1, prose_only: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor, object]:
    """Token ids of the offline corpus under a BPE tokenizer: (train (N1,), val (N2,), tokenizer)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    from ntp_lib.corpus import encode, load_python_docs, train_bpe

    text = load_python_docs(prose_only=prose_only)
    tok = train_bpe(text, vocab_size)
    ids = torch.from_numpy(encode(tok, text))
    cut = int(len(ids) * (1 - val_fraction))
    return ids[:cut], ids[cut:], tok
