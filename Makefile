# Fresh machine: `make demo` and `make test` each set up .venv first (idempotent, seconds when done).
PY := .venv/bin/python

.PHONY: setup demo test lint
setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py
	$(PY) tools/demo_segmentation.py
	$(PY) tools/demo_depth.py

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
