# Two commands do all set-up on a fresh machine:
#   make lab    create .venv, install everything, start JupyterLab on an embedded local cluster
#   make test   same set-up (plus Debian's chromium for the browser tests), then the whole test suite
# The install is idempotent: a stamp file keyed on pyproject.toml's hash skips it when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml constraints.txt | sha256sum | cut -c1-16)

LAB_PORT ?= 8888
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
# the browser tests drive Debian's Chromium through Playwright (never `playwright install`)
CHROMIUM  := /usr/bin/chromium

.PHONY: install lab test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, from the local CPU wheel, so the project's torch>=... range is already met
	$(BIN)/python -m pip install -c constraints.txt torch
	$(BIN)/python -m pip install -c constraints.txt -e '.[all,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

lab: install
	WORKBENCH_CLUSTER=$${WORKBENCH_CLUSTER:-local} $(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) \
		--no-browser $(ROOT_FLAG) $(LAB_ARGS)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium

test: install $(CHROMIUM)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
