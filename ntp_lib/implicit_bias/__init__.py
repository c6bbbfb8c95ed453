"""Part I: the implicit bias of next-token prediction in linear models (Thrampoulidis, NeurIPS 2024).

The model (paper section 2; arXiv:2402.18551). ``m`` distinct contexts with fixed embeddings ``h_j``
(rows of ``contexts``, shape (m, d)), context frequencies ``pi_j`` (``weights``, shape (m,)), and for
each context an empirical next-token distribution ``p_j`` over a vocabulary of ``V`` tokens (rows of
``probs``, shape (m, V)) with support ``S_j = {z : p_jz > 0}``. A linear decoder ``W`` (V, d) gives
logits ``W h_j`` and the cross-entropy

    CE(W) = - sum_j pi_j sum_{z in S_j} p_jz log softmax_z(W h_j)  >=  H (the entropy floor).

One module per idea, every public name re-exported here (``ib.w_mm`` and
``from ntp_lib.implicit_bias import w_mm`` both work):

- :mod:`ntp_lib.implicit_bias.data`      ``NTPData`` and its generators ``toy_2d`` (Figs 1-2),
  ``random_ntp_data`` (Figs 4-5), ``from_corpus`` (real text)
- :mod:`ntp_lib.implicit_bias.loss`      ``cross_entropy``, ``ce_gradient``, ``softmax``
- :mod:`ntp_lib.implicit_bias.geometry`  ``w_mm`` (NTP-SVM, Def. 3), ``w_star`` and ``project_F`` (the
  data subspace F), ``check_compatibility`` (Def. 1), ``check_separability`` (Def. 2), margins, norms
- :mod:`ntp_lib.implicit_bias.dynamics`  ``optimize`` (GD, normalized GD, Adam, sign descent) and
  ``ridge_path``, each returning a ``Trajectory``; ``train_ufm`` (unconstrained features)

Shapes: m contexts, d embedding dimension, V vocabulary. ``W`` is always (V, d); vec(W) is its
row-major flattening (index ``v * d + k``), so the constraint row of ``(e_z - e_v)^T W h_j`` is
``kron(e_z - e_v, h_j)``.

>>> data = toy_2d(seed=0)
>>> data.m, data.d, data.V, int(data.support_sizes.max())
(3, 2, 5, 3)
>>> bool(check_separability(data).holds and check_compatibility(data).holds)
True
"""

from ntp_lib.implicit_bias.data import (
    NTPData,
    from_corpus,
    label_smoothed,
    orthonormal_twin,
    random_ntp_data,
    toy_2d,
)
from ntp_lib.implicit_bias.dynamics import (
    OPTIMIZERS,
    Trajectory,
    curvature_on_F,
    optimize,
    record_points,
    ridge_path,
    smoothness_step,
    train_ufm,
)
from ntp_lib.implicit_bias.geometry import (
    NORMS,
    Check,
    center,
    check_compatibility,
    check_separability,
    cosine,
    margin,
    norm_of,
    normalized_margin,
    project_F,
    project_out_log_odds,
    quotient_norm,
    svm_duals,
    w_mm,
    w_star,
)
from ntp_lib.implicit_bias.loss import ce_gradient, ce_hessian, cross_entropy, limit_hessian, softmax

__all__ = [
    # data
    "NTPData", "random_ntp_data", "orthonormal_twin", "toy_2d", "from_corpus", "label_smoothed",
    # loss
    "softmax", "cross_entropy", "ce_gradient", "ce_hessian", "limit_hessian",
    # geometry
    "NORMS", "Check", "center", "project_F", "w_star", "check_compatibility", "check_separability", "w_mm",
    "margin", "normalized_margin", "norm_of", "quotient_norm", "cosine", "project_out_log_odds",
    "svm_duals",
    # dynamics
    "OPTIMIZERS", "Trajectory", "record_points", "smoothness_step", "curvature_on_F", "optimize",
    "ridge_path", "train_ufm",
]
