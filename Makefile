# The README's commands. Each one creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXTRAS := numba,amg,train,dev
# torch 2.13.0 (CPU build) lies on local disk on the project machines
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install test demo bench bench-smoke hard-constraints clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(FIND_LINKS) -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/dcdm demo

# The scaling report: the default suites (an estimated 30-40 min on 2 idle cores; extra pytest
# options in BENCH_ARGS, e.g. BENCH_ARGS=--bench-large), their JSON in bench/results/, and
# bench/REPORT.md with plots in bench/report/. Needs the machine to itself.
bench: $(STAMP)
	mkdir -p bench/results
	@json=bench/results/$$(date -u +%Y%m%d-%H%M%S).json; start=$$(date +%s); \
	$(PY) -m pytest bench --benchmark-enable --benchmark-only --benchmark-json=$$json \
		$(BENCH_ARGS); status=$$?; wall=$$(( $$(date +%s) - start )); \
	echo "benchmark suite: $$wall s wall, results in $$json"; \
	if [ -s $$json ]; then $(PY) -m bench.report $$json --wall-time $$wall \
		--out bench/REPORT.md || status=1; fi; \
	exit $$status

# The suites at their smallest sizes, one round each, one thread: checks the benchmark code
# (~10 s; timings meaningless).
bench-smoke: $(STAMP)
	NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
		$(PY) -m pytest bench --bench-smoke --benchmark-enable --benchmark-only -q

# The diffusion-sorption experiment of docs/HARD_CONSTRAINTS.md (about 35 min on 2 cores):
# results and plots in docs/hard_constraints/, data and weights in out/hard_constraints/.
hard-constraints: $(STAMP)
	$(PY) -m bench.hard_constraints $(HC_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .benchmarks
