"""What a model costs, counted on PyTorch's ``meta`` device (no memory, no arithmetic).

* :func:`build_meta` -- ``(predictor, discriminator)`` of a preset on ``meta``;
* :func:`parameter_counts` / :func:`parameter_table` -- parameters per part;
* :func:`flops_per_step` / :func:`flops_table` -- FLOPs of one time step per part
  (``torch.utils.flop_counter``);
* :func:`memory_table` -- Table VII's columns: one memory unit's parameters and MACs;
  :func:`model_table` -- the same per whole model of a preset, with measured inference time;
* :func:`trace_norm_act` -- which normalisation and nonlinearity follow each layer in one time
  step (what :func:`stipkit.reports.tables.table2` reads Table II's last two columns from).

A predictor's parts are its child modules, in forward order, labelled by its class's ``PARTS``
(child name -> description) and named by its ``label`` ("STIP"); the discriminator is one
more part, model "D". Even the 4K preset's tables cost a fraction of a second.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..config import Config, get_preset

__all__ = ["build_meta", "parameter_counts", "parameter_table", "flops_per_step", "flops_table",
           "trace_norm_act", "memory_table", "model_table", "model_cost"]

DISC = "D"  # the discriminator's "model" in the tables


def as_config(cfg: Config | str) -> Config:
    """A :class:`~stipkit.config.Config`, or the preset it names."""
    return get_preset(cfg) if isinstance(cfg, str) else cfg


def build_meta(cfg: Config | str):
    """``(predictor, discriminator)`` of a preset built on the ``meta`` device (no memory)."""
    from ..models import build_model

    with torch.device("meta"):
        return build_model(as_config(cfg))


# =============================================================================== parts
_DISC_ROW = "Discriminator (DL_D, FC)"


def _part_labels(predictor: nn.Module) -> dict[str, str]:
    """The predictor class's ``PARTS`` (child name -> label); a class without them gets its
    child modules' names as labels."""
    labels = dict(getattr(type(predictor), "PARTS", {}))
    for name, child in predictor.named_children():  # a stack of units: what its units cite
        if isinstance(child, nn.ModuleList) and name in labels:
            cites = [c for c in dict.fromkeys(getattr(type(u), "CITE", "") for u in child) if c]
            labels[name] += f" ({', '.join(cites)})" if cites else ""
    return labels


def _model_label(predictor: nn.Module) -> str:
    return getattr(predictor, "label", type(predictor).__name__)


def model_parts(predictor: nn.Module, disc: nn.Module):
    """(key, label, model, module, instances) for every part, in forward order. A stack of
    units (an ``nn.ModuleList``: STIP's memory) names its units and what they cite (``Memory.CITE``): "Memory units: 4 × STGRU
    (Eq. 5-7)"."""
    labels, model = _part_labels(predictor), _model_label(predictor)
    for name, child in predictor.named_children():
        n = len(child) if isinstance(child, (nn.ModuleList, nn.ModuleDict)) else 1
        label = labels.get(name, name)
        if isinstance(child, nn.ModuleList):
            kinds = dict.fromkeys(type(unit).__name__ for unit in child)
            units = (f"{n} × {next(iter(kinds))}" if len(kinds) == 1 else
                     " + ".join(f"{sum(type(u).__name__ == k for u in child)} × {k}" for k in kinds))
            head, sep, rest = label.partition(" (")
            label = f"{head}: {units}{sep}{rest}"
        yield name, label, model, child, n
    layers = sum(isinstance(m, nn.Conv2d) for m in disc.modules())
    yield "discriminator", f"Discriminator: {layers} × DL_D, FC", DISC, disc, 1


def _by_part(table: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """Rows keyed by part key -> a ``part`` column of their labels (``labels``: key -> label)."""
    labels = {**labels, "discriminator": _DISC_ROW}
    table.index = [labels.get(k, k) for k in table.index]
    table.index.name = "part"
    return table.reset_index()


def _columns(cols: dict[str, pd.Series], totals: int) -> pd.DataFrame:
    """Presets side by side, rows in forward order: a part only some presets have (STIP's motion
    gate) keeps its place, and each series' last ``totals`` rows (its sums) stay last; 0 where a
    preset lacks a part."""
    widest_first = sorted(cols.values(), key=len, reverse=True)
    parts = list(dict.fromkeys(k for s in widest_first for k in s.index[:len(s) - totals]))
    sums = list(dict.fromkeys(k for s in cols.values() for k in s.index[len(s) - totals:]))
    return pd.DataFrame(cols).reindex(parts + sums).fillna(0)


def _one_name(names: list[str]) -> str:
    """The predictors' label in a several-preset table ("STIP"), "predictor" if they differ."""
    return names[0] if len(set(names)) == 1 else "predictor"


# =============================================================================== parameters
def _parameter_counts(cfg: Config | str) -> tuple[pd.DataFrame, dict[str, str]]:
    predictor, disc = build_meta(cfg)
    rows = []
    for key, label, owner, module, n in model_parts(predictor, disc):
        count = sum(p.numel() for p in module.parameters())
        rows.append({"part": label, "key": key, "model": owner, "instances": n,
                     "per instance": count // n if count % n == 0 else None, "parameters": count})
    df = pd.DataFrame(rows)
    df["share %"] = (100 * df.parameters / df.parameters.sum()).round(1)
    return df, _part_labels(predictor)


def parameter_counts(cfg: Config | str) -> pd.DataFrame:
    """Parameters per part of a preset (built on meta): encoders, merge, memory units, decoders,
    Eq. 4 head, discriminator. ``parameters`` sums to the predictor's plus the discriminator's
    total; ``share`` is the percentage of that total."""
    return _parameter_counts(cfg)[0]


def parameter_table(presets=("study", "ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """Parameters per part (rows) for several presets (columns), with the predictor's total
    ("STIP total"), the discriminator's and the "total (STIP + D)" rows."""
    counts = {as_config(p).name: _parameter_counts(p) for p in presets}
    name = _one_name([df.model.iloc[0] for df, _ in counts.values()])
    cols, labels = {}, {}
    for preset, (df, parts) in counts.items():
        s = df.set_index("key").parameters
        s[f"{name} total"] = df[df.model != DISC].parameters.sum()
        s[f"total ({name} + {DISC})"] = df.parameters.sum()
        cols[preset] = s
        labels.update(parts)
    return _by_part(_columns(cols, totals=2).astype("int64"), labels)


# =============================================================================== FLOPs
def _flops_per_step(cfg: Config | str) -> tuple[pd.DataFrame, dict[str, str]]:
    from torch.utils.flop_counter import FlopCounterMode

    cfg = as_config(cfg)
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
    for key, label, owner, module, n in model_parts(predictor, disc):
        if owner == DISC:
            names = [type(disc).__name__]
        elif isinstance(module, (nn.ModuleList, nn.ModuleDict)):  # containers are never called:
            names = [f"{root}.{key}.{c}" for c, _ in module.named_children()]  # their children are
        else:
            names = [f"{root}.{key}"]
        rows.append({"part": label, "key": key, "model": owner,
                     "FLOPs": int(sum(per_module.get(k, 0) for k in names))})
    df = pd.DataFrame(rows)
    df["GFLOPs"] = (df.FLOPs / 1e9).round(3)
    model = _model_label(predictor)
    step = df[df.model != DISC].FLOPs.sum()
    df[f"share of {model} step %"] = [round(100 * f / step, 1) if o != DISC else None
                                      for f, o in zip(df.FLOPs, df.model)]
    return df, _part_labels(predictor)


def flops_per_step(cfg: Config | str) -> pd.DataFrame:
    """FLOPs of one time step of the predictor (batch 1) per part, plus the discriminator on one
    frame, counted by ``torch.utils.flop_counter`` on the meta device (convolutions and matrix
    products, 2 FLOPs per multiply-add; elementwise gates and norms are not counted)."""
    return _flops_per_step(cfg)[0]


def flops_table(presets=("study", "ucfsport", "human36m", "sjtu4k")) -> pd.DataFrame:
    """GFLOPs of one time step per part (rows) for several presets (columns), batch 1; the
    "STIP step" row sums the predictor's parts (the discriminator runs once per frame)."""
    counts = {as_config(p).name: _flops_per_step(p) for p in presets}
    name = _one_name([df.model.iloc[0] for df, _ in counts.values()])
    cols, labels = {}, {}
    for preset, (df, parts) in counts.items():
        s = df.set_index("key").FLOPs
        s[f"{name} step"] = df[df.model != DISC].FLOPs.sum()
        cols[preset] = s
        labels.update(parts)
    return _by_part((_columns(cols, totals=1) / 1e9).round(3), labels)


# =============================================================================== Table VII
M, G = 2 ** 20, 2 ** 30  # the paper's units: ConvGRU's 2,457,600 weights are "2.34M"
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.BatchNorm3d, nn.InstanceNorm2d)


def _unit_cfg(name: str, hidden: int = 128, filter_size: int = 5, size: int = 16):
    """A one-unit model config at Table VII's setting (hidden 128, kernel 5, 16x16 states)."""
    from ..config import ModelConfig
    from ..config.memories import memory_config
    return ModelConfig(height=4 * size, width=4 * size, patch=1, num_downsample=2, hidden=hidden,
                       filter_size=filter_size, num_layers=1, memory=memory_config(name))


def _unit_cost(name: str, **setting) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from ..models.memories import MEMORIES, MemoryStack
    cfg = _unit_cfg(name, **setting)
    torch.manual_seed(0)
    stack = MemoryStack(MEMORIES[name].stack(cfg)[:1])
    unit = stack[0]
    norm = sum(p.numel() for m in unit.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters())
    total = sum(p.numel() for p in unit.parameters())
    x = torch.randn(1, cfg.hidden, *cfg.latent_size)
    with torch.no_grad():
        state = stack.init_state(x)
        for _ in range(max(unit.window, 1)):  # fill the window: the last step is a steady one
            stack(x, state)
        counter = FlopCounterMode(display=False)
        with counter:
            stack(x, state)
    return dict(params=total - norm, norm_params=norm, macs=counter.get_total_flops() / 2)


def __getattr__(name: str):
    """``WHY_DIFFERENT`` (memory -> why its count differs from Table VII's) and
    ``AUTHORS_PARAMS_M`` (memory -> (one unit of its authors' code at Table VII's setting,
    parameters without normalisation layers' in M = 2^20, where counted)): read off each
    registered memory's class (``Memory.WHY_DIFFERENT``, ``Memory.AUTHORS_PARAMS_M``)."""
    if name in ("WHY_DIFFERENT", "AUTHORS_PARAMS_M"):
        from ..models.memories import MEMORIES
        return {memory: getattr(cls, name) for memory, cls in MEMORIES.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def memory_table(names=None, **setting) -> pd.DataFrame:
    """Table VII's complexity columns: one unit of each memory at hidden 128, kernel 5, 16x16
    states, one sample, one (steady-state) time step.

    ``params_M``: the unit's weights and biases in M = 2^20, without normalisation layers' affine
    parameters (listed apart in ``norm_params_M``: a LayerNorm over (C, H, W), as in the official
    STGRU, has two per position; Table VII's STGRU figure has none). ``flops_G``:
    multiply-accumulates in G = 2^30, counted by ``torch.utils.flop_counter.FlopCounterMode``
    (whose FLOPs are 2 per multiply-accumulate; convolutions and matrix products only). Beside:
    the paper's figures (NaN where Table VII has no row) and their ratios, the authors' code's
    count (``authors_params_M``) and its ratio, and ``why_different``: each memory's own
    ``Memory.AUTHORS_PARAMS_M`` and ``Memory.WHY_DIFFERENT``.
    """
    from ..models.memories import MEMORIES
    from .paper import PAPER_ABLATIONS
    p = PAPER_ABLATIONS[PAPER_ABLATIONS.table == "VII"].pivot(index="variant", columns="metric",
                                                              values="value")
    rows = []
    for name in (names or list(MEMORIES)):
        c = _unit_cost(name, **setting)
        rows.append(dict(memory=name, params_M=c["params"] / M, flops_G=c["macs"] / G,
                         norm_params_M=c["norm_params"] / M,
                         paper_params_M=p.params_M.get(name, float("nan")),
                         paper_flops_G=p.flops_G.get(name, float("nan"))))
    df = pd.DataFrame(rows)
    df["params_ratio"] = df.params_M / df.paper_params_M
    df["flops_ratio"] = df.flops_G / df.paper_flops_G
    df["authors_params_M"] = [MEMORIES[n].AUTHORS_PARAMS_M[0] for n in df.memory]
    df["authors_ratio"] = df.params_M / df.authors_params_M
    df["why_different"] = [MEMORIES[n].WHY_DIFFERENT for n in df.memory]
    return df


def model_table(preset: Config | str = "ablation", names=None, samples: int = 10,
                repeats: int = 3) -> pd.DataFrame:
    """Per whole model (STRPM Table 3's style): Table VII's variant of each memory (plain
    encoder/decoder) at ``preset``: parameters (M = 2^20), MACs of one time step (G = 2^30) and
    the measured time to predict ``samples`` test windows (input_length -> eval_length, batch
    ``samples``, best of ``repeats``) on this machine's CPU."""
    from .ablation_tables import table7_config
    from ..models.memories import MEMORIES
    base = as_config(preset)
    return pd.DataFrame([dict(memory=name, **model_cost(table7_config(base, name), samples, repeats))
                         for name in (names or list(MEMORIES))])


def model_cost(cfg: Config, samples: int = 10, repeats: int = 3) -> dict:
    """One model's row of :func:`model_table`: ``model``, ``params_M`` (normalisation affine
    parameters included), ``norm_params_M`` (those alone), ``flops_G`` (MACs of one step) and
    ``infer_s``, the best of ``repeats`` timings of predicting ``samples`` windows
    (``samples=0``: not timed)."""
    import time

    from ..models import build_predictor
    fl = _flops_per_step(cfg)[0]
    meta = build_meta(cfg)[0]
    params = sum(p.numel() for p in meta.parameters())
    norm = sum(p.numel() for m in meta.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters())
    m = cfg.model
    best = float("nan")
    if samples:
        torch.manual_seed(0)
        model = build_predictor(cfg.model, cfg.input_length).eval()
        x = torch.rand(samples, cfg.input_length, m.img_channels, m.height, m.width)
        best = float("inf")
        with torch.inference_mode():
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x, total_length=cfg.eval_length, future_only=True)
                best = min(best, time.perf_counter() - t0)
    return dict(model=f"{cfg.name} + {m.memory.name}" if m.name == "stip" else cfg.name,
                params_M=params / M, norm_params_M=norm / M, flops_G=fl[fl.model != DISC].FLOPs.sum() / 2 / G, infer_s=best, samples=samples)


# =============================================================================== layer tracing
_NORMS = {"layer_norm": "Layer Normalization", "group_norm": "Group Normalization",
          "batch_norm": "Batch Normalization", "instance_norm": "Instance Normalization"}
_ACTS = {"leaky_relu": "LeakyReLU", "leaky_relu_": "LeakyReLU", "relu": "ReLU()", "relu_": "ReLU()",
         "sigmoid": "Sigmoid()", "sigmoid_": "Sigmoid()", "tanh": "Tanh()", "tanh_": "Tanh()",
         "gelu": "GELU()", "silu": "SiLU()", "elu": "ELU()"}


class FirstUse(TorchFunctionMode):
    """The first torch function each tensor is given to (as its first tensor argument), with that
    call's name, arguments and output.

    Why a function mode and not only module hooks: the models apply most activations as
    functions (``F.leaky_relu_`` in the encoders and decoders, ``torch.sigmoid`` in the gates and
    the discriminator's head), which no forward hook sees; ``FlopCounterMode`` counts operations
    per module but does not say which tensor each one consumes. Norm and activation *modules*
    (``nn.GroupNorm``, ``nn.LeakyReLU``) call the same functions, so this one mode covers both.
    Each recorded call keeps its tensors alive, so an ``id`` is never reused during a trace.
    """

    def __init__(self):
        super().__init__()
        self.calls: dict[int, tuple[str, tuple, dict, object]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is not None:
            self.calls.setdefault(id(first), (getattr(func, "__name__", ""), args, kwargs, out))
        return out

    def after(self, out) -> tuple[str, tuple, dict, object] | None:
        """The first call ``out`` went into, None if none."""
        return self.calls.get(id(out)) if isinstance(out, torch.Tensor) else None


def norm_act(uses: FirstUse, out) -> tuple[str, str]:
    """Follow a layer's output: a normalisation first (optional), then an activation."""
    norm, act = "-", "-"
    for _ in range(2):
        call = uses.after(out)
        if call is None:
            break
        name, args, kwargs, result = call
        if name in _NORMS and norm == "-":
            norm = _NORMS[name]
            if name == "group_norm":
                norm += f"({args[1] if len(args) > 1 else kwargs.get('num_groups')})"
            out = result
            continue
        if name in _ACTS:
            act = _ACTS[name]
            if act == "LeakyReLU":
                slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
                act += f"({slope:g})"
        break
    return norm, act


def trace_norm_act(predictor: nn.Module, disc: nn.Module, modules: list[nn.Module]) -> dict:
    """``id(module) -> (normalisation, nonlinearity)`` applied to each module's output in one
    time step ("-" for none, "(not run)" for a module the step does not call).

    Runs the predictor for one step and the discriminator on one frame (on whatever device the
    models are: on ``meta`` nothing is computed); forward hooks catch each module's (first)
    output, :class:`FirstUse` the functions that consume it.
    """
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out: outputs.setdefault(id(mod), out))
             for m in modules]
    cfg = predictor.cfg
    p = next(predictor.parameters())
    frames = torch.zeros(1, 2, cfg.img_channels, cfg.height, cfg.width, device=p.device, dtype=p.dtype)
    uses = FirstUse()
    try:
        with torch.no_grad(), uses:
            predictor(frames, input_length=1)
            disc(frames[:, :1])
    finally:
        for h in hooks:
            h.remove()
    return {id(m): ("(not run)", "(not run)") if outputs.get(id(m)) is None
            else norm_act(uses, outputs[id(m)]) for m in modules}
