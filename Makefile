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

# Debian's InfluxDB 1.x (the real server the tests start on loopback) and Debian's Chromium (the headless browser
# the HTML report is tested in). Installed when missing and we are root, with one apt-get update.
services:
	@missing=""; \
	command -v influxd >/dev/null 2>&1 || missing="$$missing influxdb"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "missing and we are not root: install Debian's$$missing" >&2; exit 1; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: $(STAMP) services lint build-check
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m butler demo

bench: $(STAMP) services
	$(PY) bench/run.py

# --- AWS: SAM CLI in its own venv (it pins boto3/pydantic versions of its own), installed once (stamp file) ---
SAM_VENV := .venv-sam
SAM := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_CLI_VERSION := 1.170.0
REGION ?= eu-west-1
ENV ?= default
CONFIG ?= config/butler.yaml
# `sam build` runs pip for the Lambda runtime, so python3.12 must be on PATH (pyenv's when present).
PY312_PATH := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin))
BUILD_PATH := $(if $(PY312_PATH),$(PY312_PATH):)$(PATH)

.PHONY: sam-venv sam-validate build build-check deploy

$(SAM_STAMP):
	@test -n "$(PYTHON_BOOT)" || { echo "need python3.12 or python3 >= 3.11" >&2; exit 1; }
	@test -x $(SAM_VENV)/bin/python || $(PYTHON_BOOT) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q aws-sam-cli==$(SAM_CLI_VERSION)
	@touch $(SAM_STAMP)

sam-venv: $(SAM_STAMP)

# Offline checks of template.yaml: cfn-lint, then SAM's own validation with its linter.
sam-validate: $(STAMP) $(SAM_STAMP)
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --region $(REGION)

# The deployable artifacts in .aws-sam/build (layer: butler + its requirements + config/).
build: sam-validate
	@PATH="$(BUILD_PATH)" command -v python3.12 >/dev/null || { echo "sam build needs python3.12 on PATH" >&2; exit 1; }
	PATH="$(BUILD_PATH)" $(SAM) build

# In `make test`: sam build where python3.12 exists, and the layer holds the package and the configuration.
build-check: sam-validate
	@if PATH="$(BUILD_PATH)" command -v python3.12 >/dev/null; then \
		PATH="$(BUILD_PATH)" $(SAM) build --build-dir .aws-sam/check && \
		test -f .aws-sam/check/ButlerLayer/python/butler/__init__.py && \
		test -f .aws-sam/check/ButlerLayer/python/config/butler.yaml && echo "sam build: ok (layer has butler and config)"; \
	else echo "sam build: skipped (no python3.12 on PATH)"; fi

# make deploy [ENV=prod] [CONFIG=config/butler.yaml]: schedules and QRS settings from the config, the rest
# (network, thresholds) from samconfig.toml's environment; then sam deploy.
deploy: build
	$(PY) -m butler validate-config $(CONFIG)
	params="$$($(PY) -m butler sam-params --config $(CONFIG) --samconfig samconfig.toml --config-env $(ENV))" && \
		$(SAM) deploy --config-env $(ENV) --parameter-overrides "$$params"

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .pytest_cache .mypy_cache .ruff_cache
