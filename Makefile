# Two commands do all set-up on a fresh machine:
#   make lab    create .venv, install everything, start JupyterLab on an embedded local cluster
#   make test   same set-up (plus Debian's chromium, redis-server, slurm-wlm and munge for the browser,
#               queue and SLURM tests), then the whole test suite
# The install is idempotent: a stamp file keyed on a hash of the install inputs (pyproject.toml,
# constraints.txt, the JupyterLab extension's sources) skips it when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# extensions/ may be absent (a checkout without the JupyterLab extension): wildcard and find skip it
STAMP_INPUTS := pyproject.toml constraints.txt $(wildcard extensions/package.json extensions/yarn.lock) \
	$(shell find extensions/src extensions/style -type f 2>/dev/null | LC_ALL=C sort)
STAMP  := $(VENV)/.installed-$(shell sha256sum $(STAMP_INPUTS) | sha256sum | cut -c1-16)

LAB_PORT ?= 8888
# `workbench lab` arguments; JupyterLab's own go after --, e.g. LAB_ARGS='notebooks -- --ServerApp.x=y'
LAB_ARGS ?=
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
# the browser tests drive Debian's Chromium through Playwright (never `playwright install`)
CHROMIUM  := /usr/bin/chromium
# the queue serving tests start Debian's redis-server on a free port of 127.0.0.1
REDIS     := /usr/bin/redis-server
# the SLURM tests start Debian's munged, slurmctld and slurmd with a private config in a temp folder
SLURM     := /usr/sbin/slurmctld
# pytest processes for `make test`; each runs whole test files (their module fixtures stay shared).
# Most tests wait on processes they start, so 2 finish the suite in about half the time on 2 cores.
TEST_PROCESSES ?= 2

.PHONY: install lab test bench clean

install: $(STAMP)

$(STAMP): $(STAMP_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# Node builds the JupyterLab extension (extensions/) while pip installs the package
	command -v node >/dev/null || ($(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs)
	$(BIN)/python -m pip install --upgrade pip
	# torch first, from the local CPU wheel, so the project's torch>=... range is already met
	$(BIN)/python -m pip install -c constraints.txt torch
	$(BIN)/python -m pip install -c constraints.txt -e '.[all,dev]'
	$(BIN)/workbench kernels install --sys-prefix
	rm -f $(VENV)/.installed-*
	touch $@

lab: install
	WORKBENCH_CLUSTER=$${WORKBENCH_CLUSTER:-local} $(BIN)/workbench lab --port $(LAB_PORT) --no-browser $(LAB_ARGS)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y chromium

$(REDIS):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y redis-server

$(SLURM):
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y slurm-wlm munge

test: install $(CHROMIUM) $(REDIS) $(SLURM)
	# the JupyterLab extension's unit tests (jest; node_modules were installed by its build)
	cd extensions && ../$(BIN)/jlpm install --immutable && ../$(BIN)/jlpm test
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache
