# Cairn — two commands: `make run` and `make test`. See README.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Two pytest workers (pytest-xdist), a file per worker at a time: the suite waits on
# processes, browsers and the database as much as it computes, so two workers halve the
# run on the 2-core CI machine (docs/development.md). PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: run test lint typecheck pytest bench install clean

run: $(STAMP)  ## Set up everything and serve on http://127.0.0.1:8000 (Ctrl-C stops)
	$(BIN)/python manage.py serve

test: $(STAMP) lint typecheck pytest  ## ruff, mypy and pytest against a real PostgreSQL + pgvector

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)  ## Benchmarks: each prints a table and a JSON line (every benchmarks/*.py)
	for script in benchmarks/[!_]*.py; do $(BIN)/python $$script || exit 1; done

install: $(STAMP)

# embedded/pgvector_portable.py rebuilds the embedded pgvector on CPUs without AVX-512
# (the wheel's build would die there with "Illegal instruction").
# torch is installed on its own first so that pip takes the pinned CPU build
# (2.13.0+cpu) and never resolves the CUDA variant with its GBs of packages.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements.lock "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	$(BIN)/python -m embedded.pgvector_portable
	touch $(STAMP)

clean:  ## Remove the virtualenv and caches (keeps .cairn/ data)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
