# Two commands on a fresh machine: `make demo` (the main job on the embedded model) and `make test`.
# Both create or reuse .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.seasoned-installed
EXTRAS := local,envs,serve,bench,postgres,ray,mcp,dev

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
export TOKENIZERS_PARALLELISM := false
export ANONYMIZED_TELEMETRY := False

.PHONY: demo test setup sysdeps lint clean

demo: $(STAMP)
	$(BIN)/seasoned demo

test: $(STAMP) sysdeps
	$(BIN)/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	@echo ">>> installing torch 2.13.0 (CPU build; an unpinned torch would pull a multi-GB CUDA build)"
	$(BIN)/pip install -q torch==2.13.0
	@echo ">>> installing seasoned[$(EXTRAS)]."
	@echo ">>> llama-cpp-python has no binary wheel: the first time it COMPILES llama.cpp from source"
	@echo ">>> (about 5 minutes on 2 cores, once; pip caches the wheel). Please wait..."
	$(BIN)/pip install --progress-bar off -e ".[$(EXTRAS)]"
	@touch $(STAMP)

# System packages for the browser and PostgreSQL tests (Debian); skipped with a note where not root.
sysdeps:
	@bash scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
