# Two entry points for a fresh clone: `make run` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# The CPU wheel of PyTorch first, so the project's `torch>=` range is already met.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/skyrack where

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m 'not slow'

clean:
	rm -rf $(VENV)
