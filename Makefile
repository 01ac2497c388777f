# `make demo` and `make test` bootstrap .venv from constraints.txt on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

NATIVE_STAMP := $(VENV)/.native-stamp
# The native core (native/) is optional: built into .venv when cargo is present, skipped otherwise.
HAVE_CARGO := $(shell command -v cargo 2>/dev/null)

.PHONY: demo test lint bench protos clean native

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $(STAMP)

$(NATIVE_STAMP): $(STAMP) native/Cargo.toml native/Cargo.lock native/pyproject.toml $(wildcard native/src/*.rs) \
		native/bulk/Cargo.toml $(wildcard native/bulk/src/*.rs)
	cd native && cargo test --workspace --release --locked --quiet
	$(BIN)/python -m pip install --quiet ./native
	touch $(NATIVE_STAMP)

native: $(NATIVE_STAMP)

demo: $(STAMP) $(if $(HAVE_CARGO),$(NATIVE_STAMP))
	$(BIN)/python -m demo.run_demo

# The whole suite runs on the active backend (native when cargo built it). With the native core
# built, the Python reference runs again on the core's tests, a match over gRPC and the process
# pool's crash tests: the differential tests compare the two backends byte for byte.
REFERENCE_TESTS := tests/unit tests/integration/test_grpc_match.py tests/integration/test_crash_consistency.py
test: $(STAMP) $(if $(HAVE_CARGO),$(NATIVE_STAMP))
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(if $(HAVE_CARGO),cd native && cargo clippy --workspace --all-targets --locked --quiet -- -D warnings \
	  && cargo clippy --features python --locked --quiet -- -D warnings)
	for run in "$(if $(HAVE_CARGO),native,python):" $(if $(HAVE_CARGO),"python:$(REFERENCE_TESTS)"); do \
	  backend=$${run%%:*}; tests=$${run#*:}; echo "== PSI_BACKEND=$$backend $${tests:-(all tests)}"; \
	  PSI_BACKEND=$$backend $(BIN)/python -m pytest -q -p no:cacheprovider $$tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi; \
	  [ $$rc -eq 0 ] || exit $$rc; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy psi psiwire/codec.py agency server client cli

# SecretFlow's spu (the benchmark's peer) pins numpy<2 and jax<=0.4.34, against this project's numpy>=2:
# it gets a venv of its own, run in subprocesses by benchmarks/peers/secretflow.py. `make test` never needs it.
SPU_VENV := .venv-spu
SPU_STAMP := $(SPU_VENV)/.installed-stamp
# spu ships wheels for CPython 3.10 and 3.11 only: where it cannot install, the suite records its runs as skipped.
$(SPU_STAMP): benchmarks/peers/spu-requirements.txt
	if { test -x $(SPU_VENV)/bin/python || $(PYTHON) -m venv $(SPU_VENV); } \
	  && $(SPU_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24" \
	  && $(SPU_VENV)/bin/python -m pip install --quiet -r benchmarks/peers/spu-requirements.txt; \
	then touch $(SPU_STAMP); else echo "make bench: SecretFlow's spu did not install; its runs will be skipped"; fi

# Ours on the native core when cargo can build it (as `make test`), beside openmined-psi and SecretFlow.
bench: $(STAMP) $(if $(HAVE_CARGO),$(NATIVE_STAMP)) $(SPU_STAMP)
	$(BIN)/python benchmarks/suite.py

protos: $(STAMP)
	$(BIN)/python protos/generate.py

clean:
	rm -rf $(VENV) build *.egg-info demo/work native/target
