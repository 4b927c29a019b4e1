# jointbus: `make demo` runs the main job on the embedded broker; `make test` runs the suite.
# Both do all set-up from a clean clone: virtual environment, install, Kafka jars.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install kafka lint typecheck test demo bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jointbus needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

kafka: install
	$(BIN)/jointbus broker fetch

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: kafka lint typecheck
	$(BIN)/pytest

demo: kafka
	$(BIN)/jointbus demo

bench: kafka
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .jointbus .mypy_cache .ruff_cache .pytest_cache
