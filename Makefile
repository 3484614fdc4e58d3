# py3sidecar: two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench lint system-deps venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the Jython tests need (real Jython 2.7, JeroMQ, msgpack-java).
system-deps:
	@if ! command -v jython >/dev/null || [ ! -e /usr/share/java/jeromq.jar ] || ! ls /usr/share/java/msgpack-core*.jar >/dev/null 2>&1; then \
	  echo "installing Debian packages: jython libjeromq-java libmsgpack-java"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq jython libjeromq-java libmsgpack-java >/dev/null; \
	fi

run: $(STAMP)
	@echo "py3sidecar: serving on tcp://127.0.0.1:5557 (embedded default config)."
	@echo "  In another terminal:  $(BIN)/py3sidecar exec '1+1'"
	@echo "                        $(BIN)/py3sidecar call statistics:mean '[1, 2, 3]'"
	$(BIN)/py3sidecar serve

test: $(STAMP) system-deps
	$(BIN)/ruff check bridge sidecar tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q benchmarks --benchmark-disable-gc --benchmark-min-rounds=20 --benchmark-max-time=0.2 --benchmark-warmup=on

bench: $(STAMP) system-deps
	@echo "figures are printed at the end of the run"
	$(BIN)/python benchmarks/jython_bench.py 20000
	PY3SIDECAR_BENCH_KILLS=200 PY3SIDECAR_BENCH_LOAD_SECONDS=6 $(BIN)/python -m pytest -q benchmarks --benchmark-disable-gc --benchmark-warmup=on --benchmark-min-rounds=2000

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build dist .import_linter_cache
