# make demo: set up, run the pipeline on the default (synthetic mini BBBC021) config, write the report.
# make check: set up, the linters, the fast tests (no server, no whole workflow, no long training; in parallel).
# make test: set up, add the servers the tests start (setup-test), run the linters (lint), then the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
CP_VENV := .venv-cellprofiler
CORES ?= all

.PHONY: setup setup-test system system-test profiles demo lint check test clean

# what the pipeline needs: Debian packages, the two venvs, the cluster profiles by name (--profile aws-gpu)
setup: system $(VENV)/.installed $(CP_VENV)/.installed profiles

# what the tests add: the servers they start (nginx, Slurm, Ceph radosgw)
setup-test: setup system-test

system:
	@bash envs/install_system.sh pipeline

system-test: system  # after it: one apt-get at a time, also under make -j
	@bash envs/install_system.sh test

profiles:
	@bash envs/link_profiles.sh

$(VENV)/.installed: envs/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip==25.3
	$(VENV)/bin/pip install -q -r envs/requirements.txt
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(CP_VENV)/.installed: envs/install_cellprofiler.sh envs/cellprofiler-requirements.txt
	bash envs/install_cellprofiler.sh $(CP_VENV)
	touch $@

demo: setup
	$(VENV)/bin/snakemake --cores $(CORES)
	$(VENV)/bin/snakemake --report results/report.html
	@echo "Report: results/report.html"

# Snakemake's linter (profiles/default applies), then the formatters and linter of rules and Python, checking only
lint: $(VENV)/.installed
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the fast tier, for every change: the linters and the tests that start no server, run no whole workflow and train
# no model for long, on every core (pytest-xdist); `make test` runs them all, one at a time
check: setup lint
	$(VENV)/bin/python -m pytest -n auto --dist worksteal -m "not e2e and not cellprofiler and not slurm and not s3 and not range and not slow"

test: setup-test lint
	$(VENV)/bin/python -m pytest

clean:
	rm -rf results .snakemake
