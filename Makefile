# Fresh machine: `make demo` and `make test` each set up .venv first (idempotent, seconds when done).
PY := .venv/bin/python

.PHONY: setup demo test lint mutation
setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py
	$(PY) tools/demo_segmentation.py
	$(PY) tools/demo_depth.py

# TEST_JOBS pytest-xdist workers: one per core, at most 4 (each holds torch, mmseg and a few models,
# 1-3 GiB); whole test files go to one worker (loadfile), so module fixtures are built once.
# TEST_JOBS=0 runs in-process, as a plain `pytest` does.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)
test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

# Mutation testing of the paper's modules (issue 14, docs/mutation.md): minutes to an hour on 2 cores,
# so not part of `make test` or CI. MUTATION_JOBS parallel mutants; results kept in mutants/. One
# OpenMP thread: mutmut forks a process per mutant, and libgomp's thread pool deadlocks across fork.
MUTATION_JOBS ?= 2
mutation: setup
	OMP_NUM_THREADS=1 .venv/bin/mutmut run --max-children $(MUTATION_JOBS)
	$(PY) tools/mutation_report.py
