# stipkit: `make figures` (set up + the main job) and `make test` (set up + the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.stipkit-installed
NOTEBOOKS := $(notdir $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb)))

.PHONY: setup figures demo test lint test-unit test-notebooks bench lab pretrain ablations

setup: $(STAMP)

# One virtual environment in the repo; the LPIPS AlexNet weights are converted once at set-up.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m stipkit.scoring.lpips_weights
	touch $(STAMP)

# The main job: run every notebook headless at the study budget, in order, refreshing their
# committed outputs and figures/ (notebook 03 trains STIP; 07 reuses its cached model).
figures: setup
	cd notebooks && for nb in $(NOTEBOOKS); do \
	  STIPKIT_BUDGET=study $(BIN)/papermill --cwd . --kernel python3 $$nb $$nb || exit 1; done

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

# The shipped study weights (stipkit.pretrained("study")): the study preset with its own 3000
# iterations on the embedded clips, from another seed than notebook 03's run (its difference from
# that run is run-to-run noise), exported in float16 with its provenance (stipkit/weights/
# study.json). Longer is not better here: an 8000-iteration run overfitted the three clips (its
# mean test PSNR peaked near iteration 3000 and fell 0.8 dB by the end; README, "Does it learn?").
# An interrupted run resumes from runs/pretrain/study.
PRETRAIN_ITERATIONS ?= 3000
PRETRAIN_SEED ?= 1
pretrain: setup
	$(BIN)/python -m stipkit train --preset study --iterations $(PRETRAIN_ITERATIONS) \
	  --seed $(PRETRAIN_SEED) --out runs/pretrain/study --eval-every 500
	$(BIN)/python -m stipkit export --checkpoint runs/pretrain/study/checkpoint.pt --name study \
	  --command "make pretrain PRETRAIN_ITERATIONS=$(PRETRAIN_ITERATIONS) PRETRAIN_SEED=$(PRETRAIN_SEED)"

bench: setup
	$(BIN)/python benchmarks/bench_model.py --compile --breakdown
	$(BIN)/python benchmarks/bench_train.py

# The ablation zoo (Tables VI-VIII, notebooks 04-06) and, after it, the method comparison and
# STRPM's Tables 3-4 (notebook 09; their runs shared with Tables VI-VIII are reused): every
# variant, both datasets, three seeds at the study budget's ablation preset, merged into
# benchmarks/results/ablations.csv (a run already there is kept: add ABLATE_FLAGS=--rerun to
# retrain). Two processes of one thread each use a 2-core CPU best (small models); about 3 hours
# in all on 2 cores.
ABLATE_FLAGS ?=
ablations: setup
	$(BIN)/python -m stipkit ablate --table VI VIII --threads 1 $(ABLATE_FLAGS) & \
	$(BIN)/python -m stipkit ablate --table VII --threads 1 $(ABLATE_FLAGS); wait
	$(BIN)/python -m stipkit ablate --table compare --variants beyondmse motionrnn --threads 1 $(ABLATE_FLAGS) & \
	$(BIN)/python -m stipkit ablate --table STRPM-3 STRPM-4 compare --threads 1 $(ABLATE_FLAGS); wait
