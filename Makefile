# py3sidecar: two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test bench bench-baseline before-tree fuzz lint system-deps venv clean screenshot soak gateway-jar mutate

# The Jython library's Java helper (ignition-scripts/java, javac --release 11; the bundle ships it).
GATEWAY_JAR  := build/py3sidecar-gateway.jar
JAVA_SOURCES := $(shell find ignition-scripts/java -name '*.java')

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --config-settings editable_mode=compat -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages the Jython tests need (real Jython 2.7, JeroMQ, msgpack-java, and a JDK's javac
# for the gateway helper jar).
system-deps:
	@if ! command -v jython >/dev/null || [ ! -e /usr/share/java/jeromq.jar ] || ! ls /usr/share/java/msgpack-core*.jar >/dev/null 2>&1; then \
	  echo "installing Debian packages: jython libjeromq-java libmsgpack-java"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq jython libjeromq-java libmsgpack-java >/dev/null; \
	fi
	@if ! command -v javac >/dev/null || ! command -v jar >/dev/null; then \
	  echo "installing Debian packages: default-jdk-headless (javac for $(GATEWAY_JAR))"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq default-jdk-headless >/dev/null; \
	fi
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing Debian packages: chromium chromium-driver (the dashboard's browser test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

$(GATEWAY_JAR): $(JAVA_SOURCES) sidecar/deploy/gateway_jar.py | $(STAMP) system-deps
	$(BIN)/python -m sidecar.deploy.gateway_jar $@

gateway-jar: $(GATEWAY_JAR)

run: $(STAMP)
	@echo "py3sidecar: serving on tcp://127.0.0.1:5557 (embedded default config)."
	@echo "  In another terminal:  $(BIN)/py3sidecar exec '1+1'"
	@echo "                        $(BIN)/py3sidecar call statistics:mean '[1, 2, 3]'"
	$(BIN)/py3sidecar serve

test: $(STAMP) system-deps $(GATEWAY_JAR)
	$(BIN)/ruff check bridge sidecar tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q tests
	$(BIN)/python -m pytest -q benchmarks --benchmark-disable-gc --benchmark-min-rounds=20 --benchmark-max-time=0.2 --benchmark-warmup=on

fuzz: $(STAMP) system-deps
	@echo "a million fuzzed frames through both fronts (tests/fuzz/run_fuzz.py); figures at the end"
	$(BIN)/python tests/fuzz/run_fuzz.py 1000000
	@if $(BIN)/python -c "import atheris" 2>/dev/null; then \
	  echo "coverage-guided pass on the decode paths (atheris)"; \
	  $(BIN)/python tests/fuzz/atheris_decode.py -runs=300000 -max_len=2048 -print_final_stats=1; \
	else echo "atheris is not installed here: the coverage-guided pass is skipped"; fi

# One table of same-run ratios (benchmarks/report.py: peers, Jython, throughput, payload,
# Datasets, recovery, the issue's goals), also as benchmarks/results/report.{csv,json,png};
# then the Dask route and the success-metrics and recovery figures.
# The before/after figures (issue 21) run the tree at BEFORE_COMMIT beside this one, same run.
bench: $(STAMP) system-deps $(GATEWAY_JAR) before-tree
	@echo "figures are printed at the end of each run"
	$(BIN)/python benchmarks/report.py
	$(BIN)/python benchmarks/cpu_per_call.py --calls 5000 --rounds 5 --before $(BEFORE_TREE) --json benchmarks/results/cpu_per_call.json
	$(BIN)/python benchmarks/throughput.py --before $(BEFORE_TREE) --seconds 1 --repeats 5   # 2 and 4 workers: ours, before, PPE, mp.Pool
	$(BIN)/python benchmarks/cost_split.py   # where the wall, the throughput and a 32 MiB reply go, by process, beside PPE
	$(BIN)/python benchmarks/dask_route.py    # our Dask route vs a bare Client.submit
	PY3SIDECAR_BENCH_KILLS=200 PY3SIDECAR_BENCH_LOAD_SECONDS=6 PY3SIDECAR_BENCH_EPISODES=10 $(BIN)/python -m pytest -q benchmarks --benchmark-disable-gc --benchmark-warmup=on --benchmark-min-rounds=2000

# The tree before issue 21's CPU cuts, extracted once (read-only use) for the before column; a
# clone without that commit says so and the figures run without it (the guard never needs it).
BEFORE_COMMIT := 9f4ee9f
BEFORE_TREE   := build/before
before-tree:
	@if [ -f $(BEFORE_TREE)/sidecar/__main__.py ]; then :; \
	elif git cat-file -e $(BEFORE_COMMIT)^{commit} 2>/dev/null; then \
	  rm -rf $(BEFORE_TREE).part && mkdir -p $(BEFORE_TREE).part && \
	  git archive $(BEFORE_COMMIT) | tar -x -C $(BEFORE_TREE).part && \
	  rm -rf $(BEFORE_TREE) && mv $(BEFORE_TREE).part $(BEFORE_TREE); \
	else echo "before/after: commit $(BEFORE_COMMIT) is not in this clone (git fetch origin $(BEFORE_COMMIT)): the before column is skipped"; fi

# The CPU guard's baseline (benchmarks/baseline.json): each process's CPU per trivial call as a
# multiple of the same-run floor; benchmarks/test_cpu_guard.py fails above 1.5x of it. Run it on a
# quiet machine after an intended change of the hot path's cost, and commit the file.
bench-baseline: $(STAMP) system-deps $(GATEWAY_JAR)
	$(BIN)/python benchmarks/cpu_per_call.py --calls 5000 --rounds 5 --write-baseline

# 10 minutes (PY3SIDECAR_SOAK_SECONDS to shorten): 8 callers, a worker SIGKILLed every 0.5 s,
# hostile calls mixed in; fails on a lost/duplicated reply, `internal`, or RSS/fd/thread growth.
soak: $(STAMP)
	$(BIN)/python benchmarks/soak.py

# Mutation testing of the failure contract (docs/mutation.md): mutmut mutates the modules listed
# in pyproject.toml [tool.mutmut] and runs each mutant against the unit tests that reach it;
# the report fails when a module has under 90% killed or a survivor is unaccounted for.
# A clean run each time (mutants/ is rebuilt), so the report is the code's, not a cache's.
mutate: $(STAMP)
	rm -rf mutants
	@start=$$(date +%s); load="$$(cut -d' ' -f1-3 /proc/loadavg)"; \
	env -u PYTHONPATH $(BIN)/mutmut run --max-children $$(nproc) >mutants.log 2>&1 || { tail -40 mutants.log; exit 1; }; \
	end=$$(date +%s); \
	$(BIN)/python tests/mutation/report.py --seconds $$((end - start)) \
	  --conditions "$$(nproc) cores, load average $$load at the start, $$(cut -d' ' -f1-3 /proc/loadavg) at the end"

clean:
	rm -rf mutants mutants.log $(VENV) .pytest_cache .benchmarks build dist .import_linter_cache

# Refreshes docs/dashboard.png and docs/console*.png from the browser tests (headless Chromium).
screenshot: $(STAMP) system-deps
	PY3SIDECAR_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/integration/test_dashboard_browser.py \
		tests/integration/test_console_browser.py
