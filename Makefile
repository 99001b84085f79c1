# Two commands do everything on a fresh machine with Python 3.11:
#   make repro   set up, then run the whole pipeline on the embedded sample (dvc repro)
#   make test    set up, then run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup repro test lint lock bench clean

# The exact versions of requirements.lock, then the project itself (its ranges are in pyproject.toml).
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

repro: setup
	. $(BIN)/activate && dvc repro

test: setup
	$(BIN)/ruff check .
	. $(BIN)/activate && python -m pytest

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# After changing dependencies in pyproject.toml: `$(BIN)/pip install -e ".[dev]"`, then `make lock`
# rewrites requirements.lock from the venv (pip itself and local labels such as torch's +cpu left out).
lock:
	{ grep '^#' requirements.lock; \
	  $(BIN)/pip freeze --all --exclude-editable | grep -v '^pip==' | sed 's/+[A-Za-z0-9.]*$$//'; \
	} > requirements.lock.new && mv requirements.lock.new requirements.lock

bench: setup
	. $(BIN)/activate && for b in benchmarks/*.py; do python $$b; done
