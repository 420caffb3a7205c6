# igkd: the two commands of the README are `make book` (main job) and `make test` (the tests).
#   make book [PROFILE=quick|smoke|paper] [FORCE=1]   execute every chapter, build _build/html/index.html
#   make test                                          pytest over tests/ and nbval over notebooks/ (smoke)
#   make notebooks                                     re-execute the stored notebooks in place on smoke
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg
FORCE_FLAG := $(if $(FORCE),--force,)

.PHONY: setup book test notebooks clean-book

# Idempotent: does the work once, then only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(VENV)/.installed

book: setup
	$(PY) -m igkd_lib book --profile $(PROFILE) $(FORCE_FLAG)

test: setup
	$(PY) -m pytest -q tests/ notebooks/ $(NBVAL)

notebooks: setup
	@for nb in $(NOTEBOOKS) book/results_summary.ipynb book/findings.ipynb; do \
		echo "executing $$nb (smoke)"; \
		$(VENV)/bin/papermill -k python3 --cwd $$(dirname $$nb) $$nb $$nb || exit 1; \
	done

clean-book:
	rm -rf _build
