"""Part II: the path-star task of Bachmann & Nagarajan (ICML 2024), "The pitfalls of next-token prediction".

A path-star graph G(d, l, N) has a source ``s`` with ``d`` arms of ``l - 1`` nodes; the model reads the
shuffled edges and the query ``s, g`` and must write the path from ``s`` to the goal ``g``. Under teacher
forcing it learns a "Clever Hans" shortcut (follow one edge from the true previous node) and fails on
new graphs at ~1/d; teacherless and reversed targets change that.

One module per idea, every public name re-exported here (``from ntp_lib.pathstar import PathStar`` works):

- :mod:`ntp_lib.pathstar.task`     the graphs, their tokenizer (``PathStar``) and the training objectives
  (``OBJECTIVES``: standard, teacherless, reverse, masked; ``PathStar.make_dataset``,
  ``mask_target_inputs``)
- :mod:`ntp_lib.pathstar.metrics`  decoding (``predict``) and the diagnostics: ``exact_match``,
  ``per_position_accuracy``, ``clever_hans_accuracy``, ``indecipherable_accuracy``, the interventions
  ``edge_following_rate`` and ``exact_match_given_first``, and ``evaluate`` (all of them on one split)
- :mod:`ntp_lib.pathstar.run`      one experiment: ``PathStarConfig`` (``at_scale("cpu" | "paper")``)
  and ``run_pathstar``, which the chapters and ``python -m ntp_lib.experiments pathstar`` call

>>> task = PathStar(degree=2, path_len=3, num_nodes=10)
>>> text = task.sample_text(1, seed=0)[0]
>>> task.decode(task.encode(text)) == text
True
"""

from ntp_lib.pathstar.metrics import (
    check_model,
    clever_hans_accuracy,
    clever_hans_from_accuracy,
    edge_following_rate,
    evaluate,
    exact_match,
    exact_match_given_first,
    indecipherable_accuracy,
    indecipherable_from_accuracy,
    model_vocab_size,
    per_position_accuracy,
    predict,
)
from ntp_lib.pathstar.run import PATHSTAR_SCALES, PathStarConfig, run_pathstar
from ntp_lib.pathstar.task import OBJECTIVES, PathStar, mask_target_inputs

__all__ = [
    # the task
    "PathStar", "OBJECTIVES", "mask_target_inputs",
    # diagnostics
    "model_vocab_size", "check_model", "predict", "per_position_accuracy", "exact_match",
    "clever_hans_accuracy", "indecipherable_accuracy", "clever_hans_from_accuracy",
    "indecipherable_from_accuracy", "edge_following_rate", "exact_match_given_first", "evaluate",
    # one experiment
    "PathStarConfig", "PATHSTAR_SCALES", "run_pathstar",
]
