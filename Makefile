# The two commands of the quick start: `make demo` and `make test`. Both build .venv from scratch when needed.
SHELL := /bin/bash
.DEFAULT_GOAL := test

# Python 3.12 (the Lambda runtime) where it exists, else python3 >= 3.11.
PYTHON_BOOT := $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) /usr/bin/python3.12 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then echo $$p; break; fi; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv install services lint typecheck test unit demo bench clean

$(STAMP): requirements-dev.txt layers/common/requirements.txt pyproject.toml
	@test -n "$(PYTHON_BOOT)" || { echo "need python3.12 or python3 >= 3.11" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $(STAMP)

venv install: $(STAMP)

# Debian's InfluxDB 1.x: the real server the tests start on loopback. Installed when missing and we are root.
services:
	@if ! command -v influxd >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's influxdb"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq influxdb >/dev/null; \
		else echo "influxd is missing and we are not root: install Debian's influxdb" >&2; exit 1; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP) services lint
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m butler demo

bench: $(STAMP) services
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .mypy_cache .ruff_cache
