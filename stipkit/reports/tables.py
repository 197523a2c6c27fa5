"""The paper's tables regenerated from the kit itself (the logic behind notebooks 02 and 09).

* :func:`table1` -- STIP Table I from the presets of :mod:`stipkit.config`;
  :data:`~stipkit.reports.paper.TABLE1_PAPER` is the paper's Table I as printed, :func:`compare_table1`
  puts the two side by side and says where and why they differ (only SJTU4K's resolution does).
* :func:`table2` -- STIP Table II read off the ``nn.Module`` objects of a built model: kernel,
  stride, padding and features from the layers' attributes, normalisation and nonlinearity by
  tracing one time step (:func:`stipkit.reports.complexity.trace_norm_act`);
  :data:`~stipkit.reports.paper.TABLE2_PAPER` and :func:`compare_table2` as for Table I.
* :func:`save_table` -- ``<stem>.csv`` and ``<stem>.md``; :func:`write_table` saves a table
  where the notebooks may write (:func:`stipkit.config.outputs.output_dir`: nowhere at the ``ci``
  budget, so CI never overwrites the committed figures), at the budget's say-so (what notebook 02
  does); :func:`figure_inventory` lists ``figures/``, :func:`figure_file` and :func:`load_table`
  read back what the notebooks wrote (what notebook 09 collects).

Re-exported here for the notebooks: the paper's tables (:mod:`stipkit.reports.paper`), parameter and
FLOP counts (:mod:`stipkit.reports.complexity`) and the official-code departures
(:mod:`stipkit.reports.departures`).

Everything here builds models on PyTorch's ``meta`` device: no memory is allocated and no
arithmetic is done, so even the 4K preset's tables cost a fraction of a second.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from torch import nn

from ..config.budget import Budget
from ..config.outputs import FIGURES, output_dir, relative
from .complexity import (as_config, build_meta, flops_per_step, flops_table, parameter_counts,
                         parameter_table, trace_norm_act)
from ..config import Config, get_preset
from .departures import departures
from .paper import (DL, DL_D, FC, HIDDEN, TABLE1_COLUMNS, TABLE1_PAPER, TABLE2_COLUMNS,
                    TABLE2_PAPER, UL, paper_height)

__all__ = [
    "DATASET_NAMES", "TABLE1_COLUMNS", "TABLE1_PAPER", "TABLE2_COLUMNS", "TABLE2_PAPER",
    "table1", "compare_table1", "table2", "compare_table2", "parameter_counts",
    "parameter_table", "flops_per_step", "flops_table", "departures",
    "save_table", "to_markdown", "figure_inventory", "build_meta", "write_table", "figure_file",
    "load_table",
]

DATASET_NAMES = {"ucfsport": "UCF Sports", "human36m": "Human3.6M", "sjtu4k": "SJTU4K"}
OURS = "stipkit"  # the Source of our rows in the comparisons


def _dataset_name(cfg: Config) -> str:
    base = cfg.name[: -len("-official")] if cfg.name.endswith("-official") else cfg.name
    name = DATASET_NAMES.get(base, base)
    return name + (" (official)" if base != cfg.name else "")


# =============================================================================== Table I
def table1(presets=("ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """Table I regenerated from the presets (one row each; Config objects are accepted too).

    Train/Test are ``input_length -> (length - input_length)``; Encoder/Decoder count the
    stride-2 layers (``num_downsample``), Discriminator its stride-2 layers (``disc_layers``).
    Hidden shows the discriminator's width too when it differs from the predictor's.
    """
    rows = []
    for p in presets:
        cfg = as_config(p)
        m, t = cfg.model, cfg.train
        hidden = m.hidden if m.hidden == m.disc_hidden else f"{m.hidden} (D: {m.disc_hidden})"
        rows.append((_dataset_name(cfg), f"{m.height}×{m.width}",
                     f"{cfg.input_length} → {cfg.train_length - cfg.input_length}",
                     f"{cfg.input_length} → {cfg.eval_length - cfg.input_length}",
                     m.num_layers, m.patch, f"{m.num_downsample} × DL", f"{m.num_downsample} × UL",
                     f"{m.disc_layers} × DL_D, FC", hidden, m.recall_weight, t.gamma_gan, t.gamma_lp))
    return pd.DataFrame(rows, columns=list(TABLE1_COLUMNS))


def _table1_reason(preset: str, column: str) -> str:
    cfg = get_preset(preset)
    m = cfg.model
    if preset == "sjtu4k" and column == "Resolution":
        unit = m.patch * 2 ** m.num_downsample
        native = paper_height("SJTU4K")
        return (f"as the official code: {native} lines are not a multiple of patch·2^N = "
                f"{m.patch}·2^{m.num_downsample} = {unit}, so the model runs at {m.height} lines; "
                f"frames are padded by {(m.height - native) // 2} edge rows top and bottom "
                f"(data.pad_to) and predictions are cropped back to {native} (data.crop_to) "
                "before the metrics")
    return "unexplained"


def compare_table1(presets=("ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """Ours beside the paper's, row by row: a ``Source`` column ("stipkit" / "paper") and a
    ``Differences`` column on our rows naming each differing setting and why ("" if none)."""
    ours = table1(presets)
    rows = []
    for preset, (_, row) in zip(presets, ours.iterrows()):
        paper = TABLE1_PAPER[TABLE1_PAPER.Dataset == row.Dataset]
        if paper.empty:
            raise ValueError(f"preset {preset!r} ({row.Dataset}) is not a row of the paper's Table I")
        paper = paper.iloc[0]
        diffs = [f"{c}: {row[c]} vs {paper[c]} ({_table1_reason(preset, c)})"
                 for c in TABLE1_COLUMNS if row[c] != paper[c]]
        rows.append({"Source": OURS, **row.to_dict(), "Differences": "; ".join(diffs)})
        rows.append({"Source": "paper (Table I)", **paper.to_dict(), "Differences": ""})
    df = pd.DataFrame(rows)
    return df[["Dataset", "Source", *TABLE1_COLUMNS[1:], "Differences"]]


# =============================================================================== Table II
_OPERATIONS = {nn.Conv2d: "convolution", nn.ConvTranspose2d: "deconvolution",
               nn.Conv3d: "3D convolution", nn.Linear: "fully-connected"}


def _layer_groups(predictor: nn.Module, disc: nn.Module) -> list[tuple[str, list[tuple[str, nn.Module]]]]:
    """The model's weight layers grouped into Table II rows (paper rows first, then the
    layers Table II does not list). Every Conv/Linear module lands in exactly one group.

    The grouping reads STIP's parts (Table II is STIP's table); the layers of a part it does not
    know, or of a predictor without these parts, become "Other (<module names>)" rows."""
    groups: dict[str, list] = {k: [] for k in (DL, DL_D, UL, HIDDEN, FC)}
    extra = {"Clip layer (Encoder, Eq. 1)": [], "Merge W_1×1[T_E, T] (Alg. 1 line 7)": [],
             "Merge W_1×1[T^N, S^N] (no STED)": [], "Fusion W_1×1 (Eq. 4)": []}
    groups.update(extra)
    clip, merge_t, merge_ts, head = extra
    for name, enc in getattr(predictor, "encoders", {}).items():
        groups[clip].append((f"encoders.{name}.clip", enc.clip))
        groups[DL] += [(f"encoders.{name}.down.{i}", m) for i, m in enumerate(enc.down)]
    for name, dec in getattr(predictor, "decoders", {}).items():
        groups[UL] += [(f"decoders.{name}.up.{i}", m) for i, m in enumerate(dec.up)]
    for k, unit in enumerate(getattr(predictor, "memory", ())):
        groups[HIDDEN] += [(f"memory.{k}.{n}", m) for n, m in unit.named_modules()
                           if type(m) in _OPERATIONS]
    for key, label in (("merge_t", merge_t), ("merge_ts", merge_ts)):
        if getattr(predictor, key, None) is not None:
            groups[label].append((key, getattr(predictor, key)))
    groups[head] += [(f"head.{k}", m) for k, m in getattr(predictor, "head", {}).items()]
    for n, m in disc.named_modules():
        if isinstance(m, nn.Linear):
            groups[FC].append((f"D.{n}", m))
        elif type(m) in _OPERATIONS:
            groups[DL_D].append((f"D.{n}", m))
    seen = {id(m) for ms in groups.values() for _, m in ms}
    others = [(f"{prefix}{n}", m) for prefix, model in (("", predictor), ("D.", disc))
              for n, m in model.named_modules() if type(m) in _OPERATIONS and id(m) not in seen]
    for n, m in others:  # any layer a future model adds shows up rather than vanishing
        groups.setdefault(f"Other ({_patterns([n])})", []).append((n, m))
    return [(k, v) for k, v in groups.items() if v]


def _size(v) -> str:
    v = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    return str(v[0]) if len(set(v)) == 1 else "×".join(map(str, v))


def _features(owner: nn.Module | None, m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return f"{m.in_features} → {m.out_features}"
    hidden = getattr(owner, "hidden", None)
    if isinstance(hidden, int) and m.out_channels != hidden and m.out_channels % hidden == 0:
        return f"{m.out_channels // hidden} × {hidden}"   # several kernels stacked in one conv
    return str(m.out_channels)


def _summary(values: list[str]) -> str:
    """One value if all agree, else 'a ×3, b ×1' in order of first appearance."""
    counts = dict.fromkeys(values, 0)
    for v in values:
        counts[v] += 1
    if len(counts) == 1:
        return values[0]
    return ", ".join(f"{v} ×{n}" for v, n in counts.items())


def _patterns(names: list[str]) -> str:
    return ", ".join(dict.fromkeys(re.sub(r"\.\d+(?=\.|$)", ".*", n) for n in names))


def table2(cfg: Config | str, model: tuple[nn.Module, nn.Module] | None = None) -> pd.DataFrame:
    """Table II read off the modules of a built model (``model``, else the preset built on meta).

    Kernel/Stride/Padding/Features come from each layer's attributes; Normalization and
    Nonlinearity from tracing one time step. Features of a memory unit's convolution are shown
    as ``4 × 64`` when it stacks several ``hidden``-channel kernels; an FC as ``in → out``.
    Rows Table II does not list (the clip layer, the 1x1 merges, the Eq. 4 head) follow.
    ``Count`` is the number of such layers in the model, ``Modules`` their names (``D.`` is the
    discriminator).
    """
    cfg = as_config(cfg)
    predictor, disc = model if model is not None else build_meta(cfg)
    groups = _layer_groups(predictor, disc)
    owners = {id(m): owner for owner in getattr(predictor, "memory", ()) for m in owner.modules()}
    traced = trace_norm_act(predictor, disc, [m for _, ms in groups for _, m in ms])
    rows = []
    for label, members in groups:
        mods = [m for _, m in members]
        conv = [m for m in mods if not isinstance(m, nn.Linear)]
        rows.append({
            "Layer": label,
            "Operation": _summary([_OPERATIONS[type(m)] for m in mods]),
            "Kernel": _summary([_size(m.kernel_size) for m in conv]) if conv else "-",
            "Stride": _summary([_size(m.stride) for m in conv]) if conv else "-",
            "Padding": _summary([_size(m.padding) for m in conv]) if conv else "-",
            "Features": _summary([_features(owners.get(id(m)), m) for m in mods]),
            "Normalization": _summary([traced[id(m)][0] for m in mods]),
            "Nonlinearity": _summary([traced[id(m)][1] for m in mods]),
            "Count": len(mods),
            "Modules": _patterns([n for n, _ in members]),
        })
    return pd.DataFrame(rows)


def _table2_reason(layer: str, column: str, ours: str, cfg: Config) -> str:
    m = cfg.model
    if layer == HIDDEN and column == "Padding":
        return (f"Table II's padding 1 would shrink the {m.filter_size}×{m.filter_size} output by 2 "
                f"pixels per step; the official code and stipkit pad k//2 = {m.filter_size // 2} ('same')")
    if column == "Features" and m.hidden != 64 and str(m.hidden) in ours:
        return f"this preset's Hidden is {m.hidden} (Table I rows: 64)"
    if layer == HIDDEN and column == "Features":
        return ("notation: conv_t and conv_s each stack the four W_t*/W_s* kernels of Eq. 5-6; "
                f"every gate and trend map has {m.hidden} channels")
    if layer == FC and column == "Features":
        return ("notation: the paper gives the FC's input width; stipkit shows input → output "
                "(the flattened last DL_D map → one probability per frame)")
    if layer == FC and column == "Nonlinearity":
        return ("notation: D returns the FC's logit and the GAN losses apply the sigmoid "
                "(binary_cross_entropy_with_logits: the same function, stable, mixed-precision safe)")
    if layer == UL and column == "Nonlinearity" and not m.last_upsample_act:
        return "official-code departure: no activation after the last UL (model.last_upsample_act)"
    if layer == DL_D and column == "Nonlinearity" and m.disc_activation != "leaky_relu":
        return f"official-code departure: {m.disc_activation} in the discriminator (model.disc_activation)"
    return "unexplained"


def compare_table2(cfg: Config | str = "ucfsport",
                   model: tuple[nn.Module, nn.Module] | None = None) -> pd.DataFrame:
    """Our Table II (:func:`table2`) beside the paper's, layer by layer, with ``Differences``
    (each differing column, the two values and why) on our rows; the layers Table II does not
    list come last, marked as such."""
    cfg = as_config(cfg)
    ours = table2(cfg, model)
    paper = TABLE2_PAPER.set_index("Layer")
    rows = []
    for _, row in ours.iterrows():
        r = {"Source": OURS, **{c: row[c] for c in TABLE2_COLUMNS}}
        if row.Layer in paper.index:
            p = paper.loc[row.Layer]
            r["Differences"] = "; ".join(
                f"{c}: {row[c]} vs {p[c]} ({_table2_reason(row.Layer, c, row[c], cfg)})"
                for c in TABLE2_COLUMNS[1:] if row[c] != p[c])
            rows += [r, {"Source": "paper (Table II)", "Layer": row.Layer, **p.to_dict(),
                         "Differences": ""}]
        else:
            r["Differences"] = "not listed in the paper's Table II"
            rows.append(r)
    df = pd.DataFrame(rows)
    return df[["Layer", "Source", *TABLE2_COLUMNS[1:], "Differences"]]


# =============================================================================== output
def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).replace("|", "\\|").replace("*", "\\*").replace("\n", "<br>")


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured markdown table (``DataFrame.to_markdown``, tabulate's "pipe" format;
    numeric columns right-aligned). Cells are made text first (:func:`_cell`): NaN is empty,
    floats ``%g``, and ``|``, ``*`` and line breaks are escaped, so no cell can split a row."""
    if index:
        df = df.reset_index()
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns]
    text = df.map(_cell)
    text.columns = [_cell(c) for c in df.columns]
    return text.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                            colalign=["right" if n else "left" for n in numeric]) + "\n"


def save_table(df: pd.DataFrame, stem: str, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.csv`` and ``<out_dir>/<stem>.md`` (default ``figures/``)."""
    out = Path(out_dir) if out_dir is not None else FIGURES
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    df.to_csv(csv, index=False)
    md.write_text(to_markdown(df), encoding="utf-8")
    return csv, md


def write_table(df: pd.DataFrame, stem: str, budget: Budget,
                folder: str | Path | None = None) -> None:
    """:func:`save_table` at the budget's say-so, saying what it did: at the study and paper
    budgets writes ``<stem>.csv`` and ``<stem>.md`` into ``folder`` (default ``figures/``) and
    prints their paths; at ``ci`` writes nothing and prints so
    (:func:`stipkit.config.outputs.output_dir`). Returns nothing, so that a notebook cell ending
    with it shows only the message."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_table({stem!r}) needs a DataFrame, got {type(df).__name__}")
    if not stem or Path(stem).name != stem or stem.endswith((".csv", ".md")):
        raise ValueError(f"stem={stem!r} must be a bare file name without suffix, e.g. 'table1'")
    out = output_dir(budget, f"{stem}.csv / .md")
    if out is None:
        return
    paths = save_table(df, stem, folder if folder is not None else out)
    print("wrote", ", ".join(relative(p) for p in paths))


def _producer(name: str) -> str:
    return next((who for pre, who in _PRODUCERS if name.startswith(pre)), "?")


def figure_file(name: str, folder: str | Path | None = None) -> Path:
    """``figures/<name>`` (or ``folder/<name>``) if a notebook has written it; else
    FileNotFoundError naming the file and the notebook that makes it."""
    folder = Path(folder) if folder is not None else FIGURES
    path = folder / name
    if not path.is_file():
        who = _producer(name)
        hint = (f"notebook {who} writes it at the study or paper budget" if who != "?"
                else "no notebook of the kit is known to write it")
        raise FileNotFoundError(f"{relative(path)} does not exist: {hint}")
    return path


def load_table(stem: str, folder: str | Path | None = None) -> pd.DataFrame:
    """The table a notebook saved with :func:`save_table` / :func:`write_table`, read back from
    ``figures/<stem>.csv`` (or ``folder``). Empty cells stay empty strings (not NaN), so the table
    shows as written; FileNotFoundError names the notebook that makes a missing table."""
    if stem.endswith((".csv", ".md")):
        raise ValueError(f"stem={stem!r}: give the name without suffix, e.g. 'table1'")
    return pd.read_csv(figure_file(f"{stem}.csv", folder), keep_default_na=False)


_PRODUCERS = [("01_", "01_data_prep"), ("02_", "02_model_tour"), ("03_", "03_train_stgru"),
              ("04_", "04_ablation_mgst_ae"), ("05_", "05_ablation_memories"),
              ("06_", "06_ablation_losses"),
              ("07_", "07_visualise_gates"), ("08_", "08_compare_methods"),
              ("09_", "09_tables_and_figures"),
              ("table", "02_model_tour"), ("parameter", "02_model_tour"),
              ("flops", "02_model_tour"), ("departures", "02_model_tour")]


def figure_inventory(folder: str | Path | None = None) -> pd.DataFrame:
    """The files in ``figures/`` (names relative to it), with the notebook that makes each."""
    folder = Path(folder) if folder is not None else FIGURES
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    rows = [(p.name, _producer(p.name), round(p.stat().st_size / 1024, 1)) for p in files]
    return pd.DataFrame(rows, columns=["file", "made by", "kB"])
