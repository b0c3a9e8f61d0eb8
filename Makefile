# Two commands on a fresh machine (Python 3.11, no conda needed):
#   make reproduce   set up .venv and run the whole study on the synthetic default data
#   make test        set up .venv and run the test suite (smoke profile notebooks included)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= default
ARGS   ?=

.PHONY: reproduce smoke test test-fast lab bench bench-real segmenter validate clean-venv help venv

help:
	@echo "make reproduce   # venv + full synthetic run (profile=$(PROFILE)) -> reports/$(PROFILE)/index.html"
	@echo "make test        # venv + pytest (unit tests + every notebook executed on the smoke profile)"
	@echo "make smoke       # quick end-to-end run on the smoke profile -> reports/smoke/"
	@echo "make lab         # JupyterLab on notebooks/ with the study kernel"
	@echo "make bench       # benchmarks/ (prints throughput and timing figures)"
	@echo "make bench-real  # the shipped segmenter on the real usgra-seg test images (under a minute)"
	@echo "make segmenter   # retrain the shipped segmenter ctslib/nerve/weights/nerve_segmenter.keras (21 min on a 2-core AVX-512 AMD EPYC; estimated 70-75 min on a 2-core AVX2 one)"
	@echo "make validate DATA=/path/to/DATA   # check a real-data folder before a run"

$(STAMP): requirements.txt requirements-lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c requirements-lock.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

reproduce: $(STAMP)
	$(PY) run_all.py --profile $(PROFILE) $(ARGS)

smoke: $(STAMP)
	$(PY) run_all.py --profile smoke $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebooks" $(ARGS)

lab: $(STAMP)
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cts-study)" >/dev/null
	cd notebooks && ../$(VENV)/bin/jupyter lab

bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_extract.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_pipeline.py

bench-real: $(STAMP)
	$(PY) benchmarks/bench_segment_real.py

# Deterministic: the same seed, data and CPU instruction set give the same weights (see docs/segmenter.md).
segmenter: $(STAMP)
	$(PY) -m ctslib.nerve.pretrained train $(ARGS)

validate: $(STAMP)
	$(PY) -m ctslib.data.validate $(DATA)

clean-venv:
	rm -rf $(VENV)
