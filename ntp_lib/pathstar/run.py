"""One path-star experiment: a configuration (:class:`PathStarConfig`) and the run (:func:`run_pathstar`).

A run samples ``train_size`` graphs of G(degree, path_len, num_nodes) and ``test_size`` held-out ones (another
seed), trains a model on one objective and evaluates it ``evals`` times over training with
:func:`ntp_lib.pathstar.metrics.evaluate` (Bachmann & Nagarajan 2024, Sections 4-5). The command line
``python -m ntp_lib.experiments pathstar`` builds its flags from :class:`PathStarConfig` and calls
:func:`run_pathstar`, so a chapter and a recorded command describe a run the same way.

>>> cfg = PathStarConfig.at_scale("cpu")
>>> str(cfg.task), cfg.train_size, cfg.epochs
('G(2,3), N=50', 2000, 40)
>>> cfg.replace(objective="teacherless").objective
'teacherless'
>>> cfg.replace(path_lenn=5)
Traceback (most recent call last):
...
ValueError: unknown PathStarConfig keys ['path_lenn']; allowed: ['batch_size', ...]
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ntp_lib.models import MODEL_KINDS, TaskVocabLM, build_model, load_pretrained, single_token_ids
from ntp_lib.pathstar.metrics import check_model, edge_following_rate, evaluate
from ntp_lib.pathstar.task import OBJECTIVES, PathStar
from ntp_lib.runtime import SCALES, check_int, check_number, check_positive_ints, config_from_dict, machine
from ntp_lib.runtime import device as pick_device
from ntp_lib.train import TrainConfig, epoch_batches, train

DEVICES = ("auto", "cpu", "cuda", "mps")
#: The models a run can train. Each of ``MODEL_KINDS`` is a freshly initialised architecture of ``build_model``;
#: ``"pretrained"`` is the pretrained causal LM named by ``PathStarConfig.pretrained``, fine-tuned in the task's
#: vocabulary (TaskVocabLM).
MODELS = (*MODEL_KINDS, "pretrained")


def _help(text: str, **kw: Any) -> Any:
    return field(metadata={"help": text}, **kw)


@dataclass(frozen=True)
class PathStarConfig:
    """Everything that defines a path-star run; unknown keys are refused.

    The defaults are the command line's default run: G(2,5) with N=50 nodes, the book's 2-layer width-64
    GPT, 5,000 training graphs, 80 epochs of batch 256 (1,520 steps): the edge lookup (Clever-Hans accuracy
    1), training graphs fitted by memorisation and held-out exact match at 1/d, in about 5 minutes on a 2-core
    CPU with both cores (measured 2026-12-05: 301 s; held-out exact match 0.479, training graphs 1.000; with
    ``--objective reverse`` held-out 1.000 from step 456).
    :meth:`at_scale` gives the chapters' two settings. Raises ValueError for a value out of range, naming it.
    """

    objective: str = _help("standard = teacher forcing; teacherless; reverse; masked = token masking "
                           "(Frydenlund 2025)", default="standard")
    model: str = _help("architecture (ntp_lib.models.build_model), or pretrained: fine-tune --pretrained",
                       default="gpt")
    pretrained: str | None = _help("Hugging Face id or folder of a causal LM to fine-tune (with model=pretrained; "
                                   "an id needs the internet), e.g. gpt2", default=None)
    degree: int = _help("d, arms of the star", default=2)
    path_len: int = _help("l, nodes on the path from s to g", default=5)
    num_nodes: int = _help("N, node labels", default=50)
    layers: int = _help("transformer layers", default=2)
    width: int = _help("hidden size", default=64)
    heads: int | None = _help("attention heads (default: width // 64, at least 1)", default=None)
    train_size: int = _help("training graphs", default=5_000)
    test_size: int = _help("held-out graphs", default=2_000)
    eval_size: int = _help("training graphs evaluated at each evaluation", default=2_000)
    batch_size: int = _help("graphs per step", default=256)
    lr: float = _help("peak learning rate of AdamW", default=1e-3)
    min_lr_ratio: float = _help("the cosine schedule ends at this fraction of lr (1.0: constant after warmup)",
                                default=0.1)
    epochs: float = _help("passes over the training graphs", default=80)
    steps: int | None = _help("optimizer steps (overrides epochs)", default=None)
    evals: int = _help("evaluations over training", default=10)
    mask_prob: float = _help("masking probability of the masked objective", default=0.5)
    seed: int = _help("seed of the data, the model and the batches", default=0)
    device: str = _help("where to train", default="cpu")
    checkpoint: str | None = _help("file holding the training state, saved at every evaluation; a run started "
                                   "again with the same file resumes where it stopped", default=None)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if (self.model == "pretrained") != (self.pretrained is not None):
            raise ValueError(f"pretrained names the model to fine-tune, and goes with model='pretrained' only; "
                             f"got model={self.model!r}, pretrained={self.pretrained!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        check_positive_ints(layers=self.layers, width=self.width, train_size=self.train_size,
                            test_size=self.test_size, eval_size=self.eval_size, batch_size=self.batch_size,
                            evals=self.evals)
        if self.heads is not None:
            check_positive_ints(heads=self.heads)
        if self.steps is not None:
            check_positive_ints(steps=self.steps)
        check_number("lr", self.lr, low=0.0, low_open=True)
        check_number("min_lr_ratio", self.min_lr_ratio, low=0.0, high=1.0)
        check_number("epochs", self.epochs, low=0.0, low_open=True)
        check_number("mask_prob", self.mask_prob, low=0.0, high=1.0)
        check_int("seed", self.seed, low=0)
        self.task  # noqa: B018 - PathStar checks degree, path_len and num_nodes

    @property
    def task(self) -> PathStar:
        """The task G(degree, path_len, num_nodes)."""
        return PathStar(self.degree, self.path_len, self.num_nodes)

    @classmethod
    def at_scale(cls, scale: str, **overrides: Any) -> PathStarConfig:
        """The chapters' settings: ``"cpu"``, a live run on G(2,3) that fits in a minute on a CPU core,
        or ``"paper"``, the recipe of Bachmann & Nagarajan (G(2,5), 6 x 384, 200k graphs, batch 256, the
        README's lr 1e-4 held constant after 100 warmup steps, 500 epochs: a multi-day GPU job)."""
        if scale not in SCALES:
            raise ValueError(f"SCALE must be one of {SCALES}, got {scale!r}")
        return cls.from_dict({**PATHSTAR_SCALES[scale], **overrides})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PathStarConfig:
        return config_from_dict(cls, d)

    def replace(self, **changes: Any) -> PathStarConfig:
        """A copy with ``changes``; unknown keys raise ValueError."""
        return self.from_dict({**dataclasses.asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The two settings of the chapters, as changes to the defaults of :class:`PathStarConfig`.
PATHSTAR_SCALES: dict[str, dict[str, Any]] = {
    # G(2,3), the book's 2-layer width-64 GPT, 2000 training graphs: small enough for one CPU core.
    "cpu": dict(path_len=3, train_size=2_000, test_size=1_000, eval_size=1_000, batch_size=128, epochs=40),
    # The paper's recipe (Bachmann & Nagarajan 2024, README and Appendix): the 6x384 GPT with 6 heads on
    # 200k graphs, AdamW at batch 256 and the README's lr 1e-4, 100 warmup steps, then a constant rate
    # (the reference code's cosine counts samples, so its rate barely moves), up to 500 epochs.
    # 500 epochs are 390,625 steps: a GPU job of days. The recorded 6x384 run is this model and data at
    # batch 1024 for 2,500 steps: 12.8 of the 500 epochs (about 3% of the graphs seen).
    "paper": dict(layers=6, width=384, heads=6, train_size=200_000, test_size=20_000, batch_size=256, lr=1e-4,
                  min_lr_ratio=1.0, epochs=500, evals=20, device="auto"),
}


def run_pathstar(config: PathStarConfig | None = None, *, progress: bool = False, return_model: bool = False,
                 **overrides: Any) -> dict[str, Any]:
    """Train and evaluate one path-star run described by ``config`` (default :class:`PathStarConfig`),
    with ``overrides`` applied (``run_pathstar(path_len=3)`` works too).

    Returns a dict: the final metrics (``train_*`` on up to ``eval_size`` training graphs, ``test_*``
    on the held-out graphs), ``clever_hans_accuracy`` (positions 3..l),
    ``clever_hans_accuracy_no_goal`` (3..l-1), ``indecipherable_accuracy`` (position 2),
    ``edge_following_rate`` (held-out; None unless degree >= 2 and path_len >= 4), ``chance``
    (1/d), ``history`` (``evals`` evaluations over training), ``loss_curve``, ``config`` and
    ``machine``; with ``return_model=True`` also ``model``, ``task`` and the held-out ``test_data``
    (not JSON-able).
    """
    cfg = (config or PathStarConfig()).replace(**overrides)
    task = cfg.task
    dev = pick_device(cfg.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.seed)
    if cfg.model == "pretrained":   # layers, width and heads are the pretrained model's own
        hf_model, tokenizer = load_pretrained(cfg.pretrained)
        net = TaskVocabLM(hf_model, single_token_ids(tokenizer, task.symbols))
    else:
        net = build_model(cfg.model, task.vocab_size, task.seq_len - 1, cfg.layers, cfg.width, cfg.heads)
    check_model(net, task)
    # Evaluation reads the objective's own targets; a masked model is evaluated as teacher forcing's.
    eval_objective = "standard" if cfg.objective == "masked" else cfg.objective
    train_tokens = torch.as_tensor(task.sample(cfg.train_size, seed=2 * cfg.seed + 1)["tokens"])
    test_data = task.sample(cfg.test_size, seed=2 * cfg.seed + 2)
    n_eval = min(cfg.eval_size, cfg.train_size)
    x_ev, y_ev = (t.to(dev) for t in task.make_dataset(train_tokens[:n_eval], eval_objective))
    x_te, y_te = (t.to(dev) for t in task.make_dataset(test_data["tokens"], eval_objective))
    batch_size = min(cfg.batch_size, cfg.train_size)
    indices = epoch_batches(cfg.train_size, batch_size, seed=cfg.seed)
    per_epoch = indices.steps_per_epoch
    total = int(cfg.steps) if cfg.steps is not None else max(1, round(cfg.epochs * per_epoch))
    eval_every = max(1, total // cfg.evals)

    def get_batch(step: int, g: torch.Generator):
        x, y = task.make_dataset(train_tokens[indices(step)], cfg.objective, cfg.mask_prob, generator=g)
        return x.to(dev), y.to(dev)

    track_edges = task.degree >= 2 and task.path_len >= 4     # where edge_following_rate is defined

    def callback(step: int, m: torch.nn.Module) -> dict[str, Any]:
        tr = evaluate(m, task, x_ev, y_ev, eval_objective)
        te = evaluate(m, task, x_te, y_te, eval_objective)
        out = {"epoch": round(step / per_epoch, 3),
               **{f"train_{k}": v for k, v in tr.items()}, **{f"test_{k}": v for k, v in te.items()}}
        if track_edges:
            out["test_edge_following_rate"] = edge_following_rate(m, task, test_data, seed=cfg.seed)
        return out

    tcfg = TrainConfig(steps=total, lr=cfg.lr, warmup_steps=min(100, total // 10), min_lr_ratio=cfg.min_lr_ratio,
                       eval_every=eval_every, log_every=max(1, eval_every // 4), seed=cfg.seed, progress=progress,
                       checkpoint=cfg.checkpoint, checkpoint_every=eval_every if cfg.checkpoint else 0)
    t0 = time.perf_counter()
    history = train(net, tcfg, get_batch, callback=callback, device=dev)
    seconds = time.perf_counter() - t0
    evals_done = [h for h in history if "test_exact_match" in h]
    final = evals_done[-1]
    tokens = total * batch_size * (task.seq_len - 1)
    config_record = cfg.to_dict()
    if cfg.objective != "masked":
        config_record["mask_prob"] = None
    result = {k: v for k, v in final.items() if k.startswith(("train_", "test_"))}
    result.update({
        "clever_hans_accuracy": final["test_clever_hans_accuracy"],
        "clever_hans_accuracy_no_goal": final["test_clever_hans_accuracy_no_goal"],
        "indecipherable_accuracy": final["test_indecipherable_accuracy"],
        "edge_following_rate": final.get("test_edge_following_rate"),
        "chance": 1.0 / cfg.degree,
        "steps": total, "epochs_done": round(total / per_epoch, 3), "num_params": net.num_params(),
        "seconds": round(seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
        "loss_curve": [[h["step"], round(h["loss"], 5)] for h in history],
        "history": [{k: v for k, v in h.items() if k != "tokens_per_s"} for h in evals_done],
        "config": config_record, "ntp_lib_version": _version(), "machine": machine(),
    })
    if return_model:
        result.update(model=net, task=task, test_data=test_data)
    return result


def _version() -> str:
    import ntp_lib

    return ntp_lib.__version__
