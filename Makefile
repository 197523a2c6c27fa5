# stipkit: `make demo` (set up + the main job) and `make test` (set up + the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stipkit-installed

.PHONY: setup demo test test-fast bench clean-cache

setup: $(STAMP)

# One virtual environment in the repo; the LPIPS AlexNet weights are converted once at set-up.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m stipkit.lpips_weights
	touch $(STAMP)

# The main job: train STIP at the study preset on the embedded real clips, then evaluate.
demo: setup
	$(BIN)/python -m stipkit train --preset study --out runs/study
	$(BIN)/python -m stipkit evaluate --checkpoint runs/study/checkpoint.pt

test: setup
	$(BIN)/python -m pytest tests -q

bench: setup
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_train.py
