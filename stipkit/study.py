"""Glue for the notebooks: train (or load) the budget's model, its data, its scores, its features.

The notebooks narrate and plot; every computation they show is here (or deeper in the package),
so that it is tested. Read top to bottom:

1. data: :func:`dataset` / :func:`test_split` -- the budget's train and test splits;
2. training: :func:`quick_eval` (the cheap periodic check) and :func:`trained_model` (train,
   resume or load the cached run of ``budget.run_dir``);
3. scores: :func:`evaluate_model`, :func:`first_batch`, :func:`beats_copy_last` and the
   paper's numbers :data:`PAPER_TABLE_III` (quoted, never mixed with ours);
4. Fig. 5: :func:`extract_features` (teacher-forced features and gates) and
   :func:`feature_shapes` (the same shapes from a config alone);
5. small tables: :func:`config_table`, :func:`paper_table`, and :func:`figure_path` (where a
   notebook may write into ``figures/``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Subset

from .budget import FIGURES, REPO, Budget, current_budget
from .checkpoint import load_predictor
from .config import Config, get_preset
from .evaluate import PAPER_DATASETS, default_dataset, evaluate, rollout_dataset
from .metrics import copy_last_baseline, psnr

#: STIP Table III, the STIP row (UCF Sports at 512x512, 4 -> 6 frames): ``{metric: {t: value}}``.
#: The paper's numbers, quoted for comparison only; LPIPS is x100 as the paper prints it.
PAPER_TABLE_III = {"psnr": {5: 30.75, 10: 21.83}, "lpips_x100": {5: 12.73, 10: 39.67}}
PAPER_LABEL = "paper (UCF Sports 512², Table III)"

#: Budgets whose notebooks write into ``figures/`` (the committed study outputs).
SAVING_BUDGETS = ("study", "paper")

#: How many test windows :func:`quick_eval` scores when the budget does not limit them.
QUICK_EVAL_WINDOWS = 4

_PAPER_ENV = {"train": "STIPKIT_{}_TRAIN", "test": "STIPKIT_{}_TEST"}


# --------------------------------------------------------------------------- 1. data
def _budget(budget) -> Budget:
    return budget if isinstance(budget, Budget) else current_budget(budget)


def dataset(cfg: Config, budget: Budget | str | None, split: str):
    """The ``split`` ("train" | "test") of the budget's data at the model's size.

    Paper datasets read their official list file and frame folder from
    ``STIPKIT_<DATA>_TRAIN`` / ``STIPKIT_<DATA>_TEST`` and ``STIPKIT_<DATA>_ROOT``
    (e.g. ``STIPKIT_UCFSPORT_ROOT``); a missing variable is named in the error.
    """
    budget = _budget(budget)
    kw = {}
    if budget.data in PAPER_DATASETS:
        key = budget.data.upper()
        names = {"list_file": _PAPER_ENV[split].format(key), "root": f"STIPKIT_{key}_ROOT"}
        missing = [v for v in names.values() if not os.environ.get(v)]
        if missing:
            raise RuntimeError(f"the {budget.name!r} budget trains on {budget.data}: set "
                               f"{', '.join(missing)} (the official {split} list file and the "
                               "folder holding the frames)")
        kw = {k: os.environ[v] for k, v in names.items()}
    return default_dataset(cfg, split, data=budget.data, **kw)


def test_split(cfg: Config, budget: Budget | str | None = None):
    """The budget's test split, limited to its first ``budget.eval_windows`` windows if set."""
    budget = _budget(budget)
    ds = dataset(cfg, budget, "test")
    if budget.eval_windows is not None and budget.eval_windows < len(ds):
        ds = Subset(ds, range(budget.eval_windows))
    return ds


def test_frames(cfg: Config, budget: Budget | str | None = None,
                limit: int | None = None) -> torch.Tensor:
    """The windows of :func:`test_split` (the first ``limit`` of them, if given) stacked:
    (B, eval_length, C, H, W) on the CPU."""
    ds = test_split(cfg, budget)
    n = len(ds) if limit is None else min(limit, len(ds))
    return torch.stack([ds[i] for i in range(n)])


# --------------------------------------------------------------------------- 2. training
def quick_eval(predictor, cfg: Config, test_set, windows: int | None = QUICK_EVAL_WINDOWS) -> dict:
    """Mean PSNR at the first predicted frame (t = input_length + 1) of the model and of the
    copy-last baseline on the first ``windows`` test windows: the cheap check run during training.

    Returns ``{"psnr_t1": ..., "psnr_t1_copy_last": ...}`` (``train`` logs them as ``eval_*``).
    """
    n = len(test_set) if windows is None else min(windows, len(test_set))
    subset = Subset(test_set, range(n))
    il = cfg.input_length
    ours, base = [], []
    for frames, preds in rollout_dataset(predictor, subset, il, il + 1, progress=False):
        target = frames[:, il]
        ours.append(psnr(preds[:, 0].clamp(0, 1), target))
        base.append(psnr(copy_last_baseline(frames[:, :il + 1], il)[:, 0], target))
    return {"psnr_t1": float(torch.cat(ours).mean()), "psnr_t1_copy_last": float(torch.cat(base).mean())}


def trained_model(budget: Budget | str | None = None, progress: bool = True,
                  run_dir: str | os.PathLike | None = None, device=None):
    """(predictor in eval mode on ``device`` (default: CUDA if present), Config, history
    DataFrame) of the budget's run.

    Trains the budget's preset on the budget's data with :func:`stipkit.train.train` into
    ``run_dir`` (default ``budget.run_dir``, git-ignored) for ``budget.iterations``, logging
    :func:`quick_eval` every ``budget.eval_every`` iterations. An existing checkpoint of the same
    config is resumed, and a finished one is only loaded: the run folder is the cache that
    notebook 07 reuses. Seeded by the preset (``TrainConfig.seed``); bitwise reproducible on CPU.
    """
    from .train import default_device, train

    budget = _budget(budget)
    run_dir = Path(run_dir) if run_dir is not None else budget.run_dir
    cfg = get_preset(budget.preset)
    cfg = replace(cfg, train=replace(cfg.train, iterations=budget.iterations))
    train_set = dataset(cfg, budget, "train")
    test_set = test_split(cfg, budget)
    windows = budget.eval_windows or QUICK_EVAL_WINDOWS
    try:
        history = train(cfg, train_set, run_dir,
                        eval_fn=lambda p: quick_eval(p, cfg, test_set, windows),
                        eval_every=budget.eval_every, progress=progress, device=device)
    except ValueError as e:
        if "another configuration" not in str(e):
            raise
        raise RuntimeError(f"{run_dir} caches a run of another configuration of preset "
                           f"{budget.preset!r} (the preset changed since it was trained): delete "
                           f"that folder to retrain. ({e})") from e
    predictor, cfg = load_predictor(run_dir / "checkpoint.pt")
    return predictor.to(device or default_device()), cfg, history


# --------------------------------------------------------------------------- 3. scores
def evaluate_model(predictor, cfg: Config, budget: Budget | str | None = None,
                   progress: bool = True) -> pd.DataFrame:
    """Per-step MSE/PSNR/SSIM/LPIPS of STIP and copy-last on :func:`test_split` (the protocol of
    :func:`stipkit.evaluate.evaluate`: ``input_length`` given frames, no ground truth after)."""
    return evaluate(predictor, test_split(cfg, budget), cfg.input_length, cfg.eval_length,
                    progress=progress)


def first_batch(predictor, cfg: Config, test_set, n: int = 4):
    """(frames, predictions) of the first ``n`` test windows, on the CPU: frames (n, T, C, H, W),
    predictions (n, T - input_length, C, H, W) clamped to [0, 1]."""
    subset = Subset(test_set, range(min(n, len(test_set))))
    frames, preds = next(rollout_dataset(predictor, subset, cfg.input_length, cfg.eval_length,
                                         batch_size=n, progress=False))
    return frames.cpu(), preds.clamp(0, 1).cpu()


def beats_copy_last(df: pd.DataFrame, t: int | None = None, metric: str = "psnr") -> dict:
    """Does STIP beat copy-last at step ``t`` (default: the first predicted step) on ``metric``?

    ``df``: :func:`stipkit.evaluate.evaluate`'s output. Returns ``t``, ``metric``, ``stip``,
    ``copy_last``, ``margin`` (STIP minus copy-last; sign-flipped for lower-is-better metrics so
    that a positive margin always means STIP is better), ``beats`` and a ``text`` sentence.
    """
    from .metrics import HIGHER_IS_BETTER

    t = int(df["t"].min()) if t is None else t
    at = df[df["t"] == t].set_index("method")[metric]
    stip, base = float(at["STIP"]), float(at["copy-last"])
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    margin = sign * (stip - base)
    unit = " dB" if metric == "psnr" else ""
    verb = "beats" if margin > 0 else "does not beat"
    text = (f"At t={t} (the first predicted frame) STIP {verb} copy-last on {metric.upper()}: "
            f"{stip:.2f}{unit} vs {base:.2f}{unit}, a margin of {margin:+.2f}{unit}.")
    return {"t": t, "metric": metric, "stip": stip, "copy_last": base, "margin": margin,
            "beats": margin > 0, "text": text}


# --------------------------------------------------------------------------- 4. Fig. 5
def extract_features(predictor, frames: torch.Tensor, input_length: int | None = None) -> dict:
    """Fig. 5 features of ``frames`` (B, T, C, H, W), as CPU float tensors.

    Teacher-forced: every step reads the true frame (scheduled-sampling mask of ones), so the
    features of step t (0-based) are those of the clip ending at ``frames[:, t]`` -- the frame
    the explorer shows beside them. Keys as :class:`stipkit.models.stip.Rollout`: ``"T_E"`` /
    ``"S_E"`` lists over encoder levels 0..N of (B, T-1, hidden, H_l, W_l); ``"R"`` / ``"U"``
    (B, T-1, K, hidden, H_N, W_N).
    """
    input_length = predictor.input_length if input_length is None else input_length
    b, t = frames.shape[:2]
    device = next(predictor.parameters()).device
    was_training = predictor.training
    predictor.eval()
    try:
        with torch.inference_mode():
            mask = torch.ones(b, t - input_length - 1, device=device)
            out = predictor(frames.to(device), mask, input_length=input_length,
                            return_features=True)
    finally:
        predictor.train(was_training)
    f = out.features
    cpu = lambda x: x.float().cpu().contiguous()  # noqa: E731
    return {"T_E": [cpu(x) for x in f["T_E"]], "S_E": [cpu(x) for x in f["S_E"]],
            "R": cpu(f["R"]), "U": cpu(f["U"])}


def feature_shapes(cfg: Config, batch: int = 1, total_length: int | None = None) -> pd.DataFrame:
    """The shapes of :func:`extract_features`' tensors for ``cfg``, from the config alone
    (no model is built): one row per tensor with its shape and meaning."""
    m = cfg.model
    steps = (total_length or cfg.eval_length) - 1
    h, w = m.height // m.patch, m.width // m.patch
    rows = []
    for key, name in (("T_E", "temporal encoder Enc_T (Eq. 1)"), ("S_E", "spatial encoder Enc_S (Eq. 1)")):
        for level in range(m.num_downsample + 1):
            shape = (batch, steps, m.hidden, h // 2 ** level, w // 2 ** level)
            role = "fed to the STGRU stack" if level == m.num_downsample else "recalled by MGIR (Eq. 3)"
            rows.append({"tensor": f"{key}[{level}]", "shape": str(shape),
                         "meaning": f"{name}, level {level}: {role}"})
    lat = m.latent_size
    for key, name in (("R", "trend gate R_t (Eq. 5)"), ("U", "update gate U_t (Eq. 5)")):
        rows.append({"tensor": key, "shape": str((batch, steps, m.num_layers, m.hidden, *lat)),
                     "meaning": f"{name} of every STGRU unit"})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- 5. tables, paths
def config_table(*cfgs: Config) -> pd.DataFrame:
    """The fields of one or more configs side by side (rows ``model.hidden``, ``train.lr``, ...;
    one column per config name)."""
    cols = {}
    for cfg in cfgs:
        d = asdict(cfg)
        flat = {"input_length": d["input_length"], "train_length": d["train_length"],
                "eval_length": d["eval_length"], "dataset": d["dataset"]}
        flat.update({f"model.{k}": v for k, v in d["model"].items()})
        flat.update({f"train.{k}": v for k, v in d["train"].items()})
        cols[cfg.name] = {k: str(v) for k, v in flat.items()}
    return pd.DataFrame(cols)


def budget_table() -> pd.DataFrame:
    """Every budget of :mod:`stipkit.budget`: its preset, data, frame size, memory stack,
    iterations and evaluation settings (one row per budget)."""
    from .budget import BUDGETS

    rows = {}
    for name, b in BUDGETS.items():
        m = get_preset(b.preset).model
        rows[name] = {"preset": b.preset, "data": b.data, "frames": f"{m.height}x{m.width}",
                      "STGRUs x channels": f"{m.num_layers} x {m.hidden}",
                      "iterations": b.iterations, "eval_every": b.eval_every,
                      "eval_windows": "all" if b.eval_windows is None else b.eval_windows}
    return pd.DataFrame(rows).T.rename_axis("budget")


def paper_table(paper: dict | None = None) -> pd.DataFrame:
    """:data:`PAPER_TABLE_III` as a small table: rows t, columns PSNR and LPIPS x100."""
    paper = PAPER_TABLE_III if paper is None else paper
    df = pd.DataFrame(paper)
    df.index.name = "t"
    return df


def figure_path(name: str, budget: Budget | str | None = None) -> Path | None:
    """``figures/<name>`` when the budget writes the committed study outputs (study, paper),
    else None -- and says so, naming where it would have gone."""
    budget = _budget(budget)
    path = FIGURES / name
    if budget.name in SAVING_BUDGETS:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
    print(f"[{budget.name} budget] not writing {relative(path)} "
          f"(only the study/paper budgets write figures/)")
    return None


def relative(path) -> str:
    """``path`` relative to the repository when it lies inside it (for printing)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def as_numpy(x) -> np.ndarray:
    """A tensor or array as a CPU numpy array."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
