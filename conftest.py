"""pytest configuration shared by the unit tests and nbval.

nbval compares each notebook cell's committed outputs with a fresh run. What must not be
compared: stderr (progress bars, warnings, timings) and interactive widget state. Everything else
(text/plain, text/html, image/svg+xml) is compared exactly after the regexes in
tests/nbval_sanitize.cfg.
"""

import os

# Progress bars off in kernels started by nbval (they inherit this environment).
os.environ.setdefault("NTP_QUIET", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

NOT_COMPARED = ("stderr", "application/vnd.jupyter.widget-view+json")


def pytest_collectstart(collector):
    if str(getattr(collector, "path", "")).endswith(".ipynb"):
        collector.skip_compare = tuple(collector.skip_compare) + NOT_COMPARED
