# The course's two commands: `make book` builds the HTML book, `make test` runs every test.
# Each sets itself up first (a virtual environment, MathJax, system packages) and does nothing
# the second time round unless pyproject.toml or package-lock.json changed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
VENV_STAMP    := $(VENV)/.installed
MATHJAX_STAMP := book/assets/mathjax/es5/tex-mml-chtml.js

.PHONY: help setup mathjax data-deps system-deps book test test-fast lab formgrader release student-package clean clean-book

help:
	@echo "make book        build the HTML book into _build/html (executes every chapter)"
	@echo "make test        build the book, then run all tests (unit, autograder, leak scan, browser)"
	@echo "make test-fast   unit tests only (no book build, no built-book or browser checks, no slow tests)"
	@echo "make setup       create $(VENV) with the pinned dependencies"
	@echo "make lab         open JupyterLab on exercises/ (students: Validate, nothing written into the repository)"
	@echo "make formgrader  open nbgrader's Formgrader on autograder/course (instructors: manual grading)"
	@echo "make student-package  the folder and zip students get (_build/student-package): no solutions"
	@echo "VITCOURSE_PROFILE=quick|full chooses how much the chapters train (default: full on a CUDA GPU, quick otherwise)"

setup: $(VENV_STAMP)

# pip install runs only when pyproject.toml changed since the last install.
# A .venv made by an older or vanished Python is rebuilt; a too-old $(PYTHON) is refused first.
$(VENV_STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; $(PYTHON) is " + sys.version.split()[0] + ". Run: make $(MAKECMDGOALS) PYTHON=python3.11 (or newer)")' && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,course,dev]"
	@touch $@

mathjax: $(MATHJAX_STAMP)

# MathJax is served by the book itself so equations render offline. Only the combined
# component and its woff-v2 fonts are needed (about 1.6 MB).
$(MATHJAX_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	rm -rf book/assets/mathjax
	mkdir -p book/assets/mathjax/es5/output/chtml/fonts
	cp node_modules/mathjax/es5/tex-mml-chtml.js book/assets/mathjax/es5/
	cp -r node_modules/mathjax/es5/output/chtml/fonts/woff-v2 book/assets/mathjax/es5/output/chtml/fonts/
	@touch $@

# Debian packages: dataset-fashion-mnist (the real data; optional, else the stand-in), and for the
# tests chromium (browser check) and bubblewrap (autograder sandbox). Printed where not root.
data-deps:
	@bash tools/system_deps.sh data

system-deps:
	@bash tools/system_deps.sh test

book: setup mathjax data-deps
	$(PY) tools/build_book.py

# Tests run on every core (one test file per worker), then those that need the whole machine
# (marked serial in tests/conftest.py: CPU hogs, budgets, browser timing) alone. Both passes run
# (a pass that selects no test is fine); each prints its 20 slowest tests.
PARALLEL := -n auto --dist loadfile
define two_passes
	@status=0; \
	for pass in "$(PARALLEL) -m 'not serial$(1)'" "-m 'serial$(1)'"; do \
		echo "[make test] pytest $$pass"; \
		eval $(PY) -m pytest --durations=20 $$pass; code=$$?; \
		[ $$code -eq 0 ] || [ $$code -eq 5 ] || status=$$code; \
	done; exit $$status
endef

test: setup mathjax system-deps book
	$(call two_passes,)

test-fast: setup
	$(call two_passes, and not browser and not slow and not book)

lab: setup
	$(PY) -m autograder lab

formgrader: setup
	$(PY) -m autograder formgrader

release: setup
	$(PY) -m autograder release --all

# What students get instead of this repository (no solutions, no hidden tests): see student/README.md.
student-package: setup
	$(PY) -m autograder package --zip

clean-book:
	rm -rf _build

clean: clean-book
	rm -rf $(VENV) node_modules book/assets/mathjax
