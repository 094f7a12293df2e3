# One command to set up and run the pipeline (`make run`), one to set up and run the tests (`make test`), one for
# the team's tracking server (`make server`).
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage as `python -m carvana.<stage>`: that python must be the venv's.
export PATH := $(BIN):$(PATH)
export NO_ALBUMENTATIONS_UPDATE := 1

.PHONY: setup run test test-fast ui server
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

# An optional dependency group (pyproject.toml) on top, for the targets that use it: `make $(VENV)/.extra-s3`
# for an S3 remote.
$(VENV)/.extra-%: $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e ".[$*]"
	touch $@

run: setup
	$(BIN)/dvc repro

# The tests, then the learning and equivalence tests that need no dvc (`-m "numerics and not e2e"`) again under each
# oneDNN cap that makes this CPU compute as an older kind does (AVX2: fp32 where this CPU trains in bf16; AVX512_CORE_BF16: bf16 without AMX).
# The suite runs on TEST_WORKERS processes, a file to a worker (its module fixtures built once), one torch thread
# each: the end-to-end tests spend most of their time in one-threaded Python (dvc, git, imports), so on 2 cores two
# workers take 25 minutes where one took 38 (a 2-core Intel Xeon with AMX).
ISA_CAPS = AVX2 AVX512_CORE_BF16
TEST_WORKERS ?= 2
test: $(VENV)/.extra-test
	OMP_NUM_THREADS=1 $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile
	@for cap in $$($(BIN)/python -c "from carvana.model.device import caps_below; print(*caps_below('$(ISA_CAPS)'.split()))"); do \
	    echo "== numerics as a CPU capped at $$cap computes (ONEDNN_MAX_CPU_ISA=$$cap)"; \
	    ONEDNN_MAX_CPU_ISA=$$cap $(BIN)/pytest -m "numerics and not e2e" || exit 1; \
	done

# The unit tests alone (no dvc, servers or browser): under two minutes.
test-fast: $(VENV)/.extra-test
	$(BIN)/pytest -m "not e2e"

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port 5000

# PostgreSQL and an MLflow server on it, on 127.0.0.1:5000, until Ctrl-C (README, "A team tracking server").
server: $(VENV)/.extra-server
	$(BIN)/carvana server
