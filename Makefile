# stipkit: `make figures` (set up + the main job) and `make test` (set up + the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.stipkit-installed
NOTEBOOKS := $(notdir $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb)))

.PHONY: setup figures demo test lint test-unit test-notebooks bench lab pretrain pretrain-digits ablations clips

setup: $(STAMP)

# One virtual environment in the repo; the LPIPS AlexNet weights are converted once at set-up.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m stipkit.scoring.lpips_weights
	touch $(STAMP)

# The main job: run every notebook headless at the study budget, in file order -- which is their
# dependency order (tests/test_notebook_outputs.py: 07 reads 03's run, 08 the ablation cache of
# 04-06, 09 every notebook's figures) -- rewriting their committed outputs and figures/. Each
# notebook records RUN_ID (papermill's parameters), the one id of this run; TQDM_DISABLE keeps
# progress bars out of the saved outputs (the cells print what they did instead). Then docs/results.md
# and the README's headline table are written from the figures/ tables the notebooks saved.
RUN_ID ?= $(shell date -u +%Y%m%dT%H%M%SZ)
figures: setup
	cd notebooks && for nb in $(NOTEBOOKS); do \
	  STIPKIT_BUDGET=study TQDM_DISABLE=1 $(BIN)/papermill --cwd . --kernel python3 \
	    -p RUN_ID $(RUN_ID) $$nb $$nb \
	    || exit 1; done
	$(BIN)/python -m stipkit.reports.results_doc

# A short training demo from the command line (no notebooks).
demo: setup
	$(BIN)/python -m stipkit train --preset study --out runs/study --eval-every 250

test: setup lint test-unit test-notebooks

# The package's floors (pyproject.toml, [tool.importlinter]): each imports only those below it.
lint: setup
	$(BIN)/lint-imports

test-unit: setup
	$(BIN)/python -m pytest tests -q

# nbval at the tiny ci budget; cells marked NBVAL_CHECK_OUTPUT are compared with the committed outputs.
test-notebooks: setup
	cd notebooks && STIPKIT_BUDGET=ci $(BIN)/python -m pytest --nbval-lax --nbval-current-env -q -p no:cacheprovider $(NOTEBOOKS)

lab: setup
	$(BIN)/jupyter lab notebooks/03_train_stgru.ipynb

# The shipped study weights (stipkit.pretrained("study")): the study preset (its recipe chosen on
# validation: benchmarks/bench_levers.py, row flow_gated, picked by leave-one-clip-out from
# benchmarks/results/levers-heldout-val.csv; its run, the same config and seed, made the shipped file),
# 1000 iterations (chosen by leave-one-clip-out against 3000: docs/study.md) on the train part of
# the embedded clips, scored on the validation split every 100 (never the test clips), exported in
# float16 with its provenance and its test scores (stipkit/weights/study.json). An interrupted run
# resumes from runs/pretrain/study.
PRETRAIN_ITERATIONS ?= 1000
PRETRAIN_SEED ?= 0
pretrain: setup
	$(BIN)/python -m stipkit train --preset study --iterations $(PRETRAIN_ITERATIONS) \
	  --seed $(PRETRAIN_SEED) --out runs/pretrain/study --eval-every 100
	$(BIN)/python -m stipkit export --checkpoint runs/pretrain/study/checkpoint.pt --name study \
	  --command "make pretrain PRETRAIN_ITERATIONS=$(PRETRAIN_ITERATIONS) PRETRAIN_SEED=$(PRETRAIN_SEED)"

# Notebook 03's Moving Digits run, shipped (stipkit.pretrained("study-digits")) so that a fresh
# clone's `make figures` trains only the real-clip run live: the study preset on Moving Digits for
# the study budget's 2000 iterations (scheduled sampling over the first 1000), seed 0
# (stipkit.experiments.study.ship_run). It trains into (or loads the finished run of)
# runs/notebooks/study-study-digits, the folder notebook 03 uses.
pretrain-digits: setup
	$(BIN)/python -c "from stipkit.config.budget import current_budget; \
	  from stipkit.experiments.study import ship_run; \
	  ship_run(current_budget('study'), 'digits', command='make pretrain-digits')"

bench: setup
	$(BIN)/python benchmarks/bench_model.py --compile --breakdown
	$(BIN)/python benchmarks/bench_train.py

# The kit-scale benchmark (budget "benchmark", stipkit.experiments.ablation): Tables VI-VIII, then
# the method comparison and STRPM's Tables 3-4 (their runs shared with Tables VI-VIII reused),
# both datasets, both starts of every predictor, a learning rate per method chosen on the
# validation split, each run stopped on validation, five seeds; merged into
# benchmarks/results/benchmark.csv (and -lr.csv: the learning-rate trials) with each run's
# command and wall time. Resumable: a finished run is kept (ABLATE_FLAGS=--rerun retrains), an
# interrupted one resumes from its checkpoint. Two processes of one thread each use a 2-core CPU
# best; its CPU-hours are in benchmarks/bench_learning.py's table and the README. The real clips
# run at the study preset (the smallest measured to learn them): about 150 CPU-hours, GPU work;
# ABLATE_FLAGS="--data digits" runs the Moving Digits half alone (about 20 CPU-hours).
ABLATE_FLAGS ?=
ABLATE_BUDGET ?= benchmark
ABLATE = $(BIN)/python -m stipkit ablate --budget $(ABLATE_BUDGET) --threads 1 $(ABLATE_FLAGS)
ablations: setup
	$(ABLATE) --table VI VIII & $(ABLATE) --table VII; wait
	$(ABLATE) --table compare --variants beyondmse motionrnn & \
	$(ABLATE) --table STRPM-3 STRPM-4 compare; wait

# The three OpenCV clips shipped in stipkit/assets/clips/ (vtest, box, cup), remade from Debian's
# opencv-doc package (apt-get install opencv-doc) with their provenance (README.md there);
# `$(BIN)/python -m stipkit.assets.clips.remake --check` compares a remake with it instead.
clips: setup
	$(BIN)/python -m stipkit.assets.clips.remake
