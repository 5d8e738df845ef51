# One entry point for every gate. `make test` is what CI runs (.ci/run);
# `make demo` starts a sandbox hub on http://127.0.0.1:8000.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
# The gates run in the order listed, even under `make -j`.
.NOTPARALLEL:

# PAMKRB_VENV: a second environment, e.g. for a work tree beside main.
VENV := $(or $(PAMKRB_VENV),/opt/pamkrb/venv)
PYTHON := $(VENV)/bin/python
RUFF := $(VENV)/bin/ruff
# Every tool the project installs itself is found whatever PATH the caller
# has: the venv's bin (maturin, which pip's --no-build-isolation build runs
# from PATH; ruff; pytest) and ~/.cargo/bin (cargo, often not on a non-login
# PATH). tools/check-tools.sh names what is missing and where it comes from.
export PATH := $(VENV)/bin:$(HOME)/.cargo/bin:/root/.cargo/bin:$(PATH)
# clippy with --all-features builds the pyo3 bindings against the venv's Python.
export PYO3_PYTHON := $(PYTHON)

.PHONY: setup check-tools build wheel lint audit fuzz test-rust test-python test-wheel test demo clean bench

setup:
	bash tools/setup.sh

check-tools:
	bash tools/check-tools.sh $(VENV)

build: check-tools
	$(VENV)/bin/pip install --no-deps --force-reinstall --no-build-isolation .

# The wheel admins install: abi3 (CPython >= 3.9), manylinux_2_28, the host's
# libpam/libkrb5 at run time. Checked statically by tools/check_wheel.py.
wheel: check-tools
	bash tools/build-wheel.sh dist

lint: audit
	cargo fmt --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml
	cargo clippy --all-targets --all-features -- -D warnings
	$(RUFF) check .
	$(RUFF) format --check .
	$(PYTHON) -m mypy --strict python/pamkrb

# Dependency policy (bans, licences, sources) and RustSec advisories when the
# advisory database is reachable; see tools/audit.sh.
audit:
	bash tools/audit.sh

# Bounded fuzzing of the ccache and keytab parsers and the templates; FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz:
	bash tools/fuzz.sh $(FUZZ_SECONDS)

# Tests that need root are #[ignore = "needs root; ..."], so an unprivileged
# `cargo test` lists them as ignored rather than passing them; as root (CI)
# they run too.
test-rust:
	if [[ $$EUID -eq 0 ]]; then cargo test -- --include-ignored; else cargo test; fi

# Tests that mostly wait (long Spark sessions, a round every 20 s over four
# ticket lifetimes; a Hadoop renewer race; an idle server watched over
# several ticket lifetimes; Slurm jobs: an idle server's four lifetimes, the
# KDC down for one; a single sign-on ticket run to its renew-till and
# brought back by a reload): they run beside the rest of the suite, in a
# pytest process of their own with their own realms, and their output follows.
LONG_TESTS := tests/test_hadoop_sessions.py tests/test_hadoop_renewer.py tests/test_keeper_kdc_requests.py tests/test_slurm_spawner.py tests/test_spnego.py
test-python:
	mkdir -p test-artifacts
	$(PYTHON) -m pytest -p no:cacheprovider $(LONG_TESTS) > test-artifacts/long-tests.log 2>&1 & long=$$!; \
	status=0; $(PYTHON) -m pytest tests --ignore=tests/wheel $(addprefix --ignore=,$(LONG_TESTS)) || status=$$?; \
	wait $$long || status=$$?; \
	echo "--- $(LONG_TESTS), run beside the rest ---"; cat test-artifacts/long-tests.log; \
	exit $$status

# The wheel on other distributions: Debian 11 and 13 in chroots (debootstrap,
# cached under /var/cache/pamkrb), their own Python, PAM and libkrb5, no compiler.
test-wheel: wheel
	$(PYTHON) -m pytest tests/wheel

test: setup build lint test-rust test-python test-wheel fuzz

bench: setup build
	$(PYTHON) bench/run.py

demo: setup build
	$(PYTHON) tools/demo.py

clean:
	rm -rf target fuzz/target dist test-artifacts .pytest_cache .ruff_cache
