# Two entry points: `make demo` and `make test`. Both create or reuse .venv and install what is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.sealion-installed
# The CPU build of torch: an unpinned torch would pull a multi-GB CUDA build on a CPU machine.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-fast browser bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile scripts/install-llama-cpp.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"
	bash scripts/install-llama-cpp.sh $(PY)
	touch $(STAMP)

# First the demo model writes in the eight languages, then the recipe builds and judges a student from it.
demo: $(STAMP)
	HF_HUB_DISABLE_TELEMETRY=1 $(VENV)/bin/sealion generate demo --prompts-file recipes/demo-openers.txt \
		--temperature 0.7 --top-p 0.9 --seed 0 --max-new-tokens 40 --stop '\n\n'
	HF_HUB_DISABLE_TELEMETRY=1 $(VENV)/bin/sealion recipe recipes/demo.yaml --out runs/demo

# Chromium renders the recipe report in the browser test; best effort (the test skips without it).
browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) \
		|| echo "chromium not installed: the report's browser test will be skipped")

# One worker per core (at most 4: each may hold the demo model); a file's tests stay on one worker, so a module's
# fixtures (exported GGUFs, tiny models) are built once.
XDIST ?= -n auto --maxprocesses 4 --dist loadfile --max-worker-restart 2

test: $(STAMP) browser
	HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 $(PY) -m pytest -q $(XDIST) tests

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not demo" tests

clean:
	rm -rf $(VENV) runs .pytest_cache
