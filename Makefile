# make demo   quick presets of every experiment, then runs/index.html
# make test   the test suite (installs .venv first when it is missing)
# make bench  benchmarks against the anchor libraries, side by side
# make lint   ruff check and format check
# make check  lint and the mypy type check of src/mltricks
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install demo test bench lint typecheck check format clean

install: $(STAMP)

# dev holds everything the tests need but mlflow, which cannot share one resolution with the
# bench extra (see pyproject.toml): it comes here, beside dev
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.14.1 torchvision==0.29.1
	$(PIP) -e '.[dev,mlflow]'
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(PIP) -e '.[dev,bench]'
	touch $@

demo: $(STAMP)
	$(VENV)/bin/mltricks run all --preset quick --out runs
	$(VENV)/bin/mltricks report runs
	@echo "open runs/index.html"

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 -q

bench: $(BENCH_STAMP)
	$(PY) benchmarks/run.py

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
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
