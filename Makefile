# Every target creates .venv and installs what it needs, so a fresh clone needs only `make test` / `make demo`.
PYTHON ?= python3
VENV ?= .venv
# Pinned to the CPU build that pip finds locally; an unpinned torch would pull the multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test pytest lint demo bench clean

# Two stamps: `make demo` needs only the package and its runtime dependencies (about a minute), `make test` the
# whole dev toolchain (pytorch-ignite as the oracle, trio, mypy, FastAPI...).
RUNTIME_STAMP := $(VENV)/.installed-runtime

$(RUNTIME_STAMP): pyproject.toml Makefile
	@echo "==> creating $(VENV) and installing $(TORCH_SPEC) and ignite-async's runtime dependencies"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	@echo "==> installing the dev toolchain into $(VENV) (pytorch-ignite, trio, pytest, ruff, mypy, FastAPI...)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: lint pytest

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check ignite_async tests examples benchmarks
	$(BIN)/ruff format --check ignite_async tests examples benchmarks
	$(BIN)/mypy

demo: $(RUNTIME_STAMP)
	$(BIN)/python examples/quickstart.py

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_overhead.py
	$(BIN)/python benchmarks/concurrency.py
	$(BIN)/python benchmarks/checkpoint_stall.py
	$(BIN)/python benchmarks/service_latency.py
	$(BIN)/python benchmarks/metrics_update.py
	$(BIN)/python benchmarks/tracker_latency.py
	$(BIN)/python benchmarks/checkpoint_regimes.py
	$(BIN)/python benchmarks/gpu_overlap.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
