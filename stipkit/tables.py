"""The paper's tables regenerated from the kit itself (the logic behind notebooks 02 and 08).

* :func:`table1` -- STIP Table I from the presets of :mod:`stipkit.config`;
  :data:`TABLE1_PAPER` is the paper's Table I as printed, :func:`compare_table1` puts the two
  side by side and says where and why they differ (only SJTU4K's resolution does).
* :func:`table2` -- STIP Table II read off the ``nn.Module`` objects of a built model: kernel,
  stride, padding and features from the layers' attributes, normalisation and nonlinearity by
  tracing one time step (which function consumes each layer's output); :data:`TABLE2_PAPER`
  and :func:`compare_table2` as for Table I.
* :func:`parameter_counts` / :func:`parameter_table` -- parameters per part;
  :func:`flops_per_step` -- FLOPs of one time step (``torch.utils.flop_counter``).
* :func:`departures` -- every place where the official STIPHR code departs from the paper, with
  stipkit's default and the config field that switches it (values read from the presets).
* :func:`save_table` -- ``<stem>.csv`` and ``<stem>.md`` (a small markdown writer: no
  ``tabulate`` needed); :func:`output_dir` says where the notebooks may write (nowhere at the
  ``ci`` budget, so CI never overwrites the committed figures).

Everything here builds models on PyTorch's ``meta`` device: no memory is allocated and no
arithmetic is done, so even the 4K preset's tables cost a fraction of a second.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .budget import FIGURES, Budget, current_budget
from .config import Config, get_preset

__all__ = [
    "DATASET_NAMES", "TABLE1_COLUMNS", "TABLE1_PAPER", "TABLE2_COLUMNS", "TABLE2_PAPER",
    "table1", "compare_table1", "table2", "compare_table2", "parameter_counts",
    "parameter_table", "flops_per_step", "flops_table", "departures", "config_table", "output_dir",
    "save_table", "to_markdown", "figure_inventory", "build_meta",
]

DATASET_NAMES = {"ucfsport": "UCF Sports", "human36m": "Human3.6M", "sjtu4k": "SJTU4K"}
OURS, PAPER = "stipkit", "paper"


def _cfg(cfg: Config | str) -> Config:
    return get_preset(cfg) if isinstance(cfg, str) else cfg


def _dataset_name(cfg: Config) -> str:
    base = cfg.name[: -len("-official")] if cfg.name.endswith("-official") else cfg.name
    name = DATASET_NAMES.get(base, base)
    return name + (" (official)" if base != cfg.name else "")


def build_meta(cfg: Config | str):
    """``(predictor, discriminator)`` of a preset built on the ``meta`` device (no memory)."""
    from .models import build_model

    with torch.device("meta"):
        return build_model(_cfg(cfg))


# =============================================================================== Table I
TABLE1_COLUMNS = ("Dataset", "Resolution", "Train", "Test", "Layers", "Patch", "Encoder",
                  "Decoder", "Discriminator", "Hidden", "λ", "γ1", "γ2")

#: STIP Table I ("Experimental Settings") as printed in the paper (arXiv 2206.04381).
TABLE1_PAPER = pd.DataFrame(
    [("UCF Sports", "512×512", "4 → 1", "4 → 6", 16, 2, "4 × DL", "4 × UL", "8 × DL_D, FC", 64, 0.1, 0.010, 0.0010),
     ("Human3.6M", "1024×1024", "4 → 1", "4 → 4", 16, 4, "4 × DL", "4 × UL", "8 × DL_D, FC", 64, 0.1, 0.010, 0.0010),
     ("SJTU4K", "2160×3840", "4 → 1", "4 → 4", 16, 8, "4 × DL", "4 × UL", "8 × DL_D, FC", 64, 0.1, 0.005, 0.0005)],
    columns=list(TABLE1_COLUMNS))


def table1(presets=("ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """Table I regenerated from the presets (one row each; Config objects are accepted too).

    Train/Test are ``input_length -> (length - input_length)``; Encoder/Decoder count the
    stride-2 layers (``num_downsample``), Discriminator its stride-2 layers (``disc_layers``).
    Hidden shows the discriminator's width too when it differs from the predictor's.
    """
    rows = []
    for p in presets:
        cfg = _cfg(p)
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
        native = int(TABLE1_PAPER.loc[TABLE1_PAPER.Dataset == "SJTU4K", "Resolution"].item().split("×")[0])
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
TABLE2_COLUMNS = ("Layer", "Operation", "Kernel", "Stride", "Padding", "Features",
                  "Normalization", "Nonlinearity")
DL, DL_D, UL, HIDDEN, FC = ("Downsampling Layer (Encoder)", "Downsampling Layer (Discriminator)",
                            "Upsampling Layer (Decoder)", "Hidden Layer (Unit)",
                            "Fully-Connected Layer (Discriminator)")

#: STIP Table II ("Parameter Settings") as printed in the paper; spellings normalised
#: ("LeakeyRelu(0.2)" -> "LeakyReLU(0.2)", "Nolinearity" -> "Nonlinearity").
TABLE2_PAPER = pd.DataFrame(
    [(DL, "convolution", "3", "2", "1", "64", "-", "LeakyReLU(0.2)"),
     (DL_D, "convolution", "3", "2", "1", "64", "Group Normalization(4)", "LeakyReLU(0.2)"),
     (UL, "deconvolution", "3", "2", "1", "64", "-", "LeakyReLU(0.2)"),
     (HIDDEN, "convolution", "5", "1", "1", "64", "Layer Normalization", "-"),
     (FC, "fully-connected", "-", "-", "-", "64", "-", "Sigmoid()")],
    columns=list(TABLE2_COLUMNS))

_OPERATIONS = {nn.Conv2d: "convolution", nn.ConvTranspose2d: "deconvolution",
               nn.Conv3d: "3D convolution", nn.Linear: "fully-connected"}
_NORMS = {"layer_norm": "Layer Normalization", "group_norm": "Group Normalization",
          "batch_norm": "Batch Normalization", "instance_norm": "Instance Normalization"}
_ACTS = {"leaky_relu": "LeakyReLU", "leaky_relu_": "LeakyReLU", "relu": "ReLU()", "relu_": "ReLU()",
         "sigmoid": "Sigmoid()", "sigmoid_": "Sigmoid()", "tanh": "Tanh()", "tanh_": "Tanh()",
         "gelu": "GELU()", "silu": "SiLU()", "elu": "ELU()"}


def _layer_groups(predictor: nn.Module, disc: nn.Module) -> list[tuple[str, list[tuple[str, nn.Module]]]]:
    """The model's weight layers grouped into Table II rows (paper rows first, then the
    layers Table II does not list). Every Conv/Linear module lands in exactly one group."""
    groups: dict[str, list] = {k: [] for k in (DL, DL_D, UL, HIDDEN, FC)}
    extra = {"Clip layer (Encoder, Eq. 1)": [], "Merge W_1×1[T_E, T] (Alg. 1 line 7)": [],
             "Merge W_1×1[T^N, S^N] (no STED)": [], "Fusion W_1×1 (Eq. 4)": []}
    groups.update(extra)
    clip, merge_t, merge_ts, head = extra
    for name, enc in predictor.encoders.items():
        groups[clip].append((f"encoders.{name}.clip", enc.clip))
        groups[DL] += [(f"encoders.{name}.down.{i}", m) for i, m in enumerate(enc.down)]
    for name, dec in predictor.decoders.items():
        groups[UL] += [(f"decoders.{name}.up.{i}", m) for i, m in enumerate(dec.up)]
    for k, unit in enumerate(predictor.memory):
        groups[HIDDEN] += [(f"memory.{k}.{n}", m) for n, m in unit.named_modules()
                           if type(m) in _OPERATIONS]
    groups[merge_t].append(("merge_t", predictor.merge_t))
    if predictor.merge_ts is not None:
        groups[merge_ts].append(("merge_ts", predictor.merge_ts))
    groups[head] += [(f"head.{k}", m) for k, m in predictor.head.items()]
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


@dataclass
class _Call:
    name: str
    arg: object       # the first tensor argument
    args: tuple
    kwargs: dict
    out: object


class _Recorder(TorchFunctionMode):
    """Logs every torch function call (name, first tensor argument, output) of a forward pass."""

    def __init__(self):
        super().__init__()
        self.calls: list[_Call] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        name = getattr(func, "__name__", "")
        if first is not None:
            self.calls.append(_Call(name, first, args, kwargs, out))
        return out


def _trace_after(predictor: nn.Module, disc: nn.Module, modules: list[nn.Module]) -> dict:
    """For each module: (normalisation, nonlinearity) applied to its output in one time step.

    Runs the predictor for one step and the discriminator on one frame (on whatever device the
    models are: on ``meta`` nothing is computed) and follows each layer's output through the
    functions that consume it: a normalisation first (optional), then an activation.
    """
    outputs, hooks = {}, []
    for m in modules:
        hooks.append(m.register_forward_hook(lambda mod, inp, out: outputs.setdefault(id(mod), out)))
    cfg = predictor.cfg
    p = next(predictor.parameters())
    frames = torch.zeros(1, 2, cfg.img_channels, cfg.height, cfg.width, device=p.device, dtype=p.dtype)
    rec = _Recorder()
    try:
        with torch.no_grad(), rec:
            predictor(frames, input_length=1)
            disc(frames[:, :1])
    finally:
        for h in hooks:
            h.remove()
    result = {}
    for m in modules:
        out = outputs.get(id(m))
        if out is None:
            result[id(m)] = ("(not run)", "(not run)")
            continue
        norm, act = "-", "-"
        for _ in range(2):
            call = next((c for c in rec.calls if c.arg is out), None)
            if call is None:
                break
            if call.name in _NORMS and norm == "-":
                norm = _NORMS[call.name]
                if call.name == "group_norm":
                    groups = call.args[1] if len(call.args) > 1 else call.kwargs.get("num_groups")
                    norm += f"({groups})"
                out = call.out
                continue
            if call.name in _ACTS:
                act = _ACTS[call.name]
                if act == "LeakyReLU":
                    slope = call.args[1] if len(call.args) > 1 else call.kwargs.get("negative_slope", 0.01)
                    act += f"({slope:g})"
            break
        result[id(m)] = (norm, act)
    return result


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
    cfg = _cfg(cfg)
    predictor, disc = model if model is not None else build_meta(cfg)
    groups = _layer_groups(predictor, disc)
    owners = {id(m): owner for owner in predictor.memory for m in owner.modules()}
    traced = _trace_after(predictor, disc, [m for _, ms in groups for _, m in ms])
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
    cfg = _cfg(cfg)
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


# =============================================================================== sizes
_PART_LABELS = {
    "encoders": "Encoders Enc_T, Enc_S (Eq. 1)",
    "merge_t": "Merge W_1×1[T_E, T] (Alg. 1 line 7)",
    "memory": "Memory units (Eq. 5-7)",
    "merge_ts": "Merge W_1×1[T^N, S^N] (no STED)",
    "decoders": "Decoders Dec_T, Dec_S (Eq. 3)",
    "head": "Fusion W_1×1 (Eq. 4)",
}


def _parts(predictor: nn.Module, disc: nn.Module):
    """(key, label, model, module, instances) for every part, in forward order."""
    for name, child in predictor.named_children():
        n = len(child) if isinstance(child, (nn.ModuleList, nn.ModuleDict)) else 1
        label = _PART_LABELS.get(name, name)
        if name == "memory":
            label = f"Memory units: {n} × {type(child[0]).__name__} (Eq. 5-7)"
        yield name, label, "STIP", child, n
    layers = sum(isinstance(m, nn.Conv2d) for m in disc.modules())
    yield "discriminator", f"Discriminator: {layers} × DL_D, FC", "D", disc, 1


def parameter_counts(cfg: Config | str) -> pd.DataFrame:
    """Parameters per part of a preset (built on meta): encoders, merge, memory units, decoders,
    Eq. 4 head, discriminator. ``parameters`` sums to the predictor's plus the discriminator's
    total; ``share`` is the percentage of that total."""
    cfg = _cfg(cfg)
    predictor, disc = build_meta(cfg)
    rows = []
    for key, label, owner, module, n in _parts(predictor, disc):
        count = sum(p.numel() for p in module.parameters())
        rows.append({"part": label, "key": key, "model": owner, "instances": n,
                     "per instance": count // n if count % n == 0 else None, "parameters": count})
    df = pd.DataFrame(rows)
    df["share %"] = (100 * df.parameters / df.parameters.sum()).round(1)
    return df


def parameter_table(presets=("study", "ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """Parameters per part (rows) for several presets (columns), with STIP, D and total rows."""
    cols = {}
    for p in presets:
        df = parameter_counts(p)
        s = df.set_index("key").parameters
        s["STIP total"] = df[df.model == "STIP"].parameters.sum()
        s["total (STIP + D)"] = df.parameters.sum()
        cols[_cfg(p).name] = s
    return _by_part(pd.DataFrame(cols).fillna(0).astype("int64"))


def _by_part(table: pd.DataFrame) -> pd.DataFrame:
    labels = {**_PART_LABELS, "discriminator": "Discriminator (DL_D, FC)"}
    table.index = [labels.get(k, k) for k in table.index]
    table.index.name = "part"
    return table.reset_index()


def flops_per_step(cfg: Config | str) -> pd.DataFrame:
    """FLOPs of one time step of the predictor (batch 1) per part, plus the discriminator on one
    frame, counted by ``torch.utils.flop_counter`` on the meta device (convolutions and matrix
    products, 2 FLOPs per multiply-add; elementwise gates and norms are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = _cfg(cfg)
    predictor, disc = build_meta(cfg)
    m = cfg.model
    frames = torch.zeros(1, 2, m.img_channels, m.height, m.width, device="meta")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        predictor(frames, input_length=1)
        disc(frames[:, :1])
    per_module = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(predictor).__name__
    rows = []
    for key, label, owner, module, n in _parts(predictor, disc):
        if owner == "D":
            names = [type(disc).__name__]
        elif isinstance(module, (nn.ModuleList, nn.ModuleDict)):  # containers are never called:
            names = [f"{root}.{key}.{c}" for c, _ in module.named_children()]  # their children are
        else:
            names = [f"{root}.{key}"]
        rows.append({"part": label, "key": key, "model": owner,
                     "FLOPs": int(sum(per_module.get(k, 0) for k in names))})
    df = pd.DataFrame(rows)
    df["GFLOPs"] = (df.FLOPs / 1e9).round(3)
    stip = df[df.model == "STIP"].FLOPs.sum()
    df["share of STIP step %"] = [round(100 * f / stip, 1) if o == "STIP" else None
                                  for f, o in zip(df.FLOPs, df.model)]
    return df


def flops_table(presets=("study", "ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """GFLOPs of one time step per part (rows) for several presets (columns), batch 1; the
    "STIP step" row sums the predictor's parts (the discriminator runs once per frame)."""
    cols = {}
    for p in presets:
        df = flops_per_step(p)
        s = df.set_index("key").FLOPs
        s["STIP step"] = df[df.model == "STIP"].FLOPs.sum()
        cols[_cfg(p).name] = s
    return _by_part((pd.DataFrame(cols).fillna(0) / 1e9).round(3))


# =============================================================================== departures
def _fmt(v) -> str:
    return repr(v)


# (what, paper, official code, config fields, stipkit note) -- the config rows' values are read
# from the presets by departures(); rows with no field describe fixed behaviour.
_DEPARTURES = [
    ("Update gate bias",
     "U_t = σ(W_su * S_t^{k-1} + W_tu * T_{t-1}^k): no bias term (Eq. 5)",
     "σ(... + 1): a +1 'forget bias' inside the update gate's sigmoid",
     ("model.update_gate_bias",), "no bias, as the paper"),
    ("Decoder state swap",
     "Dec_T decodes T_t^N and Dec_S decodes S_t^N (Alg. 1 line 13, Eq. 3)",
     "T_t^N goes to the spatial decoder and S_t^N to the temporal one",
     ("model.swap_decoder_states",), "as the paper"),
    ("Deepest-level recall skipped",
     "every decoder layer l = 1..N adds λ·E^{-l} before it (Eq. 3), the deepest level included",
     "adds λ·E^{-l} for l = 2..N only: the deepest encoder level is never recalled",
     ("model.recall_deepest",), "recalls every level, as the paper"),
    ("No activation after the last UL",
     "every UL is followed by LeakyReLU(0.2) (Table II)",
     "the last UL of each decoder has no activation (linear into the 1x1 heads)",
     ("model.last_upsample_act",), "LeakyReLU after every UL, as the paper"),
    ("Clip padding at the first steps",
     "not stated (clips v_{t-L+1:t} with t < L reach before v_1)",
     "zero frames before v_1",
     ("model.clip_padding",), "replicates v_1"),
    ("Discriminator activation",
     "LeakyReLU(0.2) after every DL_D (Table II)",
     "ReLU after every DL_D",
     ("model.disc_activation",), "LeakyReLU(0.2), as the paper"),
    ("γ1/γ2 swapped",
     "L = L_MSE + γ1 L_GAN(P) + γ2 L_LP, γ1 = 0.01, γ2 = 0.001 (Eq. 9, Table I); "
     "Alg. 1 line 23 writes γ1 L_LP + γ2 L_GAN(P)",
     "loss = MSE + 0.01·LP + 0.001·GAN, as Alg. 1 line 23",
     ("train.gamma_gan", "train.gamma_lp"), "Eq. 9 and Table I"),
    ("Training length",
     "Train 4 -> 1 (Table I): windows of 5 frames, so scheduled sampling never acts",
     "trains over total_length frames (10 UCF Sports, 8 Human3.6M / SJTU4K) with scheduled "
     "sampling, the loss on every predicted frame",
     ("train_length",), "Table I"),
    ("Initialisation",
     "not stated",
     "PyTorch's default initialisation",
     ("model.init",), "the small CPU presets start as copy-last (STIP.init_copy_last, notebook "
                      "03); the Table I presets keep PyTorch's default"),
    ("Loss terms (CPU presets)",
     "L_MSE + γ1 L_GAN(P) + γ2 L_LP (Eq. 9)",
     "the same three terms",
     ("train.loss",), "the small CPU presets train with MSE only (GAN + LP: +0.5 dB for 30 % more "
                      "time per iteration at their budget, notebook 03); the Table I presets use Eq. 9"),
    ("D probabilities averaged over time",
     "Eq. 10 sums -log D(v̂_t) over t: one log per frame",
     "averages D's probabilities over the clip, then one BCE",
     ("train.gan_reduction",), "one BCE term per frame, as Eq. 10"),
    ("BGR frames",
     "not stated (RGB implied)",
     "frames read with OpenCV (cv2.imread): BGR channel order; its checkpoints expect BGR",
     (), "RGB (PyAV/PIL); data: channel_order='bgr' feeds what official checkpoints expect"),
    ("LayerNorm over (C, H, W)",
     "'Layer Normalization' in STGRU (Table II), shape not given",
     "nn.LayerNorm([4·hidden, H, W]): normalised over channels and space, with a learned "
     "weight and bias per element (ties the unit to one resolution)",
     (), None),
    ("SJTU4K at 2176 lines",
     "2160×3840 (Table I)",
     "img_height = 2176",
     (), None),
    ("Gates exported for unit index 1 only",
     "Fig. 5 shows R_t and U_t of STGRU (unit not stated)",
     "forward returns R_t and U_t of cell_list[1] only (the second unit), with the deepest "
     "encoder level as T_E, S_E",
     (), "Rollout.features has R and U of every unit (B, T-1, K, ...) and every encoder level; "
         "index 1 / level -1 reproduce the official export"),
    ("Unused merge / conv_last parameters",
     "-",
     "RNN.merge (1x1, 2·hidden → hidden) and every STGRUCell.conv_last are created but never "
     "used in forward; they are in the checkpoints",
     (), None),
]


def _get(cfg: Config, field: str):
    obj = cfg
    for name in field.split("."):
        obj = getattr(obj, name)
    return obj


def departures(paper_preset: str = "study") -> pd.DataFrame:
    """Where the official STIPHR code departs from the paper.

    Columns: what, paper, official code, stipkit default, config field. For the rows with a
    config field, the official and stipkit values are read from ``get_preset(paper_preset +
    "-official")`` and ``get_preset(paper_preset)``; the fixed rows read their numbers from the
    modules / presets where there are any (LayerNorm shape, SJTU4K lines, unused parameters).
    """
    ours, official = get_preset(paper_preset), get_preset(paper_preset + "-official")
    from .models.memories import build_memory

    with torch.device("meta"):
        unit = build_memory(ours.model)
    norm = getattr(unit, "norm_t", None)
    ucf = get_preset("ucfsport").model
    sj = get_preset("sjtu4k").model
    native = int(TABLE1_PAPER.loc[TABLE1_PAPER.Dataset == "SJTU4K", "Resolution"].item().split("×")[0])
    unused = (ucf.num_layers + 1) * (2 * ucf.hidden * ucf.hidden + ucf.hidden)
    rows = []
    for what, paper, off, fields, note in _DEPARTURES:
        if fields:
            off_vals = ", ".join(f"{f.split('.')[-1]} = {_fmt(_get(official, f))}" for f in fields)
            our_vals = ", ".join(f"{f.split('.')[-1]} = {_fmt(_get(ours, f))}" for f in fields)
            row = (what, paper, f"{off} ({off_vals})", f"{note} ({our_vals})", ", ".join(fields))
        else:
            if what.startswith("LayerNorm"):
                shape = tuple(norm.normalized_shape) if norm is not None else None
                affine = bool(getattr(norm, "elementwise_affine", False))
                note = (f"the same: LayerNorm({shape}) at the {paper_preset} preset, "
                        f"elementwise_affine={affine}")
            elif what.startswith("SJTU4K"):
                note = (f"the same: the sjtu4k preset has height = {sj.height}; {native}-line frames "
                        f"are padded {(sj.height - native) // 2} rows top and bottom (data.pad_to) "
                        f"and predictions cropped back (data.crop_to) for the metrics")
            elif what.startswith("Unused"):
                off = f"{off} ({unused:,} parameters at the ucfsport preset)"
                note = "not created; official.load_stiphr ignores them and lists them in model.official_unused"
            row = (what, paper, off, note, "-")
        rows.append(row)
    return pd.DataFrame(rows, columns=["what", "paper", "official code", "stipkit default", "config field"])


def config_table(cfg: Config | str) -> pd.DataFrame:
    """Every field of a preset as rows (part, field, value) -- a printable config."""
    cfg = _cfg(cfg)
    rows = [("", k, getattr(cfg, k)) for k in ("name", "input_length", "train_length",
                                               "eval_length", "dataset")]
    for part in ("model", "train"):
        obj = getattr(cfg, part)
        rows += [(part, f, getattr(obj, f)) for f in obj.__dataclass_fields__]
    return pd.DataFrame([(p, f, repr(v)) for p, f, v in rows], columns=["part", "field", "value"])


# =============================================================================== output
def output_dir(budget: Budget | str | None = None) -> Path | None:
    """Where notebooks write figures and tables: ``figures/`` at the study and paper budgets,
    ``None`` (write nothing) at ``ci``, so CI never overwrites the committed outputs."""
    b = budget if isinstance(budget, Budget) else current_budget(budget)
    return None if b.name == "ci" else FIGURES


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).replace("|", "\\|").replace("*", "\\*").replace("\n", "<br>")


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured markdown table (numeric columns right-aligned)."""
    if index:
        df = df.reset_index()
    cols = [str(c) for c in df.columns]
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
               for c in df.columns]
    lines = ["| " + " | ".join(_cell(c) for c in cols) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |"
              for row in df.itertuples(index=False, name=None)]
    return "\n".join(lines) + "\n"


def save_table(df: pd.DataFrame, stem: str, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``<out_dir>/<stem>.csv`` and ``<out_dir>/<stem>.md`` (default ``figures/``)."""
    out = Path(out_dir) if out_dir is not None else FIGURES
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    df.to_csv(csv, index=False)
    md.write_text(to_markdown(df), encoding="utf-8")
    return csv, md


_PRODUCERS = [("01_", "01_data_prep"), ("02_", "02_model_tour"), ("03_", "03 (training)"),
              ("07_", "07 (evaluation)"), ("fig5", "07 (Fig. 5)"), ("table", "02 / 08"),
              ("parameter", "08"), ("flops", "08"), ("departures", "02 / 08")]


def figure_inventory(folder: str | Path | None = None) -> pd.DataFrame:
    """The files in ``figures/`` (names relative to it), with the notebook that makes each."""
    folder = Path(folder) if folder is not None else FIGURES
    files = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    rows = [(p.name, next((who for pre, who in _PRODUCERS if p.name.startswith(pre)), "?"),
             round(p.stat().st_size / 1024, 1)) for p in files]
    return pd.DataFrame(rows, columns=["file", "made by", "kB"])
