"""Run-time set-up shared by every chapter: seeds, threads, determinism, figures, progress bars, glue.

Every notebook calls :func:`setup` once, right after its imports::

    >>> import ntp_lib
    >>> info = ntp_lib.setup(seed=0, threads=1)
    >>> info["seed"], info["threads"]
    (0, 1)

Threads: ``threads="auto"`` (the default) is one thread when the book's outputs are produced or
checked (under CI, ``NTP_QUIET=1`` or pytest: the same float reductions in the same order give
bit-identical results, and two test workers share two cores) and every core for a reader, whose
notebook then runs about twice as fast on a 2-core machine. The printed numbers are rounded so that
either way they read the same.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from typing import Any

import numpy as np

#: True when running under continuous integration or the book's test command.
QUIET_ENV_VARS = ("CI", "NTP_QUIET")


def is_quiet() -> bool:
    """Whether progress bars should be silent (under CI or ``NTP_QUIET=1``)."""
    return any(os.environ.get(v, "").lower() not in ("", "0", "false") for v in QUIET_ENV_VARS)


def under_test() -> bool:
    """Whether the book's outputs are being produced or checked: quiet (CI, ``NTP_QUIET``) or pytest."""
    return is_quiet() or "PYTEST_CURRENT_TEST" in os.environ or "PYTEST_XDIST_WORKER" in os.environ


def setup(seed: int = 0, threads: int | str | None = "auto", deterministic: bool = True,
          figures: bool = True) -> dict[str, Any]:
    """Seed every generator, fix threading and determinism, set figure defaults.

    Args:
        seed: seed for ``random``, NumPy's global generator and torch (an int >= 0).
        threads: number of CPU threads for torch and for NumPy's BLAS (through threadpoolctl);
            ``None`` leaves the libraries' defaults (all cores); ``"auto"``: 1 under test
            (:func:`under_test`), else ``None``.
        deterministic: ask torch for deterministic algorithms (``torch.use_deterministic_algorithms``).
        figures: set the book's matplotlib defaults (size, dpi, grid).

    Returns:
        A dict describing what was set (seed, threads, torch version, quiet progress bars).

    Raises:
        ValueError: if ``seed`` is negative or ``threads`` is not a positive int.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if threads == "auto":
        threads = 1 if under_test() else None
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer))
                                or threads < 1):
        raise ValueError(f"threads must be 'auto', None or an int >= 1, got {threads!r}")
    random.seed(seed)
    np.random.seed(seed)
    info: dict[str, Any] = {"seed": int(seed), "threads": threads, "quiet": is_quiet()}
    if is_quiet():
        os.environ.setdefault("TQDM_DISABLE", "1")
    if threads is not None:
        # Small BLAS calls on many threads oversubscribe a 2-core machine (8x slower measured here)
        # and change float summation order between runs.
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=int(threads), user_api="blas")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but Part I needs only NumPy
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        if threads is not None:
            torch.set_num_threads(int(threads))
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        info["threads"] = torch.get_num_threads()
        info["torch"] = torch.__version__
    if figures:
        _figure_defaults()
    # Library deprecation chatter is not part of the lesson; real errors still raise.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    # tqdm.auto, imported by Hugging Face libraries, asks for notebook widgets the book does not use.
    warnings.filterwarnings("ignore", message="IProgress not found")
    return info


def rounded(x: float, decimals: int, slack: float) -> float:
    """``round(x, decimals)``, refusing a value that sits within ``slack`` of a rounding boundary.

    A printed number is a promise that another CPU prints the same digits. When ``x`` may move by up
    to ``slack`` between machines (kernels, summation order), its rounding is reproducible only if
    ``x - slack`` and ``x + slack`` round alike; otherwise print fewer decimals.

    >>> rounded(0.5812, 2, slack=1e-3)
    0.58
    >>> rounded(0.5849, 2, slack=1e-3)
    Traceback (most recent call last):
    ...
    ValueError: 0.5849 is within 0.001 of a rounding boundary at 2 decimals: print fewer decimals
    """
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)) or decimals < 0:
        raise ValueError(f"decimals must be an int >= 0, got {decimals!r}")
    if not (isinstance(slack, (int, float, np.floating)) and math.isfinite(slack) and slack >= 0):
        raise ValueError(f"slack must be a finite number >= 0, got {slack!r}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot round a non-finite value {x!r}")
    r = round(x, decimals)
    if round(x - slack, decimals) != r or round(x + slack, decimals) != r:
        raise ValueError(f"{x:.{decimals + 2}g} is within {slack:g} of a rounding boundary at {decimals} decimals: "
                         "print fewer decimals")
    return r


def glue(name: str, value: Any, display: bool = True) -> None:
    """Record ``value`` under ``name`` for the book's prose (``{glue:text}`name```), as MyST-NB's
    ``glue`` does when MyST-NB is installed (the book build); elsewhere (Colab, a plain Jupyter)
    simply show the value when ``display`` is true and do nothing otherwise.

    Returns None, like MyST-NB's ``glue``, so a ``glue(...)`` that ends a cell adds no output.

    >>> glue("answer", 42, display=False)
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"glue name must be a non-empty str, got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return None
    myst_glue(name, value, display=display)
    return None


def _figure_defaults() -> None:
    import matplotlib as mpl

    mpl.rcParams.update({
        "figure.figsize": (6.4, 4.0),
        "figure.dpi": 100,
        "savefig.dpi": 150,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "font.size": 10,
    })


def check_int(name: str, value: Any, low: int = 1, high: int | None = None, why: str = "") -> int:
    """``value`` as an int if it is one in [low, high] (bools refused); else ValueError naming it.

    The one integer check of the library; ``why`` adds the reason for the range to the message.

    >>> check_int("k", 3, low=1, high=5)
    3
    >>> check_int("k", 0)
    Traceback (most recent call last):
    ...
    ValueError: k must be an int >= 1, got 0
    >>> check_int("rank", 9, low=0, high=4, why="min(V, d) of the matrix")
    Traceback (most recent call last):
    ...
    ValueError: rank must be an int in [0, 4] (min(V, d) of the matrix), got 9
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer))
    if not ok or value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        reason = f" ({why})" if why else ""
        raise ValueError(f"{name} must be an int {allowed}{reason}, got {value!r}")
    return int(value)


def check_positive_ints(prefix: str = "", **values: Any) -> None:
    """Raise ValueError naming the first value that is not an int >= 1 (bools are refused too).

    >>> check_positive_ints(steps=10, d=3)
    >>> check_positive_ints(steps=0)
    Traceback (most recent call last):
    ...
    ValueError: steps must be an int >= 1, got 0
    """
    for name, value in values.items():
        check_int(f"{prefix}{name}", value, low=1)


def check_number(name: str, value: Any, low: float, high: float | None = None, low_open: bool = False) -> float:
    """``value`` as a float if it is a finite number in the range; else ValueError naming it.

    The range is [low, high], or (low, high] with ``low_open=True``.

    >>> check_number("lr", 0.0, low=0.0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: lr must be a finite number > 0.0, got 0.0
    """
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > low if low_open else v >= low) and (high is None or v <= high)
    if not ok:
        lower = f"> {low}" if low_open else f">= {low}"
        allowed = lower if high is None else f"in {'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name} must be a finite number {allowed}, got {value!r}")
    return float(value)


def as_finite_array(name: str, value: Any, ndim: int, min_rows: int = 1) -> np.ndarray:
    """A finite float64 NumPy array of ``ndim`` dimensions from an array, a list or a tensor.

    The one input check of the library's numerical functions: it names the argument and says what
    is wrong (not numeric, wrong number of dimensions, fewer than ``min_rows`` rows, NaN or inf).

    >>> as_finite_array("W", [[1, 2], [3, 4]], 2).shape
    (2, 2)
    >>> as_finite_array("W", [[1.0, float("nan")]], 2)
    Traceback (most recent call last):
    ...
    ValueError: W must be finite, got nan at index [0, 1]
    """
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().to("cpu").double().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}") from err
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.size == 0 or arr.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} row(s) and be non-empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise ValueError(f"{name} must be finite, got {arr[tuple(bad)]} at index {bad}")
    return arr


SCALES = ("cpu", "paper")


def at_scale(scale: str, **choices: Any) -> Any:
    """The value for ``scale`` among ``choices``: the one way a notebook derives a setting from ``SCALE``.

    ``"cpu"`` is the book's default (minutes on a 2-core CPU, the committed outputs) and ``"paper"``
    the paper's setting (a GPU, often the internet). Both must be given, so a reader who switches
    ``SCALE`` never meets a missing value.

    >>> at_scale("cpu", cpu=20_000, paper=200_000)
    20000
    >>> at_scale("gpu", cpu=1, paper=2)
    Traceback (most recent call last):
    ...
    ValueError: SCALE must be one of ('cpu', 'paper'), got 'gpu'
    """
    if set(choices) != set(SCALES):
        raise ValueError(f"at_scale needs one value for each scale {SCALES}, got {sorted(choices)}")
    if scale not in SCALES:
        raise ValueError(f"SCALE must be one of {SCALES}, got {scale!r}")
    return choices[scale]


def online() -> bool:
    """Whether a notebook may use the internet: on Colab, or where the reader set ``NTP_ONLINE=1``.

    The book's outputs are made offline; cells that download Pythia or Hugging Face data run only when
    this is true, so ``make test`` never touches the network.
    """
    import sys

    return "google.colab" in sys.modules or os.environ.get("NTP_ONLINE", "") == "1"


def config_from_dict(cls: type, d: dict) -> Any:
    """Build the dataclass ``cls`` from a dict, refusing unknown keys: a typo must not pass silently.

    >>> from ntp_lib.gpt import GPTConfig
    >>> config_from_dict(GPTConfig, {"n_layer": 2}).n_layer
    2
    >>> config_from_dict(GPTConfig, {"n_layers": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown GPTConfig keys ['n_layers']; allowed: ['bias', 'block_size', ...]
    """
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(known)}")
    return cls(**d)


def device(prefer: str = "auto") -> torch.device:  # noqa: F821
    """The torch device to use: ``"auto"`` picks CUDA when available, else the CPU.

    >>> device("cpu").type
    'cpu'
    """
    import torch

    allowed = ("auto", "cpu", "cuda", "mps")
    if prefer not in allowed:
        raise ValueError(f"prefer must be one of {allowed}, got {prefer!r}")
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise ValueError("prefer='cuda' but torch.cuda.is_available() is False")
    return torch.device(prefer)


def machine() -> dict[str, Any]:
    """Where a run happened, for recorded results: platform, CPU count, torch version and threads, GPU."""
    import platform

    import torch

    info = {"platform": platform.platform(), "processor": platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def progress(iterable=None, **kwargs):
    """A ``tqdm`` progress bar on stderr, silent under CI (``TQDM_DISABLE``/``NTP_QUIET``).

    Plain ``tqdm`` (not ``tqdm.auto``): widgets would become notebook outputs that nbval compares.
    """
    from tqdm import tqdm

    kwargs.setdefault("disable", is_quiet())
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
