"""The method comparison of STIP Tables III-V and STRPM Tables 1-2 at kit scale, and STRPM Table 3.

Read top to bottom:

1. the runs are the ``"compare"`` table of :mod:`stipkit.experiments.ablation` (every method trained at the
   same budget with the one loop, scored 4 -> 6 by the one metrics function, the training-free
   baselines beside (copy-last, mean-frame, flow-warp),
   cached with the command that made them); :func:`results` reads / runs them;
2. :func:`method_table` lays them out as Tables III-V (PSNR and LPIPS at the first and last
   predicted frame, mean ± std over seeds), :func:`paper_table` gives the papers' rows beside,
   labelled as the papers'; :func:`inference_table` times 10 samples per method (Table V's
   column); :func:`verdict` says in words whether STIP beats every method here;
3. :func:`strip` predicts one test window with every method (a Fig. 4-style strip);
   :func:`strpm_fig5_features` gives what STRPM's Fig. 5 shows from its trained run;
4. STRPM Table 3: its runs are the ``"STRPM-3"`` table of :mod:`stipkit.experiments.ablation`;
   :func:`strpm_table3` gives its variants' parameters and FLOPs at the paper's scale beside the
   paper's.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from . import ablation as ab
from ..config import get_preset
from ..config.budget import Budget
from ..config.memories import memory_config
from ..data.build import test_frames
from ..reports.paper import METHOD_LABELS, NOT_REPRODUCED, PAPER_METHODS, PAPER_STRPM_TABLE3
from ..scoring.baselines import BASELINES

TABLE = "compare"
METRICS = ("psnr", "lpips_x100")


def methods() -> dict[str, str]:
    """The compared methods: key -> label (the order of Tables III-V, STIP last)."""
    a = ab.ablation(TABLE)
    return {k: a.label(k) for k in a.variants}


def results(budget: Budget, progress: bool = True) -> pd.DataFrame:
    """What notebook 08 shows: the budget's live seeds trained here (finished checkpoints are
    loaded), merged with the cached seeds (``python -m stipkit ablate --table compare``)."""
    return ab.notebook_results(TABLE, budget, progress=progress)


# --------------------------------------------------------------------------- 2. tables
def _label(method: str) -> str:
    return method if method in BASELINES else ab.ablation(TABLE).label(method)


def method_table(res: pd.DataFrame) -> pd.DataFrame:
    """Tables III-V's layout: per dataset and method, PSNR and LPIPS x100 at the first and the last
    predicted frame, as "mean ± std" over seeds (n seeds), the baselines last (copy-last,
    mean-frame, flow-warp; copy-last alone in results cached before the others)."""
    r = res[res["table"] == TABLE]
    r = r.assign(method=r["method"].where(ab.is_baseline(r["method"]), r["variant"]))
    r = r.drop_duplicates(["data", "method", "seed", "t"])
    first, last = r["t"].min(), r["t"].max()
    rows = []
    for (data, method), g in r.groupby(["data", "method"], sort=False):
        row = {"data": data, "method": _label(method), "seeds": g["seed"].nunique()}
        for t in (first, last):
            for m in METRICS:
                v = g[g["t"] == t][m]
                sd = f" ± {v.std():.2f}" if len(v) > 1 else ""
                row[f"t={t} {'PSNR' if m == 'psnr' else 'LPIPS×100'}"] = f"{v.mean():.2f}{sd}"
        rows.append(row)
    order = {v: i for i, v in enumerate([*methods().values(), *BASELINES])}
    out = pd.DataFrame(rows)
    return out.sort_values(["data", "method"], key=lambda s: s.map(order) if s.name == "method" else s,
                           kind="stable").reset_index(drop=True)


def paper_table(dataset: str = "ucfsport", paper: str = "STIP") -> pd.DataFrame:
    """The paper's rows for ``dataset`` (STIP Tables III-V or STRPM Tables 1-2), wide, each
    method labelled "(paper)"."""
    p = PAPER_METHODS[(PAPER_METHODS["paper"] == paper) & (PAPER_METHODS["dataset"] == dataset)]
    if p.empty:
        raise ValueError(f"no {paper} table for dataset={dataset!r}; valid: "
                         f"{sorted(set(PAPER_METHODS.loc[PAPER_METHODS.paper == paper, 'dataset']))}")
    col = [f"t={int(t)} {'PSNR' if m == 'psnr' else 'LPIPS×100'}" if m != "inference_s" else
           "inference 10 samples (s)" for t, m in zip(p["t"], p["metric"])]
    wide = p.assign(col=col).pivot_table(index="method", columns="col", values="value", sort=False)
    wide.index = [f"{METHOD_LABELS[k]} (paper, {paper} Table {p['table'].iloc[0]})" for k in wide.index]
    return wide


def not_reproduced() -> pd.DataFrame:
    """The papers' methods the kit does not train, with the reason."""
    return pd.DataFrame([(METHOD_LABELS[k], why) for k, why in NOT_REPRODUCED.items()],
                        columns=["method", "why not reproduced"])


def inference_table(budget: Budget, samples: int = 10, repeats: int = 3) -> pd.DataFrame:
    """Table V's column at kit scale: each method at the budget's ablation preset, its
    parameters, MACs per step and the measured time to predict ``samples`` windows 4 -> 6 on
    this machine (best of ``repeats``)."""
    from ..reports.complexity import model_cost
    rows = []
    for key, label in methods().items():
        cfg = ab.variant_config(TABLE, key, "embedded", 0, budget)
        rows.append(dict(method=label, **{k: v for k, v in model_cost(cfg, samples, repeats).items()
                                          if k != "model"}))
    return pd.DataFrame(rows)


def verdict(res: pd.DataFrame) -> str:
    """In words, per dataset: does STIP (as the kit trains it) beat every method, by
    :data:`stipkit.experiments.ablation.RULE`, and which methods beat the strongest baseline
    (:func:`stipkit.experiments.ablation.baseline_report`)."""
    v = ab.verdicts(res, TABLE)
    lines = []
    for data, g in v.groupby("data", sort=False):
        for _, row in g.iterrows():
            lines.append(f"{data}: {row['claim']}: {row['verdict']} ({row['seeds']} seed(s); "
                         f"{row['evidence']})")
    return "\n".join(lines) + "\n" + ab.baseline_report(res, TABLE)


# --------------------------------------------------------------------------- 3. the strip
def strip(data: str = "embedded", seed: int = 0, window: int = 0, *, budget: Budget) -> dict:
    """One test window predicted by every method's trained run (seed ``seed``): ``{"frames":
    the window (T, C, H, W), "input_length": n, label: predictions of frames n+1..T}``. A method
    whose run is not trained yet is trained (as :func:`results` would)."""
    return window_strip({label: _trained(key, data, seed, budget)
                         for key, label in methods().items()}, data, budget, window)


def window_strip(models: dict, data: str, budget: Budget, window: int = 0) -> dict:
    """Test window ``window`` of ``data`` (the budget's test split at the first model's size)
    predicted by each of ``models`` (``{label: (model, config)}``): ``{"frames": the window
    (T, C, H, W), "input_length": n, label: predictions of frames n+1..T}``, what
    :func:`stipkit.plots.viz_ablation.plot_strip` draws."""
    out = {}
    for label, (model, cfg) in models.items():
        if "frames" not in out:
            frames = test_frames(cfg, budget, limit=window + 1, data=data)[window]
            out.update(frames=frames, input_length=cfg.input_length)
        with torch.no_grad():
            pred = model.eval()(out["frames"][None, :cfg.input_length].float(),
                                total_length=out["frames"].shape[0], future_only=True).predictions[0]
        out[label] = pred.clamp(0, 1)
    return out


def _trained(key: str, data: str, seed: int, budget: Budget):
    """The (model, config) of a comparison run, trained first if it is not yet (as :func:`results`)."""
    from ..training.checkpoint import load_predictor
    path = ab.run_dir(TABLE, key, data, seed, budget) / "checkpoint.pt"
    if not path.exists():
        ab.save_results(ab.run_variant(TABLE, key, data, seed, budget, progress=False), budget)
    model, cfg = load_predictor(path)
    return model.eval(), cfg


def strpm_fig5_features(data: str = "embedded", seed: int = 0, window: int = 0, *,
                        budget: Budget):
    """What STRPM's Fig. 5 shows, from the comparison's trained STRPM (trained first if it is not
    yet): ``(features, frames, t, level)`` -- the temporal and spatial features T_E, S_E (the
    deepest encoder level, what the RPMs read) and Eq. 9's STIF and STRF of the bottom RPM, the
    test window's frames, the last given frame's index and the level; drawn by
    :func:`stipkit.plots.viz_ablation.strpm_fig5`."""
    model, cfg = _trained("strpm", data, seed, budget)
    frames = test_frames(cfg, budget, limit=window + 1, data=data)[window:window + 1]
    with torch.no_grad():
        out = model(frames[:, :cfg.input_length + 1], return_features=True)
    feats = {k: out.features[k] for k in ("T_E", "S_E", "STIF", "STRF")}
    return feats, frames, cfg.input_length - 1, cfg.model.num_downsample


# --------------------------------------------------------------------------- 4. STRPM Table 3
TABLE3 = "STRPM-3"  # its runs: stipkit.reports.ablation_tables.ABLATIONS["STRPM-3"] (variants, claims)


def table3_config(variant: str, preset: str = "strpm-human36m"):
    """One STRPM Table 3 variant (``ABLATIONS["STRPM-3"]``) at the scale of ``preset`` (an STRPM
    preset): without STED the memory in the plain encoder/decoder, "RPM + STED" STRPM itself;
    MSE (as the table)."""
    a = ab.ablation(TABLE3)
    if variant not in a.variants:
        raise ValueError(f"variant={variant!r} is not in STRPM Table 3: valid are {list(a.variants)}")
    cfg = get_preset(preset)
    if cfg.model.name != "strpm":
        raise ValueError(f"preset={preset!r} is not an STRPM preset (use 'strpm-<preset>')")
    kw = dict(a.variants[variant][1])
    train = replace(cfg.train, loss="mse")
    if kw.get("name") == "strpm":
        return replace(cfg, train=train)
    memory = memory_config(kw.pop("memory"), **kw.pop("memory_fields", {}))
    return replace(cfg, model=replace(cfg.model, **kw, name="stip", memory=memory), train=train)


def strpm_table3(preset: str = "strpm-human36m") -> pd.DataFrame:
    """STRPM Table 3's parameters and FLOPs per whole model at ``preset`` (default: its
    Human3.6M setting, 16 memories of 128 channels), beside the paper's: ``params_M`` (M = 2^20,
    without normalisation layers' affine parameters, listed apart as ``norm_params_M``: STRPM's
    LayerNorms over (C, H, W) hold 0.5M each, which the paper's counts match without) and
    ``flops_G`` (multiply-accumulates of one time step, one sample, G = 2^30)."""
    from ..reports.complexity import model_cost
    rows = []
    a = ab.ablation(TABLE3)
    for key in a.variants:
        label, c = a.label(key), model_cost(table3_config(key, preset), samples=0)
        paper = PAPER_STRPM_TABLE3.set_index("variant").loc[key]
        rows.append(dict(variant=label, params_M=c["params_M"] - c["norm_params_M"],
                         norm_params_M=c["norm_params_M"], flops_G=c["flops_G"],
                         paper_params_M=paper.params_M, paper_flops_G=paper.flops_G))
    df = pd.DataFrame(rows)
    df["params_ratio"] = df.params_M / df.paper_params_M
    df["flops_ratio"] = df.flops_G / df.paper_flops_G
    return df
