# The two commands a new user runs: `make demo` and `make test`. Both set up .venv first
# (idempotent: a no-op when nothing changed). No sourcing of any setup file is needed.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# Keep DDS discovery on this machine; tests pick their own ROS_DOMAIN_ID.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export PYTHONUNBUFFERED := 1
export MPLBACKEND := Agg
export OMP_NUM_THREADS ?= 2

.PHONY: setup demo test test-fast bench clean

setup:
	@bash .ci/setup.sh

demo: setup
	$(BIN)/hand-pose demo $(DEMO_ARGS)

test: setup
	HAND_POSE_REQUIRE_FULL_ENV=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

# The pure-core tests only (no DDS), for a quick loop while editing.
test-fast: setup
	HAND_POSE_REQUIRE_FULL_ENV=1 $(BIN)/python -m pytest -m "not ros and not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/hand-pose bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build install log .pytest_cache
