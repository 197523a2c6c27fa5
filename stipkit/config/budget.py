"""Compute budgets for the notebooks: ``STIPKIT_BUDGET`` = ``ci`` | ``study`` (default) | ``paper``.

* ``ci``: tiny, for nbval in CI (the ``ci`` preset, 32x32, a few iterations): checks that every
  cell runs, not that the model learns.
* ``study``: fits a 2-core CPU -- the ``study`` preset (64x64, 4 STGRUs of 32 channels) on the
  embedded real clips; the whole notebook path in well under an hour.
* ``paper``: Table I scale (the ``ucfsport`` preset) for GPUs; needs the UCF Sports frames and
  the official list files (``STIPKIT_UCFSPORT_ROOT``, ``STIPKIT_UCFSPORT_TRAIN``,
  ``STIPKIT_UCFSPORT_TEST``).

Every notebook's parameters cell resolves its budget once with :func:`current_budget` (as the
command line's ``ablate --budget`` does); papermill may override its fields. Everything below takes
that :class:`Budget` itself, never a name or None. Where a budget's notebooks write their outputs
is :mod:`stipkit.config.outputs`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

BUDGET_ENV = "STIPKIT_BUDGET"
REPO = Path(__file__).resolve().parents[2]
RUNS = REPO / "runs" / "notebooks"  # trained checkpoints cached by the notebooks (not committed)


@dataclass(frozen=True)
class Budget:
    name: str
    preset: str          # stipkit.config preset
    data: str            # "embedded" | "digits" | "ucfsport"
    iterations: int      # training iterations of notebook 03
    eval_every: int      # iterations between evaluations during training (0: none)
    eval_windows: int | None  # test windows to evaluate (None: the whole test split)
    digits_iterations: int = 0  # notebook 03's second run, on Moving Digits (0: none)
    # the ablation notebooks (04-06, stipkit.experiments.ablation): preset, iterations per run, the seeds
    # trained live in the notebook (others are read from the results cache when present)
    ablation_preset: str = "ci"
    # (data, preset) pairs: a dataset whose runs take another preset than ``ablation_preset``
    # (the benchmark's real clips: only the study-size preset was measured to learn them)
    ablation_presets: tuple[tuple[str, str], ...] = ()
    ablation_iterations: int = 4
    ablation_live_seeds: tuple[int, ...] = (0,)
    ablation_data: tuple[str, ...] = ("embedded",)
    # the benchmark protocol (stipkit.experiments.ablation; defaults: the older fixed-length runs):
    # early stopping on the validation split (an evaluation every ``ablation_eval_every``
    # iterations, ``ablation_patience`` of them without a better score stop a run;
    # ``ablation_iterations`` is then the cap), both starts of every predictor
    # (ModelConfig.init), one learning rate per method and start chosen on validation from
    # ``ablation_lrs`` (seed 0), and the seeds `make ablations` trains
    ablation_eval_every: int = 0
    ablation_patience: int = 0
    ablation_min_iterations: int = 0           # no early stop before this many iterations
    ablation_val_windows: int | None = None
    ablation_starts: tuple[str, ...] = ()      # () : each preset's own ModelConfig.init
    ablation_lrs: tuple[float, ...] = ()       # () : the preset's learning rate
    ablation_seeds: tuple[int, ...] = (0, 1, 2)

    def ablation_preset_for(self, data: str) -> str:
        """The preset of the ablation runs on ``data``: its entry in ``ablation_presets``, else
        ``ablation_preset``."""
        return dict(self.ablation_presets).get(data, self.ablation_preset)

    @property
    def run_dir(self) -> Path:
        """The cached run of notebook 03 for this budget (notebook 07 reuses it)."""
        return RUNS / f"{self.name}-{self.preset}"

    def datasets(self) -> tuple[str, ...]:
        """The datasets notebook 03 trains on at this budget: ``data``, then Moving Digits if
        ``digits_iterations``."""
        return (self.data, "digits") if self.digits_iterations and self.data != "digits" \
            else (self.data,)

    def iterations_for(self, data: str) -> int:
        """Training iterations of the run on ``data`` (one of :meth:`datasets`)."""
        if data == self.data:
            return self.iterations
        if data in self.datasets():
            return self.digits_iterations
        raise ValueError(f"the {self.name!r} budget trains on {list(self.datasets())}, not {data!r}")

    def run_dir_for(self, data: str) -> Path:
        """The cached run on ``data``: :attr:`run_dir` for the main data, a sibling otherwise."""
        self.iterations_for(data)  # checks the name
        return self.run_dir if data == self.data else RUNS / f"{self.name}-{self.preset}-{data}"

    def run_config(self, data: str):
        """The Config of the run on ``data``: the preset on that data for :meth:`iterations_for`
        iterations, its scheduled sampling keeping its share of the run (the study recipe samples
        its own predictions over the first half of a run of any length: how bench_levers.py's
        ladder defined and chose it), so the 2000-iteration Moving Digits run's ends at 1000."""
        from dataclasses import replace

        from . import get_preset
        cfg = get_preset(self.preset)
        tc, n = cfg.train, self.iterations_for(data)
        share = n / tc.iterations
        return replace(cfg, dataset=data, train=replace(
            tc, iterations=n, sampling_stop_iter=max(1, round(tc.sampling_stop_iter * share)),
            sampling_rate=tc.sampling_rate / share))

    def shipped_name(self, data: str) -> str:
        """The name of the shipped weights of the run on ``data`` (:func:`stipkit.pretrained`):
        the preset's (``study``) for the main data, ``<preset>-<data>`` (``study-digits``) else."""
        self.iterations_for(data)  # checks the name
        return self.preset if data == self.data else f"{self.preset}-{data}"


BUDGETS = {
    "ci": Budget("ci", "ci", "embedded", iterations=6, eval_every=3, eval_windows=4,
                 digits_iterations=4),
    # the notebooks' live ablation runs train on Moving Digits only: at 32x32 and 150 iterations
    # the real clips' runs stay far below copy-last (they would compare untrained models), and the
    # real-clip tables are the benchmark's (docs/protocol.md)
    "study": Budget("study", "study", "embedded", iterations=1000, eval_every=100, eval_windows=None,
                    digits_iterations=2000, ablation_preset="ablation", ablation_iterations=150,
                    ablation_data=("digits",)),
    # the kit-scale benchmark (`make ablations`): the ablation64 preset (64x64, so that LPIPS
    # sees more than 1x1 AlexNet maps) on Moving Digits and the study preset on the real clips
    # (the smallest measured to pass copy-last on their validation split: docs/protocol.md),
    # runs stopped on the validation split, both starts, a learning rate per method from
    # three, five seeds, both datasets
    "benchmark": Budget("benchmark", "study", "embedded", iterations=1000, eval_every=100,
                        eval_windows=None, digits_iterations=2000, ablation_preset="ablation64",
                        ablation_presets=(("embedded", "study"),),
                        ablation_iterations=3000, ablation_data=("embedded", "digits"),
                        ablation_eval_every=150, ablation_patience=4,
                        ablation_min_iterations=1500, ablation_val_windows=48,
                        ablation_starts=("copy_last", "default"),
                        ablation_lrs=(5e-4, 1e-3, 2e-3), ablation_seeds=(0, 1, 2, 3, 4)),
    "paper": Budget("paper", "ucfsport", "ucfsport", iterations=100_000, eval_every=5000,
                    eval_windows=None, ablation_preset="ucfsport", ablation_iterations=100_000,
                    ablation_data=("ucfsport",)),
}


def current_budget(name: "str | Budget | None" = None) -> Budget:
    """The budget named (a Budget is returned as it is), else ``$STIPKIT_BUDGET``, else ``study``.

    The one resolver, called at the entry points only (the notebooks' parameters cells, the command
    line): the functions of the kit take the resulting :class:`Budget`."""
    if isinstance(name, Budget):
        return name
    name = name or os.environ.get(BUDGET_ENV, "study")
    if name not in BUDGETS:
        raise ValueError(f"{BUDGET_ENV}={name!r} is unknown: valid budgets are {sorted(BUDGETS)}")
    return BUDGETS[name]
