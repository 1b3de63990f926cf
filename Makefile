# Two entry points for a fresh machine (see README):
#   make run    set up .venv, then run the default workflow (config/config.yaml)
#   make test   set up .venv, then run the test suite
# Everything else is plain Snakemake / pytest inside .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CORES  ?= 2
# torch is pinned: an unpinned torch pulls several GB of CUDA packages. On this
# project's CI and development machines the pin resolves to a local CPU wheel; on a
# standard index (PyPI) the same pin is a CUDA build of several GB; for a CPU-only
# install elsewhere use PyTorch's CPU index, e.g.
#   make setup PIP_EXTRA="--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple"
TORCH  ?= torch==2.13.0
PIP_EXTRA ?=

.PHONY: setup run test lint bench report gpu-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PIP_EXTRA) "$(TORCH)" -e ".[test]"
	touch $@

# check-config first: a YAML error in a --configfile gets its file, line and column
# (Snakemake's own message names neither; docs/running.md "When something is wrong")
run: setup
	$(BIN)/python -m instructnet check-config config/config.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/config.yaml

test: setup
	$(BIN)/python -m pytest

# static checks (CI runs them before the tests): ruff with the rule set in
# pyproject.toml, snakefmt's formatting of the rules, Snakemake's own linter
lint: setup
	$(BIN)/python -m pip install --quiet $(PIP_EXTRA) -e ".[lint]"
	$(BIN)/ruff check instructnet scripts tests
	$(BIN)/snakefmt --check --line-length 100 Snakefile workflow/
	$(BIN)/snakemake --lint

# the HTML report of the last run: every figure with its caption (README)
report: setup
	$(BIN)/snakemake --configfile config/config.yaml --report results/report.html

bench: setup
	$(BIN)/python -m instructnet.bench trials

# On a machine with a CUDA GPU: the CUDA tests and the GPU measurements (about 6-8
# minutes) -> results/bench/gpu.json and a short summary; without one, one line.
gpu-check: setup
	$(BIN)/python -m instructnet.bench gpu

clean:
	rm -rf results .snakemake
