# make demo   quick presets of every experiment, then runs/index.html
# make test   the test suite (installs .venv first when it is missing)
# make bench  benchmarks against the anchor libraries, side by side (tables in docs/benchmarks.md)
# make docs   the documentation site, built strictly into site/ (runs every example)
# make lint   ruff check and format check
# make check  lint and the mypy type check of src/mltricks
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install demo test bench docs lint typecheck check format clean

install: $(STAMP)

# dev holds everything the tests need but mlflow and docs, which cannot share one resolution with
# the bench extra (see pyproject.toml): they come here, beside dev. torchattacks, the FGSM oracle of
# tests/attacks, pins requests 2.25, which mlflow refuses: it comes without its dependencies
# (what it imports, numpy, scipy, torch and tqdm, is here); constraints.txt pins its version
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e '.[dev,mlflow,docs]'
	$(PIP) --no-deps torchattacks
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(PIP) -e '.[dev,bench]'
	touch $@

# every experiment's quick preset, two at a time; the report is written even when one failed
demo: $(STAMP)
	$(VENV)/bin/mltricks run all --preset quick --jobs 2 --out runs; status=$$?; \
	$(VENV)/bin/mltricks report runs && echo "open runs/index.html"; exit $$status

# loadgroup: the tests of one xdist_group (the docs site's) run on one worker, one build
test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadgroup --durations=15 -q

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py

# strict: a warning, a broken cross-reference or a failing example fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 OMP_NUM_THREADS=1 $(PY) -m mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy src/mltricks

check: lint typecheck

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) runs site docs/generated .pytest_cache .ruff_cache .mypy_cache
