# Two entry points for a fresh clone: `make run` and `make test`.
# Both create .venv on first use and reinstall only when pyproject.toml changes.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint bench clean chromium

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# The CPU wheel of PyTorch first, so the project's `torch>=` range is already met.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/skyrack mission

test: $(STAMP) chromium
	$(VENV)/bin/python -m pytest -q

# The ground dashboard's browser test drives Debian's chromium (never a downloaded browser).
# CI runs as root on a fresh machine: install it there; elsewhere the test explains what is missing.
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi

# Lint and formatting, as CI checks them before the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m 'not slow'

clean:
	rm -rf $(VENV)
