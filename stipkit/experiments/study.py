"""Glue for the notebooks: train (or load) the budget's model, its data, its scores, its features.

The notebooks narrate and plot; every computation they show is here (or deeper in the package),
so that it is tested. Read top to bottom:

1. data: the budget's train and test splits are :mod:`stipkit.data.build`'s
   (:func:`~stipkit.data.build.dataset`, :func:`~stipkit.data.build.test_split`);
2. training: :func:`quick_eval` (the cheap periodic check) and :func:`trained_model` (train,
   resume or load the cached run of ``budget.run_dir``, or load the shipped weights of that very
   run: :func:`stipkit.training.zoo.shipped_run`, made by :func:`ship_run`);
3. scores: :func:`evaluate_model` (the model beside the training-free baselines copy-last,
   mean-frame and flow-warp), :func:`first_batch`, :func:`beats_baseline` (against the strongest
   baseline), :func:`beats_copy_last` and :func:`paper_table` (the paper's numbers, quoted, never
   mixed with ours); the targets and the
   per-clip and still-scene checks are :mod:`stipkit.scoring.evaluate`'s;
4. Fig. 5: :func:`extract_features` (teacher-forced features and gates) and
   :func:`feature_shapes` (the same shapes from a config alone);
5. small tables: :func:`config_table`, :func:`budget_table`, :func:`levers_table`.

Every function takes the :class:`~stipkit.config.budget.Budget` the notebook resolved once;
where a notebook may write into ``figures/`` is :mod:`stipkit.config.outputs`.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Subset

from ..config import Config, get_preset, to_dict
from ..config.budget import REPO, Budget
from ..config.outputs import relative
from ..data.build import dataset, disjoint, disjoint_positions, spread, test_split
from ..reports.paper import PAPER_TABLE_III
from ..scoring.baselines import BASELINES, copy_last_baseline
from ..scoring.evaluate import (BASELINE, evaluate, model_method, rollout_dataset,
                                strongest_baseline)
from ..scoring.metrics import psnr
from ..training.checkpoint import load_predictor


# --------------------------------------------------------------------------- 2. training
VAL_WINDOWS = 64  # validation windows scored while training (evenly spaced over the split)


def quick_eval(predictor, cfg: Config, test_set, windows: int | None = None) -> dict:
    """The cheap check run during training: mean PSNR of the model and of copy-last on the first
    ``windows`` test windows (default: all), rolled out as evaluation does (``input_length``
    given frames, then ``eval_length - input_length`` predictions, no ground truth after).

    Returns ``psnr_t1`` (the first predicted frame, t = input_length + 1), ``psnr_mean`` (the mean
    over every predicted frame) and the same two for copy-last (``*_copy_last``); ``train`` logs
    them as ``eval_*`` columns.
    """
    n = len(test_set) if windows is None else min(windows, len(test_set))
    subset = Subset(test_set, range(n))
    il, total = cfg.input_length, cfg.eval_length
    ours, base = [], []
    for frames, preds in rollout_dataset(predictor, subset, il, total, batch_size=32,
                                         progress=False):
        target = frames[:, il:].flatten(0, 1)
        shape = frames.shape[0], total - il
        ours.append(psnr(preds.clamp(0, 1).flatten(0, 1), target).view(shape))
        base.append(psnr(copy_last_baseline(frames, il).flatten(0, 1), target).view(shape))
    ours, base = torch.cat(ours), torch.cat(base)
    return {"psnr_t1": float(ours[:, 0].mean()), "psnr_t1_copy_last": float(base[:, 0].mean()),
            "psnr_mean": float(ours.mean()), "psnr_mean_copy_last": float(base.mean())}


def trained_model(budget: Budget, progress: bool = True,
                  run_dir: str | os.PathLike | None = None, device=None, data: str | None = None,
                  train_live: bool = True):
    """(predictor in eval mode on ``device`` (default: CUDA if present), Config, history
    DataFrame) of the budget's run.

    ``train_live=False``: when the run is not cached, load the weights the kit ships of this very
    run instead of training it (:func:`stipkit.training.zoo.shipped_run`; notebook 03's Moving
    Digits run, ``make pretrain-digits``); without such weights it trains, as with
    ``train_live=True``.

    Trains the budget's preset on ``data`` (default: the budget's; Moving Digits as its second
    run, see :meth:`Budget.datasets`) with :func:`stipkit.training.train.train` into ``run_dir``
    (default ``budget.run_dir_for(data)``, git-ignored) for ``budget.iterations_for(data)``, logging
    :func:`quick_eval` on :data:`VAL_WINDOWS` windows of the *validation* split (never the test
    split) every ``budget.eval_every`` iterations. An existing checkpoint of the same
    config is resumed, and a finished one is only loaded: the run folder is the cache that
    notebook 07 reuses. Seeded by the preset (``TrainConfig.seed``); bitwise reproducible on CPU.
    """
    from ..runtime.device import default_device
    from ..training.train import RunMismatch, train
    from ..training.zoo import shipped_run

    data = data or budget.data
    if not train_live and run_dir is None and not finished_run(budget, data):
        shipped = shipped_run(budget, data)
        if shipped is not None:
            predictor, cfg, history, record = shipped
            print(f"loaded the shipped weights {record['name']!r} of this run (stipkit/weights/; "
                  f"made by `{record['command']}`): {len(history)} iterations, "
                  f"{record['train_minutes']:.1f} min of training; not trained here")
            return predictor.to(device or default_device()), cfg, history
        print(f"no shipped weights of the {budget.name!r} budget's run on {data!r} "
              f"({budget.shipped_name(data)!r}): training it")
    run_dir = Path(run_dir) if run_dir is not None else budget.run_dir_for(data)
    cfg = budget.run_config(data)
    train_set = dataset(cfg, budget, "train", data)
    val_set = spread(dataset(cfg, budget, "val", data), VAL_WINDOWS)  # never the test split
    loaded = finished_run(budget, data) if run_dir == budget.run_dir_for(data) else False
    try:
        history = train(cfg, train_set, run_dir,
                        eval_fn=lambda p: quick_eval(p, cfg, val_set),
                        eval_every=budget.eval_every, progress=progress, device=device)
    except RunMismatch as e:
        raise RuntimeError(f"{run_dir} caches a run of another configuration of preset "
                           f"{budget.preset!r} (the preset changed since it was trained): delete "
                           f"that folder to retrain. ({e})") from e
    predictor, cfg = load_predictor(run_dir / "checkpoint.pt")
    minutes = history["step_s"].sum() / 60
    print(f"{'loaded the finished run' if loaded else 'trained'} {relative(run_dir)}: "
          f"{len(history)} iterations, {minutes:.1f} min of training")
    return predictor.to(device or default_device()), cfg, history


def ship_run(budget: Budget, data: str | None = None, command: str = "make pretrain-digits") -> dict:
    """Train (or load from the run cache) the budget's run on ``data`` and export it as the
    shipped weights ``budget.shipped_name(data)`` with its provenance and its scores on the test split
    (:func:`stipkit.training.zoo.export`). Returns the provenance."""
    from ..training.zoo import export

    data = data or budget.data
    predictor, cfg, _ = trained_model(budget, data=data)
    scores = evaluate_model(predictor, cfg, budget, data=data)
    return export(budget.run_dir_for(data) / "checkpoint.pt", budget.shipped_name(data),
                  command=command, scores=scores)


def finished_run(budget: Budget, data: str | None = None) -> bool:
    """Whether the budget's run on ``data`` is cached and trained to the end (its checkpoint
    holds ``budget.iterations_for(data)`` iterations of today's preset)."""
    from ..training.checkpoint import CheckpointError, load_checkpoint
    from ..config import ConfigError, from_dict

    data = data or budget.data
    path = budget.run_dir_for(data) / "checkpoint.pt"
    if not path.is_file():
        return False
    try:
        ckpt = load_checkpoint(path)
        saved = from_dict(ckpt["config"])
    except (CheckpointError, ConfigError):
        return False
    return (ckpt["iteration"] >= budget.iterations_for(data)
            and saved.model == get_preset(budget.preset).model)


def model_for_figures(budget: Budget, progress: bool = True, device=None):
    """``(predictor, Config, source)`` for the figures of a trained model (notebook 07): the
    budget's finished run when there is one (notebook 03 made it), else the shipped pretrained
    weights of its preset (:func:`stipkit.pretrained`) when they exist, else a fresh run
    (:func:`trained_model`). ``source`` says which, in words."""
    from ..runtime.device import default_device
    from ..training.zoo import available, pretrained, provenance

    if not finished_run(budget) and budget.preset in available():
        predictor, cfg = pretrained(budget.preset)
        record = provenance(budget.preset)
        source = (f"the pretrained {budget.preset!r} weights ({record['iterations']} iterations, "
                  f"{record['data']} data; no finished {budget.name!r} run in "
                  f"{relative(budget.run_dir)})")
        return predictor.to(device or default_device()), cfg, source
    predictor, cfg, history = trained_model(budget, progress=progress, device=device)
    return predictor, cfg, (f"the {budget.name!r} budget's run: {len(history)} iterations "
                            f"({relative(budget.run_dir)})")


# --------------------------------------------------------------------------- 3. scores
def evaluate_model(predictor, cfg: Config, budget: Budget, progress: bool = True,
                   data: str | None = None, baselines=tuple(BASELINES),
                   per_window: bool | str = False) -> pd.DataFrame:
    """Per-step MSE/PSNR/SSIM/LPIPS of STIP and of the training-free baselines (copy-last,
    mean-frame, flow-warp; ``baselines`` chooses) on the budget's test split of ``data`` (default:
    the budget's; :func:`stipkit.data.build.test_split`) -- :func:`stipkit.scoring.evaluate.evaluate`'s
    protocol. :func:`beats_baseline` says whether STIP beats the strongest baseline.
    ``per_window``: the scores of each of the split's disjoint windows
    (:func:`stipkit.data.build.disjoint`), for :func:`stipkit.reports.stats.window_margins` (is a
    margin more than noise?); ``"all"``: every window's, a column ``disjoint`` marking those
    (``scoring.evaluate.mean_scores`` gives the table back: one pass for both)."""
    test = test_split(cfg, budget, data)
    rows = evaluate(predictor, disjoint(test) if per_window is True else test, cfg.input_length,
                    cfg.eval_length, progress=progress, baselines=baselines, per_sample=bool(per_window))
    return rows.assign(disjoint=rows["sample"].isin(disjoint_positions(test))) \
        if per_window == "all" else rows


def side_by_side(runs: dict) -> pd.DataFrame:
    """Several models' :func:`stipkit.scoring.evaluate.evaluate` scores on the same test split as one
    tidy table: ``{label: scores}`` -> each model's rows renamed ``<method> (label)`` (e.g.
    ``STIP (live run)``), then the baselines once each (copy-last, mean-frame, flow-warp: the first
    table's; they are equal in every table of the same split)."""
    parts = []
    for i, (label, df) in enumerate(runs.items()):
        method = model_method(df)
        rows = df[df["method"] == method].assign(method=f"{method} ({label})")
        parts.append(rows)
        if i == 0:
            base = df[df["method"].astype(str).isin(BASELINES)]
    return pd.concat(parts + [base], ignore_index=True)


def first_batch(predictor, cfg: Config, test_set, n: int = 4):
    """(frames, predictions) of the first ``n`` test windows, on the CPU: frames (n, T, C, H, W),
    predictions (n, T - input_length, C, H, W) clamped to [0, 1]."""
    subset = Subset(test_set, range(min(n, len(test_set))))
    frames, preds = next(rollout_dataset(predictor, subset, cfg.input_length, cfg.eval_length,
                                         batch_size=n, progress=False))
    return frames.cpu(), preds.clamp(0, 1).cpu()


def _versus(df: pd.DataFrame, t: int | None, metric: str, method: str | None,
            baseline: str | None) -> dict:
    """The model against one baseline (default: the strongest at step ``t``) at step ``t``."""
    from ..scoring.metrics import HIGHER_IS_BETTER

    first = int(df["t"].min())
    t = first if t is None else int(t)
    method = model_method(df) if method is None else method
    rows = df[df["t"] == t]
    if rows.empty:
        raise ValueError(f"t={t} is not a step of the scores; valid: {sorted(set(df['t']))}")
    baseline = strongest_baseline(rows, metric) if baseline is None else baseline
    at = rows.assign(method=rows["method"].astype(str)).set_index("method")[metric]
    for m in (method, baseline):
        if m not in at.index:
            raise ValueError(f"the scores have no rows of method {m!r} at t={t}; found {list(at.index)}")
    stip, base = float(at[method]), float(at[baseline])
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    margin = sign * (stip - base)
    unit = " dB" if metric == "psnr" else ""
    verb = "beats" if margin > 0 else "does not beat"
    where = f"At t={t}" + (" (the first predicted frame)" if t == first else "")
    text = (f"{where} {method} {verb} {baseline} on {metric.upper()}: "
            f"{stip:.2f}{unit} vs {base:.2f}{unit}, a margin of {margin:+.2f}{unit}.")
    return {"t": t, "metric": metric, "method": method, "baseline": baseline, "stip": stip,
            "baseline_value": base, "margin": margin, "beats": margin > 0, "text": text}


def beats_baseline(df: pd.DataFrame, t: int | None = None, metric: str = "psnr",
                   method: str | None = None, baseline: str | None = None) -> dict:
    """Does the model (``method``, default: the one beside the baselines) beat the strongest
    training-free baseline (``baseline``, default: the best of copy-last, mean-frame and flow-warp
    on ``metric`` at that step, :func:`stipkit.scoring.evaluate.strongest_baseline`) at step ``t``
    (default: the first predicted step)?

    ``df``: :func:`stipkit.scoring.evaluate.evaluate`'s output (scores holding copy-last only, as
    older cached ones, compare with it). Returns ``t``, ``metric``, ``method``, ``baseline``
    (its name), ``stip``, ``baseline_value``, ``margin`` (STIP minus the baseline; sign-flipped
    for lower-is-better metrics so that a positive margin always means STIP is better),
    ``beats`` and a ``text`` sentence.
    """
    return _versus(df, t, metric, method, baseline)


def beats_copy_last(df: pd.DataFrame, t: int | None = None, metric: str = "psnr",
                    method: str | None = None) -> dict:
    """Does the model (``method``, default: the one beside the baselines) beat copy-last at step
    ``t`` (default: the first predicted step) on ``metric``? And the strongest baseline?

    ``df``: :func:`stipkit.scoring.evaluate.evaluate`'s output. Returns ``t``, ``metric``, ``stip``,
    ``copy_last``, ``margin`` (STIP minus copy-last; sign-flipped for lower-is-better metrics so
    that a positive margin always means STIP is better), ``beats``, then the same against the
    strongest baseline at that step (:func:`beats_baseline`): ``strongest`` (its name),
    ``strongest_value``, ``strongest_margin``, ``beats_strongest``; and a ``text`` of one sentence
    on copy-last, plus one on the strongest baseline when that is another.
    """
    ours = _versus(df, t, metric, method, BASELINE)
    best = _versus(df, ours["t"], metric, ours["method"], None)
    text = ours["text"]
    if best["baseline"] != BASELINE:
        verb = "beats" if best["beats"] else "does not beat"
        unit = " dB" if metric == "psnr" else ""
        text += (f" The strongest baseline there is {best['baseline']} "
                 f"({best['baseline_value']:.2f}{unit}): {ours['method']} {verb} it (margin "
                 f"{best['margin']:+.2f}{unit}).")
    return {"t": ours["t"], "metric": metric, "stip": ours["stip"], "copy_last": ours["baseline_value"],
            "margin": ours["margin"], "beats": ours["beats"], "strongest": best["baseline"],
            "strongest_value": best["baseline_value"], "strongest_margin": best["margin"],
            "beats_strongest": best["beats"], "text": text}


# --------------------------------------------------------------------------- 4. Fig. 5
STILL_FLOOR, STILL_FLOOR_T1 = 35.0, 40.0   # dB: a still scene stays still (every step; the first)


def study_targets(predictor, cfg: Config, progress: bool = False) -> pd.DataFrame:
    """The real-video targets of the shipped study weights, on clips the model never trained on:
    one row per target and clip -- ``target``, ``clip``, ``value``, ``threshold``, ``met``.

    * on each held-out test clip (:data:`stipkit.data.video.TEST_CLIPS`, non-overlapping windows):
      mean PSNR over t = 5..10 at least copy-last's; PSNR at t = 5 at least copy-last's - 0.5 dB;
      LPIPS x 100 at t = 5 at most copy-last's + 1;
    * a still scene stays still: four copies of a real frame (the first frame of every window of
      the validation and test clips) in, every prediction at least :data:`STILL_FLOOR` dB against
      it and the first at least :data:`STILL_FLOOR_T1` dB (the worst frame is reported).
    """
    from ..data.video import TEST_CLIPS, EmbeddedVideo
    from ..scoring.evaluate import still_rollout
    res = (cfg.model.height, cfg.model.width)
    test = EmbeddedVideo("test", resolution=res, total_length=cfg.eval_length)
    rows = evaluate(predictor, test, cfg.input_length, cfg.eval_length, per_sample=True,
                    progress=progress, baselines=(BASELINE,))
    rows["clip"] = [test.windows[i][0] for i in rows["sample"]]
    ours, t1, out = model_method(rows), cfg.input_length + 1, []
    for clip in TEST_CLIPS:
        r = rows[rows["clip"] == clip]
        m = lambda method, col, first=False: float(  # noqa: E731
            r[(r["method"] == method) & ((r["t"] == t1) if first else True)][col].mean())
        for target, value, threshold, higher in (
                ("mean PSNR t=5..10 - copy-last's (dB)", m(ours, "psnr") - m(BASELINE, "psnr"), 0.0, True),
                ("PSNR t=5 - copy-last's (dB)", m(ours, "psnr", True) - m(BASELINE, "psnr", True), -0.5, True),
                ("LPIPSx100 t=5 - copy-last's", m(ours, "lpips_x100", True)
                 - m(BASELINE, "lpips_x100", True), 1.0, False)):
            out.append(dict(target=target, clip=clip, value=value, threshold=threshold,
                            met=value >= threshold if higher else value <= threshold))
    frames = torch.cat([torch.stack([ds[i][cfg.input_length - 1] for i in range(len(ds))])
                        for ds in (EmbeddedVideo("val", resolution=res, total_length=cfg.eval_length), test)])
    still = still_rollout(predictor, frames, cfg.input_length, cfg.eval_length, per_frame=True)
    for target, sel, threshold in (("still scene, worst prediction (dB)", still, STILL_FLOOR),
                                   ("still scene, worst first prediction (dB)",
                                    still[still["t"] == t1], STILL_FLOOR_T1)):
        value = float(sel["psnr"].min())
        out.append(dict(target=target, clip=f"{len(frames)} val and test frames", value=value,
                        threshold=threshold, met=value >= threshold))
    return pd.DataFrame(out)


def extract_features(predictor, frames: torch.Tensor, input_length: int | None = None) -> dict:
    """Fig. 5 features of ``frames`` (B, T, C, H, W), as CPU float tensors.

    Teacher-forced: every step reads the true frame (scheduled-sampling mask of ones), so the
    features of step t (0-based) are those of the clip ending at ``frames[:, t]`` -- the frame
    the explorer shows beside them. Keys as the model's ``Rollout.features``, encoder features
    first: ``"S_E"`` / ``"T_E"`` lists over encoder levels 0..N of (B, T-1, hidden, H_l, W_l),
    then one (B, T-1, K, C, H_N, W_N) tensor per map the memory exposes (``predictor.maps()``;
    STGRU: ``"R_t"``, ``"U_t"``).
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
    cpu = lambda x: x.float().cpu().contiguous()  # noqa: E731
    order = [*(k for k in ("S_E", "T_E") if k in out.features),
             *(k for k in out.features if k not in ("S_E", "T_E"))]  # BeyondMSE has no T_E, S_E
    return {k: [cpu(x) for x in out.features[k]] if isinstance(out.features[k], list)
            else cpu(out.features[k]) for k in order}


def feature_shapes(cfg: Config, batch: int = 1, total_length: int | None = None) -> pd.DataFrame:
    """The shapes of :func:`extract_features`' tensors for ``cfg``, with what each one is: the
    model is built and run on the meta device (no memory, no numbers), so the table lists
    whatever the configured memory exposes."""
    from ..models import build_predictor

    m = cfg.model
    total = total_length or cfg.eval_length
    with torch.device("meta"):
        predictor = build_predictor(m, cfg.input_length)
        frames = torch.zeros(batch, total, m.img_channels, m.height, m.width)
        features = predictor(frames, torch.ones(batch, total - cfg.input_length - 1),
                             return_features=True).features
    titles = predictor.maps()
    rows = []
    for key in ("T_E", "S_E"):
        for level, x in enumerate(features.get(key, [])):  # BeyondMSE has none
            role = "fed to the memory" if level == m.num_downsample else "recalled by MGIR (Eq. 3)"
            rows.append({"tensor": f"{key}[{level}]", "shape": str(tuple(x.shape)),
                         "meaning": f"{titles[key]}, level {level}: {role}"})
    for key, x in features.items():
        if key not in ("T_E", "S_E"):
            rows.append({"tensor": key, "shape": str(tuple(x.shape)),
                         "meaning": f"{titles.get(key, key)} of every {m.memory.name} unit"})
    return pd.DataFrame(rows)


def config_table(*cfgs: Config) -> pd.DataFrame:
    """The fields of one or more configs side by side (rows ``model.hidden``, ``train.lr``, ...;
    one column per config name)."""
    cols = {}
    for cfg in cfgs:
        d = to_dict(cfg)  # the memory section as {"name": ..., **its fields}
        flat = {"input_length": d["input_length"], "train_length": d["train_length"],
                "eval_length": d["eval_length"], "dataset": d["dataset"]}
        for k, v in d["model"].items():
            flat.update({f"model.memory.{m}": x for m, x in v.items()} if k == "memory"
                        else {f"model.{k}": v})
        flat.update({f"train.{k}": v for k, v in d["train"].items()})
        cols[cfg.name] = {k: str(v) for k, v in flat.items()}
    return pd.DataFrame(cols)


def budget_table() -> pd.DataFrame:
    """Every budget of :mod:`stipkit.config.budget`: its preset, data, frame size, memory stack,
    iterations and evaluation settings (one row per budget)."""
    from ..config.budget import BUDGETS

    rows = {}
    for name, b in BUDGETS.items():
        m = get_preset(b.preset).model
        rows[name] = {"preset": b.preset, "data": " + ".join(b.datasets()),
                      "frames": f"{m.height}x{m.width}",
                      "STGRUs x channels": f"{m.num_layers} x {m.hidden}",
                      "iterations": " + ".join(str(b.iterations_for(d)) for d in b.datasets()),
                      "eval_every": b.eval_every,
                      "eval_windows": "all" if b.eval_windows is None else b.eval_windows}
    return pd.DataFrame(rows).T.rename_axis("budget")


#: What each lever of the study preset gave, measured by ``benchmarks/bench_levers.py``.
LEVERS_CSV = REPO / "benchmarks" / "results" / "levers.csv"


def levers_table(path=None) -> pd.DataFrame:
    """The committed results of ``benchmarks/bench_levers.py`` (one training run per lever of
    the study preset, PSNR on the embedded test split): lever, its base row, the change, the
    PSNR at t = 5 and over all predicted frames at the end and the best mean on the way, beside
    copy-last. Raises FileNotFoundError naming the command that makes it when it is missing."""
    path = Path(path) if path is not None else LEVERS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `python benchmarks/bench_levers.py --csv "
                                f"{relative(path)}` makes it (about an hour on 2 cores)")
    df = pd.read_csv(path)
    df["vs copy-last (mean)"] = (df["psnr_mean"] - df["copy_last_mean"]).round(2)
    return df.set_index("lever")


def paper_table(paper: dict | None = None) -> pd.DataFrame:
    """:data:`PAPER_TABLE_III` as a small table: rows t, columns PSNR and LPIPS x100."""
    paper = PAPER_TABLE_III if paper is None else paper
    df = pd.DataFrame(paper)
    df.index.name = "t"
    return df
