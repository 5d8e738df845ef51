# One entry point for every gate. `make test` is what CI runs (.ci/run);
# `make demo` starts a sandbox hub on http://127.0.0.1:8000.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
# The gates run in the order listed, even under `make -j`.
.NOTPARALLEL:

VENV := /opt/pamkrb/venv
PYTHON := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
# cargo lives in ~/.cargo/bin for root and is often not on a non-login PATH.
export PATH := $(HOME)/.cargo/bin:/root/.cargo/bin:$(PATH)
# clippy with --all-features builds the pyo3 bindings against the venv's Python.
export PYO3_PYTHON := $(PYTHON)

.PHONY: setup build lint test-rust test-python test demo clean

setup:
	bash tools/setup.sh

build:
	$(VENV)/bin/pip install --no-deps --force-reinstall --no-build-isolation .

lint:
	cargo fmt --check
	cargo clippy --all-targets --all-features -- -D warnings
	$(RUFF) check .
	$(RUFF) format --check .

test-rust:
	cargo test

test-python:
	$(PYTHON) -m pytest tests

test: setup build lint test-rust test-python

demo: setup build
	$(PYTHON) tools/demo.py

clean:
	rm -rf target test-artifacts .pytest_cache .ruff_cache
