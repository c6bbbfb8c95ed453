# The book's two commands (see README.md):
#   make book   set up and build the HTML book, with the committed live outputs, into _build/html
#   make test   set up and run every test: lint, ntp_lib unit tests and doctests, notebook conventions,
#               the book build with warnings as errors, nbval on every notebook in _toc.yml, and a
#               check of the built pages in headless Chromium
PYTHON ?= python3
PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check --constraint requirements/lock.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Two pytest workers (one per core); each notebook stays on one worker (--dist loadscope).
WORKERS ?= 2
NOTEBOOKS = $(shell $(PYTHON) tests/toc.py notebooks)
# Jupyter Book's command line, run by this Python (no reliance on a `jb` script on PATH).
JB := $(PYTHON) -c "import sys; from jupyter_book.cli.main import main; sys.exit(main())"

.PHONY: book test install-book install-test build lint pytest

install-book:
	$(PIP) -e ".[book]"

build:
	@echo "== build: jupyter-book (warnings are errors) =="
	$(JB) build . -W -n --keep-going
	@test -f _build/html/index.html || { echo 'build produced no _build/html/index.html'; exit 1; }

book: install-book build

install-test:
	@command -v chromium >/dev/null 2>&1 || { echo "== installing Debian's chromium (browser check) =="; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	$(PIP) -e ".[book,test,weights]"

lint:
	@echo "== lint: ruff =="
	$(PYTHON) -m ruff check ntp_lib tests tools _ext conftest.py

pytest:
	@echo "== pytest: unit tests, doctests, notebook conventions, nbval on $(words $(NOTEBOOKS)) notebooks, browser =="
	$(PYTHON) -m pytest -n $(WORKERS) --dist loadscope --durations=15 \
	  --doctest-modules ntp_lib tests \
	  --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-cell-timeout 1200 \
	  $(NOTEBOOKS)

test: install-test lint build pytest
