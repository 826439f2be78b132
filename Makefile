# flexlogger: `make demo` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON3 ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flexlogger-installed
TORCH := torch==2.13.0
# the extras the test suite needs (the framework adapters are tested with the real packages)
EXTRAS := test,demo,all
PORT ?= 8097
STATE := .visdom

.PHONY: venv test lint demo serve stop bench assets clean distclean test-visdom03 screenshots

venv: $(STAMP)

$(PY):
	$(PYTHON3) -m venv $(VENV)

# Reinstalls only when the venv is new or setup.py / constraints.txt changed.
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): $(PY) setup.py constraints.txt
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	PIP_CONSTRAINT=constraints.txt $(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

lint: venv
	$(VENV)/bin/ruff check flexlogger tests bench examples
	$(VENV)/bin/mypy flexlogger bench

test: lint
	$(PY) -m pytest -q

# The suite against visdom 0.3 (it needs Python >= 3.12) in its own venv, .venv312 (PYTHON312=... picks the
# interpreter). torch 2.13.0 for Python 3.12 comes from PyPI only as the CUDA build: about 2.9 GB of wheels
# (torch 0.9 GB and its NVIDIA libraries), 5.3 GB installed. PYTEST_ARGS=... runs a part of the suite.
PYTHON312 ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.1[2-9]*/bin/python; do \
  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
VENV312 := .venv312
VISDOM03 := visdom==0.3.0
PYTEST_ARGS ?=

$(VENV312)/.flexlogger-installed: setup.py constraints.txt
	@test -n "$(PYTHON312)" || { echo "make test-visdom03 needs Python 3.12 or newer: set PYTHON312=/path/to/python3.12"; exit 1; }
	test -x $(VENV312)/bin/python || $(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -c "import torch" 2>/dev/null || $(VENV312)/bin/python -m pip install -q $(TORCH)
	PIP_CONSTRAINT=constraints.txt $(VENV312)/bin/python -m pip install -q -e '.[$(EXTRAS)]' '$(VISDOM03)'
	$(VENV312)/bin/python -c "import torch, sys; v = torch.__version__; print(f'torch {v}'); sys.exit(v.split('+')[0] != '$(patsubst torch==%,%,$(TORCH))')"
	touch $@

test-visdom03: $(VENV312)/.flexlogger-installed
	$(VENV312)/bin/python -c "import visdom, sys; v = visdom.__version__; print(f'visdom {v} on Python {sys.version.split()[0]}'); sys.exit(not v.startswith('0.3'))"
	$(VENV312)/bin/python -m pytest -q $(PYTEST_ARGS)

# Installs Visdom's web assets from the npm registry (once) so the UI renders offline.
assets: venv
	$(PY) -c "from flexlogger.tools.assets import ensure_assets; n = len(ensure_assets()); \
	  print(f'Visdom web assets: {n} files installed' if n else 'Visdom web assets: all present')"

# Trains the demo, leaves its Visdom server running (pid in $(STATE)/server-$(PORT).pid); `make stop` stops it.
demo: venv
	$(PY) -m flexlogger demo --port $(PORT)

serve: venv
	$(PY) -m flexlogger serve --port $(PORT) --env-path $(STATE)/env

# Stops the servers the demo and the examples started (one pid file per port); `make stop PORT=P` stops one.
STOP_PIDFILES = $(if $(filter command line,$(origin PORT)),$(STATE)/server-$(PORT).pid,$(wildcard $(STATE)/server-*.pid))
stop:
	@found=; for f in $(STOP_PIDFILES); do [ -f "$$f" ] || continue; found=1; pid=$$(cat "$$f"); \
	  if ps -p $$pid -o args= 2>/dev/null | grep -q visdom; then kill $$pid && echo "stopped Visdom server (pid $$pid, $$f)"; \
	  else echo "no Visdom server with pid $$pid ($$f)"; fi; rm -f "$$f"; done; \
	  [ -n "$$found" ] || echo "no server started by make demo or the examples (no $(STATE)/server-*.pid)"

# The README's screenshots (docs/screenshots/*.png): a server of its own, the demo twice, a compare of the two
# runs, photographed in headless Chromium (/usr/bin/chromium, or CHROMIUM=/path).
screenshots: venv
	$(PY) examples/screenshots.py

bench: venv
	$(PY) -c "import tensorboard, ignite, lightning, transformers" 2>/dev/null || PIP_CONSTRAINT=constraints.txt $(PY) -m pip install -q -e '.[bench,all]'
	@set -e; for f in bench/*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(PY) $$f; done

clean: stop
	rm -rf artifacts .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(STATE) runs
