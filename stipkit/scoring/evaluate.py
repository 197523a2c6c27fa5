"""Evaluation: roll a trained predictor out over a test split and score it per time step.

The protocol of STIP Sec. IV (Table I "Test", e.g. 4 -> 6 on UCF Sports): the model is given the
first ``input_length`` frames of each test window, sees no ground truth after that, and predicts
up to ``total_length``. Every predicted future frame (paper numbering t = input_length+1 ..
total_length, e.g. 5..10) is scored with MSE, PSNR, SSIM and LPIPS x100 -- always by
:func:`stipkit.scoring.metrics.sequence_metrics`, the one metrics function of the kit -- and the
training-free baselines of :mod:`stipkit.scoring.baselines` (copy-last, mean-frame, flow-warp)
are scored beside it on the same frames; :func:`strongest_baseline` names the one to beat.

Read top to bottom: :func:`rollout_dataset` (the rollout), :func:`evaluate` (the scores),
:func:`evaluation_table` (a printable table), :func:`evaluate_checkpoint` (from a checkpoint
file, on :func:`stipkit.data.build.default_dataset`), :func:`save_strip` (a picture).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import Subset
from tqdm.auto import tqdm

from ..config import Config
from ..data.build import default_crop, default_dataset
from ..data.frames import crop_to
from ..data.loader import make_loader
from ..runtime import show_progress
from ..runtime.device import default_device
from .baselines import BASELINES
from .metrics import HIGHER_IS_BETTER, METRIC_COLUMNS, psnr, sequence_metrics
from ..models.compile import compile_steps

BASELINE = "copy-last"  # the method name of the copy-last-frame baseline in every scores table


def label_of(predictor) -> str:
    """A predictor's method name in scores tables: its class's ``label`` (STIP: "STIP")."""
    model = getattr(predictor, "module", predictor)  # unwrap DistributedDataParallel
    return getattr(model, "label", type(model).__name__)


def model_method(df: pd.DataFrame) -> str:
    """The one method of a scores table that is not a baseline (:data:`BASELINES`)."""
    methods = [m for m in dict.fromkeys(df["method"].astype(str)) if m not in BASELINES]
    if len(methods) != 1:
        raise ValueError(f"expected the scores of one model beside the baselines "
                         f"{list(BASELINES)}, found methods {methods}; pass method= to choose")
    return methods[0]


def strongest_baseline(df: pd.DataFrame, metric: str = "psnr") -> str:
    """The baseline of a scores table (:func:`evaluate`'s output, per step or per sample) with
    the best mean of ``metric`` over its rows: highest for psnr and ssim, lowest for mse and
    lpips_x100. Tables cached before mean-frame and flow-warp existed hold copy-last only, which
    is then the strongest. Ties go to the earlier baseline of :data:`BASELINES`."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"metric={metric!r} is unknown: valid metrics are {list(HIGHER_IS_BETTER)}")
    if metric not in df.columns:
        raise ValueError(f"the scores have no {metric!r} column; they have {list(df.columns)}")
    methods = df["method"].astype(str)
    means = df[methods.isin(BASELINES)].groupby(methods[methods.isin(BASELINES)])[metric].mean()
    if means.empty:
        raise ValueError(f"the scores hold no baseline rows (methods {sorted(set(methods))}; "
                         f"baselines are {list(BASELINES)})")
    means = means.reindex([b for b in BASELINES if b in means.index])
    return str(means.idxmax() if HIGHER_IS_BETTER[metric] else means.idxmin())


def baseline_names(baselines) -> tuple[str, ...]:
    """Validate :func:`evaluate`'s ``baselines=`` (names of :data:`BASELINES`, or one name) ->
    those names in :data:`BASELINES`' order, without repeats."""
    names = (baselines,) if isinstance(baselines, str) else tuple(baselines)
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise ValueError(f"baselines={baselines!r}: unknown {unknown}; valid baselines are "
                         f"{list(BASELINES)}")
    return tuple(b for b in BASELINES if b in names)


# --------------------------------------------------------------------------- the rollout
def rollout_dataset(predictor, dataset, input_length: int, total_length: int, batch_size: int = 8,
                    device=None, progress: bool = True, compile: bool = False):
    """Yield ``(frames, predictions)`` batch by batch over ``dataset`` (samples (T, C, H, W)).

    ``frames``: the ground-truth windows (B, total_length, C, H, W); ``predictions``: the
    model's future frames v_{input_length+1} .. v_{total_length}, (B, total_length -
    input_length, C, H, W), not clamped. Both lie on the model's device. The predictor is handed
    only the first ``input_length`` frames (no mask), so it cannot see the future. It runs in
    eval mode under ``torch.inference_mode()``; its previous mode is restored afterwards.
    ``device`` moves the predictor there (default: where its parameters are). ``compile``
    rolls out a compiled snapshot instead (:func:`stipkit.models.compile_steps`, inference).
    """
    if not 1 <= input_length < total_length:
        raise ValueError(f"need 1 <= input_length < total_length, got {input_length}, {total_length}")
    if device is not None:
        predictor.to(device)
    device = next(predictor.parameters()).device
    dtype = next(predictor.parameters()).dtype
    was_training = predictor.training
    predictor.eval()
    model = compile_steps(predictor, inference=True) if compile else predictor
    loader = make_loader(dataset, batch_size, shuffle=False)
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc="evaluate", unit="batch", disable=not show_progress(progress),
                              dynamic_ncols=True):
                if batch.shape[1] < total_length:
                    raise ValueError(f"dataset samples have T={batch.shape[1]} frames, fewer than "
                                     f"total_length={total_length}")
                frames = batch[:, :total_length].to(device, dtype)
                rollout = model(frames[:, :input_length], input_length=input_length,
                                total_length=total_length, future_only=True)
                yield frames, rollout.predictions
    finally:
        predictor.train(was_training)


# --------------------------------------------------------------------------- the scores
def evaluate(predictor, dataset, input_length: int, total_length: int, batch_size: int = 8,
             device=None, progress: bool = True, crop: tuple[int, int] | None = None,
             per_sample: bool = False, compile: bool = False,
             shard: bool | None = None, baselines=tuple(BASELINES)) -> pd.DataFrame:
    """Per-time-step scores of ``predictor`` and of the training-free baselines on ``dataset``.

    Returns a tidy DataFrame with columns ``method`` (:func:`label_of` the predictor, e.g.
    "STIP", then the baselines: "copy-last", "mean-frame", "flow-warp", see
    :mod:`stipkit.scoring.baselines`), ``t`` (the paper's
    1-based frame index, input_length+1 .. total_length), ``mse``, ``psnr``, ``ssim`` and
    ``lpips_x100``: means over all samples of the split. ``per_sample=True`` returns the
    unaveraged rows instead (plus a ``sample`` column, the index in ``dataset``).
    ``crop=(H, W)`` center-crops predictions and targets before scoring (SJTU4K: the
    2176-line model output is scored at the native 2160 lines). ``compile``: see
    :func:`rollout_dataset`. Every metric is computed on the model's device.
    ``baselines``: which of :data:`BASELINES` to score (default all; listed in that order
    whatever the order given); an unknown name raises ValueError.

    ``shard`` (default: when a ``torch.distributed`` group of several processes is running,
    e.g. under torchrun): each rank rolls out and scores every world-th window only, and the
    per-window scores are gathered on every rank before averaging, so the result equals one
    process's and every rank spends 1/world of the time (no rank idles in a collective while
    another evaluates alone).
    """
    names = baseline_names(baselines)
    world, rank = _world()
    shard = world > 1 if shard is None else shard
    index = list(range(rank, len(dataset), world)) if shard else list(range(len(dataset)))
    parts, offset, methods = [], 0, (label_of(predictor), *names)
    subset = Subset(dataset, index) if shard else dataset
    for frames, preds in rollout_dataset(predictor, subset, input_length, total_length,
                                         batch_size, device, progress, compile):
        target = frames[:, input_length:]
        preds = [preds, *(BASELINES[b](frames, input_length) for b in names)]
        for method, pred in zip(methods, preds):
            p, g = (pred, target) if crop is None else (crop_to(pred, *crop), crop_to(target, *crop))
            df = sequence_metrics(p, g, input_length, progress=False)
            df["sample"] = [index[offset + i] for i in df["sample"]]
            df.insert(0, "method", method)
            parts.append(df)
        offset += len(frames)
    if shard:
        gathered = [None] * world
        dist.all_gather_object(gathered, parts)
        parts = [df for rank_parts in gathered for df in rank_parts]
    if not parts:
        raise ValueError("the dataset is empty: nothing to evaluate")
    rows = pd.concat(parts, ignore_index=True)
    rows["method"] = pd.Categorical(rows["method"], categories=methods, ordered=True)
    rows = rows.sort_values(["method", "sample", "t"], kind="stable").reset_index(drop=True)
    return rows if per_sample else mean_scores(rows)


def mean_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`evaluate`'s table from its ``per_sample=True`` rows: each method's means per step
    (scores once, read both ways)."""
    cols = [c for c in METRIC_COLUMNS if c in rows.columns]
    means = rows.groupby(["method", "t"], observed=True, sort=True)[cols].mean().reset_index()
    means["method"] = means["method"].astype(str)
    return means


def _world() -> tuple[int, int]:
    """(world size, rank) of the running torch.distributed group; (1, 0) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def evaluation_table(df: pd.DataFrame, mean_row: bool = True) -> pd.DataFrame:
    """Wide per-step table of :func:`evaluate`'s output: rows t, columns (metric, method).

    With ``mean_row`` a last row ``"mean"`` averages over the predicted time steps (the single
    number per metric that the papers' tables report).
    """
    cols = [c for c in METRIC_COLUMNS if c in df.columns]
    methods = list(dict.fromkeys(df["method"]))  # in order of appearance
    wide = df.pivot(index="t", columns="method", values=cols)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([cols, methods], names=["metric", "method"]))
    if mean_row:
        wide.index = wide.index.astype(object)
        wide.loc["mean"] = wide.mean(axis=0)
    return wide


def format_table(df: pd.DataFrame) -> str:
    """:func:`evaluation_table` as text, 4 significant digits."""
    return evaluation_table(df).to_string(float_format=lambda v: f"{v:.4g}")


# --------------------------------------------------------------------------- from a checkpoint
def evaluate_checkpoint(path, dataset=None, *, batch_size: int = 8, device=None,
                        progress: bool = True, crop="auto", input_length: int | None = None,
                        total_length: int | None = None, compile: bool = False,
                        **dataset_kw) -> pd.DataFrame:
    """:func:`evaluate` on a checkpoint written by :func:`stipkit.training.train.train`.

    ``dataset`` defaults to :func:`stipkit.data.build.default_dataset` ``(cfg, "test", **dataset_kw)``;
    ``input_length`` / ``total_length`` to the config's (Table I "Test"); ``crop="auto"`` to
    :func:`stipkit.data.build.default_crop` (SJTU4K), ``None`` for no crop. ``device`` defaults to CUDA if present.
    ``compile``: roll out a compiled snapshot (:func:`stipkit.models.compile_steps`).
    """
    from ..training.checkpoint import load_predictor

    predictor, cfg = load_predictor(path)
    if dataset is None:
        dataset = default_dataset(cfg, "test", total_length=total_length, **dataset_kw)
    return evaluate(predictor, dataset, input_length or cfg.input_length,
                    total_length or cfg.eval_length, batch_size=batch_size,
                    device=device or default_device(), progress=progress,
                    crop=default_crop(cfg) if crop == "auto" else crop, compile=compile)


# --------------------------------------------------------------------------- a picture
def _to_image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) float -> (H, W, 3) uint8, clamped to [0, 1]."""
    x = x.detach().float().cpu().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def save_strip(path, frames, predictions, input_length: int, sample: int = 0, gap: int = 2,
               scale: int = 1) -> Path:
    """Write a PNG of one sample, laid out like the official test images.

    Row 1: the ``input_length`` inputs, then the ground-truth future; row 2: blank under the
    inputs, then the predictions under their ground truth. ``frames``: (B, T, C, H, W) whole
    clips; ``predictions``: (B, T - input_length, C, H, W) future frames (the full model output
    (B, T - 1, ...) is accepted too). Values are clamped to [0, 1]; frames are separated by
    ``gap`` white pixels and enlarged ``scale`` times (nearest neighbour). The image is
    ``T*W + (T-1)*gap`` wide and ``2*H + gap`` high (times ``scale``).
    """
    from PIL import Image

    frames, predictions = frames[sample], predictions[sample]
    T, _, H, W = frames.shape
    future = T - input_length
    if predictions.shape[0] == T - 1:
        predictions = predictions[input_length - 1:]
    if predictions.shape[0] != future:
        raise ValueError(f"predictions have {predictions.shape[0]} frames; expected "
                         f"T - input_length = {future} (or T - 1 = {T - 1})")
    canvas = np.full((2 * H + gap, T * W + (T - 1) * gap, 3), 255, np.uint8)
    for t in range(T):
        x = t * (W + gap)
        canvas[:H, x:x + W] = _to_image(frames[t])
        if t >= input_length:
            canvas[H + gap:, x:x + W] = _to_image(predictions[t - input_length])
    image = Image.fromarray(canvas)
    if scale != 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


# --------------------------------------------------------------------------- against copy-last
def check_targets(df: pd.DataFrame, data: str, method: str | None = None) -> pd.DataFrame:
    """The study budget's targets (issue 8), checked on :func:`stipkit.scoring.evaluate.evaluate`'s
    output: one row per target with ``ours``, ``copy_last``, ``margin`` (positive: ours is
    better by that much) and ``holds``.

    * ``embedded`` (real clips): PSNR at the first predicted frame at least copy-last's minus
      1 dB, and the mean PSNR over every predicted frame above copy-last's;
    * ``digits``: PSNR and LPIPS better than copy-last at every predicted frame.

    The targets are defined against copy-last; the other baselines' rows are not read here
    (:func:`strongest_baseline` and :func:`stipkit.experiments.study.beats_copy_last` report the
    strongest one).
    """
    method = model_method(df) if method is None else method
    ours = df[df["method"] == method].set_index("t")
    base = df[df["method"] == BASELINE].set_index("t")
    if ours.empty or base.empty:
        raise ValueError(f"the scores need rows of method {method!r} and 'copy-last'; "
                         f"found {sorted(set(df['method']))}")
    rows = []

    def add(target, o, b, margin):
        rows.append({"target": target, "ours": round(float(o), 3), "copy_last": round(float(b), 3),
                     "margin": round(float(margin), 3), "holds": bool(margin > 0)})

    if data == "digits":
        for metric, sign, unit in (("psnr", 1, "dB"), ("lpips_x100", -1, "x100")):
            for t in ours.index:
                o, b = ours.loc[t, metric], base.loc[t, metric]
                add(f"{metric} at t={t} better than copy-last ({unit})", o, b, sign * (o - b))
    else:
        t1, tn = int(ours.index.min()), int(ours.index.max())
        o, b = ours.loc[t1, "psnr"], base.loc[t1, "psnr"]
        rows.append({"target": f"psnr at t={t1} >= copy-last - 1 dB", "ours": round(float(o), 3),
                     "copy_last": round(float(b), 3), "margin": round(float(o - (b - 1)), 3),
                     "holds": bool(o >= b - 1)})
        add(f"mean psnr over t={t1}..{tn} above copy-last's (dB)", ours["psnr"].mean(),
            base["psnr"].mean(), ours["psnr"].mean() - base["psnr"].mean())
    return pd.DataFrame(rows)


def per_clip(predictor, cfg: Config, test_set, progress: bool = False,
             rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean PSNR per source clip and time step, model and baselines, on an
    :class:`~stipkit.data.video.EmbeddedVideo` test split (or a ``Subset`` of one): rows
    (clip, t), columns ``windows``, ``ours``, ``copy_last``, ``margin`` (ours minus copy-last),
    then the other baselines (``mean_frame``, ``flow_warp``). It shows where the model wins and
    loses (moving camera vs near-still scenes). ``rows``: :func:`evaluate`'s ``per_sample=True``
    rows of ``predictor`` on ``test_set`` when they are at hand (nothing is scored again)."""
    ds, index = (test_set.dataset, list(test_set.indices)) if isinstance(test_set, Subset) \
        else (test_set, list(range(len(test_set))))
    if not hasattr(ds, "windows"):
        raise TypeError(f"per_clip needs windows of named clips (EmbeddedVideo), got {type(ds).__name__}")
    if rows is None:
        rows = evaluate(predictor, test_set, cfg.input_length, cfg.eval_length, per_sample=True,
                        progress=progress)
    rows = rows.assign(clip=[ds.windows[index[i]][0] for i in rows["sample"]])
    wide = rows.pivot_table(index=["clip", "t"], columns="method", values="psnr", observed=True)
    ours = model_method(rows)
    out = pd.DataFrame({"windows": rows[rows["method"] == ours].groupby(["clip", "t"]).size(),
                        "ours": wide[ours], "copy_last": wide[BASELINE]})
    out["margin"] = out["ours"] - out["copy_last"]
    for b in BASELINES:
        if b != BASELINE and b in wide.columns:
            out[b.replace("-", "_")] = wide[b]
    return out


def _still_predictions(predictor, frames: torch.Tensor, input_length: int, total_length: int,
                       noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each frame of ``frames`` (N, C, H, W) given ``input_length`` times: (the scene, float;
    the predictions of t = input_length+1 .. total_length, clamped to [0, 1], float; the PSNR
    of each against the scene, (N, steps)), on the predictor's device. ``noise`` > 0: each given
    copy gets its own Gaussian noise of that standard deviation (seeded; clamped to [0, 1]), as a
    real camera's frames of a still scene differ; the scene scored against stays the clean one."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be (N, C, H, W) still frames, got shape {tuple(frames.shape)}")
    param = next(predictor.parameters())
    clean = frames[:, None].expand(-1, input_length, -1, -1, -1).float()
    if noise > 0:
        gen = torch.Generator().manual_seed(0)
        clean = (clean + noise * torch.randn(clean.shape, generator=gen)).clamp(0, 1)
    still = clean.to(param.device, param.dtype)
    was_training = predictor.training
    predictor.eval()
    try:
        with torch.inference_mode():
            preds = predictor(still, input_length=input_length,
                              total_length=total_length, future_only=True).predictions
    finally:
        predictor.train(was_training)
    scene, preds = frames.to(param.device, param.dtype).float(), preds.clamp(0, 1).float()
    values = psnr(preds.flatten(0, 1), scene[:, None].expand_as(preds).flatten(0, 1))
    return scene, preds, values.view(preds.shape[:2])


def still_rollout(predictor, frames: torch.Tensor, input_length: int, total_length: int,
                  per_frame: bool = False, noise: float = 0.0) -> pd.DataFrame:
    """How well the model keeps a still scene still: each frame of ``frames`` (N, C, H, W) is
    given ``input_length`` times; returns the PSNR (dB, mean over the frames) of every predicted
    frame against it, by t (``per_frame=True``: one row per frame and t, with ``frame``, the
    index in ``frames``, so that the worst frame can be read). Copy-last would be exact
    (infinite PSNR); a model's errors here are its floor, and how they grow with t is its
    drift: a model that learned "real video always moves" makes a still scene melt
    (:func:`still_drift` says how). ``noise``: each given copy noisy (:func:`_still_predictions`)."""
    _, _, values = _still_predictions(predictor, frames, input_length, total_length, noise)
    ts = list(range(input_length + 1, total_length + 1))
    if per_frame:
        return pd.DataFrame([dict(frame=i, t=t, psnr=float(values[i, k]))
                             for i in range(len(values)) for k, t in enumerate(ts)])
    return pd.DataFrame({"t": ts, "psnr": values.mean(0).tolist()})


def still_drift(predictor, frames: torch.Tensor, input_length: int,
                total_length: int, noise: float = 0.0) -> pd.DataFrame:
    """How a still scene melts: the change the model adds at each step of its rollout.

    With x_hat_t the prediction of t (x_hat at t = input_length: the scene itself) and
    d_t = x_hat_t - x_hat_{t-1}, one row per predicted t, each a mean over the frames:

    * ``psnr``: of x_hat_t against the scene (as :func:`still_rollout`);
    * ``step_rms``: the root mean square of d_t, the change added at that step;
    * ``same_as_first``: the correlation of d_t with the first step's change. Near 1, the model
      adds the same change again at every step, so its error grows linearly in t (PSNR falls
      by 20 log10(k) dB by the k-th prediction: 6.0 dB at the second, 9.5 at the third) rather
      than as the square root of t, as unrelated errors would;
    * ``toward_mean``: the correlation of d_t with the scene's departure from its own mean
      brightness. Negative: bright parts darken and dark parts brighten, a blur toward the
      mean -- the MSE-optimal hedge against motion the model cannot rule out.

    A copy-last predictor adds nothing: ``step_rms`` 0, the two correlations undefined (NaN).
    ``noise``: each given copy noisy (:func:`_still_predictions`); d_1 starts from the clean scene.
    """
    scene, preds, values = _still_predictions(predictor, frames, input_length, total_length, noise)
    seq = torch.cat([scene[:, None], preds], 1)
    change = (seq[:, 1:] - seq[:, :-1]).flatten(2)                       # (N, steps, C*H*W)
    centred = (scene - scene.mean(dim=(1, 2, 3), keepdim=True)).flatten(1)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:                # mean over frames
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        den = a.norm(dim=1) * b.norm(dim=1)
        return float(((a * b).sum(1) / den).mean()) if bool((den > 0).all()) else float("nan")

    rows = []
    for k, t in enumerate(range(input_length + 1, total_length + 1)):
        d = change[:, k]
        rows.append(dict(t=t, psnr=float(values[:, k].mean()), step_rms=float(d.pow(2).mean().sqrt()),
                         same_as_first=corr(d, change[:, 0]), toward_mean=corr(d, centred)))
    return pd.DataFrame(rows)
