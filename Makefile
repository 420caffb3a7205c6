# igkd: the two commands of the README are `make book` (main job) and `make test` (the tests).
#   make book [PROFILE=quick|smoke|paper] [FORCE=1] [SET="key=value ..."]
#                                                      execute every chapter, build _build/html/index.html;
#                                                      each SET item overrides a config field in every chapter
#   make test                                          ruff (lint, import order), pytest over tests/ and nbval over notebooks/ (smoke),
#                                                      browser tests included (installs Debian's chromium as root)
#   make notebooks                                     re-execute the stored notebooks in place on smoke, their
#                                                      figures stored as half-size previews (tools/stored_previews.py)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
# make test runs the tests on TEST_WORKERS pytest-xdist workers (0: one process), each with one torch thread:
# a file's tests stay together on one worker, in order, except those of a few long files (tests/conftest.py).
# On this 2-core machine, two single-threaded workers took 6 min 56 s where one process with two threads took
# 9 min 32 s (same 684 tests, 2026-12-04); two workers of two threads each had taken 32 min (their threads compete).
TEST_WORKERS ?= 2
TEST_THREADS := $(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1 MKL_NUM_THREADS=1)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
FORCE_FLAG := $(if $(FORCE),--force,)
SET_FLAGS := $(foreach item,$(SET),--set $(item))
CHROMIUM ?= /usr/bin/chromium
# When make started (before the set-up): `make book`'s time table counts the set-up from it.
STARTED := $(shell date +%s)
APT_CHROMIUM := apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

.PHONY: setup book test browser notebooks clean-book

# Idempotent: does the work once, then only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed

book: setup
	IGKD_BOOK_STARTED=$(STARTED) $(PY) -m igkd_lib book --profile $(PROFILE) $(FORCE_FLAG) $(SET_FLAGS)

# The browser tests need Debian's chromium: installed here when missing and root, else the one command that
# installs it is printed and make stops (the browser tests never skip under `make test`).
browser:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then $(APT_CHROMIUM); \
		else echo "make test: $(CHROMIUM) is missing; install it with:  sudo sh -c '$(APT_CHROMIUM)'" >&2; exit 1; fi; \
	fi

test: setup browser
	$(PY) -m ruff check igkd_lib tests tools
	$(TEST_THREADS) IGKD_REQUIRE_BROWSER=1 IGKD_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q -n $(TEST_WORKERS) \
		--dist loadfile --durations=15 \
		tests/ notebooks/ $(NBVAL)

notebooks: setup
	@for nb in $(NOTEBOOKS) book/results_summary.ipynb book/findings.ipynb; do \
		echo "executing $$nb (smoke)"; \
		IGKD_BATCH=1 $(VENV)/bin/papermill -k python3 --cwd $$(dirname $$nb) $$nb $$nb || exit 1; \
	done
	$(PY) tools/stored_previews.py $(NOTEBOOKS) book/results_summary.ipynb book/findings.ipynb

clean-book:
	rm -rf _build
