# Everything runs from .venv, created and filled from the pinned requirement
# files on first use (and again whenever they change).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench chaos venv clean

demo: $(STAMP)
	$(PY) bot.py demo

test: $(STAMP) lint
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m mypy bot.py  # alone: bot.py and the bot/ package share a name

bench: $(STAMP)
	$(PY) -m benchmarks.speed_bench  # writes docs/BENCHMARKS.md and docs/gantt.png
	$(PY) -m benchmarks.account_bench  # writes docs/ACCOUNTS.md
	$(PY) -m benchmarks.ray_bench

# Chaos soak (CAMPAIGNS=20, SEED=random): kill -9, SIGSTOP/CONT, SIGTERM and 10% API faults,
# each followed by `bot.py resume`; reports duplicates, cancels, lost outputs in docs/CHAOS.md.
chaos: $(STAMP)
	$(PY) -m benchmarks.chaos --campaigns $(or $(CAMPAIGNS),20) $(if $(SEED),--seed $(SEED))

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=python3.11)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
