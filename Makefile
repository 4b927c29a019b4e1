# jointbus: `make demo` runs the main job on the embedded broker; `make test` runs the suite.
# Both do all set-up from a clean clone: virtual environment, install, Kafka jars.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install kafka lint typecheck test demo bench fuzz clean charts browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "jointbus needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) charts

# The console's charting library (Apache ECharts, version pinned by the committed lock file),
# fetched from the npm registry at build time into a git-ignored folder of package data.
CONSOLE := jointbus/console
ECHARTS := $(CONSOLE)/static/vendor/echarts.min.js
$(ECHARTS): $(CONSOLE)/vendor/package-lock.json
	@command -v npm >/dev/null || { echo "the console's charts need npm (apt-get install npm)"; exit 2; }
	cd $(CONSOLE)/vendor && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p $(dir $(ECHARTS))
	cp $(CONSOLE)/vendor/node_modules/echarts/dist/echarts.min.js $@
	rm -rf $(CONSOLE)/vendor/node_modules

charts: $(ECHARTS)

# The console's browser tests: Debian's chromium and a CJK font (installed once, as root)
browser:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'wenquanyi micro hei'; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    chromium fonts-wqy-microhei; fi

kafka: install
	$(BIN)/jointbus broker fetch

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: kafka lint typecheck browser
	$(BIN)/pytest

demo: kafka
	$(BIN)/jointbus demo

bench: kafka
	$(BIN)/python -m bench

# Longer fuzzing than the suite's: every hypothesis fuzzer 20x its examples, then every
# registered reader under atheris (coverage-guided) for FUZZ_SECONDS each; failing inputs
# are kept under tests/regressions/ and run by every `make test` after.
FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/pip install -q 'atheris>=2.3'
	JOINTBUS_FUZZ_SCALE=20 $(BIN)/pytest -n 2 -k 'fuzz' -m 'not broker' -p no:cacheprovider
	$(BIN)/python -m tests.fuzz_run --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .jointbus .mypy_cache .ruff_cache .pytest_cache
