# The README's commands. Each one creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := numba,amg,train,dev
# torch 2.13.0 (CPU build) lies on local disk on the project machines
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(FIND_LINKS) -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/dcdm solve --problem smoke3d --n 64 --method all

bench: $(STAMP)
	$(PY) -m pytest bench --benchmark-enable --benchmark-only \
		--benchmark-json=bench/results-$$(date +%Y%m%d-%H%M%S).json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .benchmarks
