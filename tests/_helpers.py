"""Small helpers shared by the tests."""
import functools
from dataclasses import fields, is_dataclass, replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import get_preset
from stipkit.data import MovingDigits

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts) -> Path:
    """A path under ../shared, or skip the test when the checkout has no ../shared beside it."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not available (a fresh clone has no ../shared)")
    return p


def tiny(cfg, **model_overrides):
    """A preset shrunk to a CPU-test size, keeping its patch, depth and departures."""
    m = cfg.model
    unit = m.patch * 2 ** m.num_downsample
    hidden = 4 * m.frame_channels if m.init == "copy_last" else 8  # room for the copied frame
    kw = dict(height=unit, width=2 * unit, hidden=max(8, hidden), num_layers=2, disc_hidden=8)
    kw.update(model_overrides)
    return replace(cfg, model=replace(m, **kw))

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def rollout(stack, xs):
    """Run a MemoryStack over the inputs ``xs`` (one per step) from its zero state:
    (outputs, final state, each step's maps)."""
    state, outs, maps = stack.init_state(xs[0]), [], []
    for x in xs:
        out, m = stack(x, state)
        outs.append(out)
        maps.append(m)
    return outs, state, maps


def assert_gradients(module):
    """Every parameter of ``module`` got a gradient, and a non-zero one (names the first that did not)."""
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def randomise(module, std: float = 0.3):
    """Every parameter of ``module`` drawn from N(0, std^2) (so hand computations exercise all)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, std)


def assert_close(got, want):
    """The largest absolute difference is below 1e-5."""
    assert (got - want).abs().max() < 1e-5


def conv_same(x, w, b=None):
    """A stride-1 convolution with 'same' padding, from the weights alone (hand computations)."""
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2)


def authors_frames(case):
    """A recorded authors' case's frames, from their code's (B, T, H, W, C) to (B, T, C, H, W)."""
    return case["frames"].permute(0, 1, 4, 2, 3)


def run_stack(stack, frames, state):
    """A stack over ``frames`` (B, T, C, H, W) from ``state``, without gradients: per step the top
    output and each lower unit's ``h``, stacked, and the state after the last step."""
    top, lower = [], []
    with torch.no_grad():
        for t in range(frames.shape[1]):
            out, _ = stack(frames[:, t], state)
            top.append(out)
            lower.append(torch.stack([s["h"] for s in state.units[:-1]]))
    return torch.stack(top), torch.stack(lower), state


def differing_fields(a, b, prefix=""):
    """Dotted names of the leaf fields in which configs ``a`` and ``b`` differ
    ("model.memory.update_bias")."""
    if prefix == "":
        out = {f for f in ("input_length", "train_length", "eval_length", "dataset")
               if getattr(a, f) != getattr(b, f)}
        return out.union(*(differing_fields(getattr(a, p), getattr(b, p), f"{p}.")
                           for p in ("model", "train")))
    out = set()
    for f in fields(a):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if is_dataclass(va) and type(va) is type(vb):
            out |= differing_fields(va, vb, f"{prefix}{f.name}.")
        elif va != vb:
            out.add(f"{prefix}{f.name}")
    return out


def field_value(cfg, dotted: str):
    """The value of a config's dotted field ("model.memory.tau")."""
    return functools.reduce(getattr, dotted.split("."), cfg)


def assert_departure_rows(df, ours, official):
    """A departures table (``stipkit.reports.departures``) lists every config field in which
    ``official`` departs from ``ours``, once, and only those, each row showing both values."""
    with_field = df[df["config field"] != "-"]
    listed = [f for cell in with_field["config field"] for f in cell.split(", ")]
    assert len(listed) == len(set(listed))
    assert set(listed) == differing_fields(ours, official)
    for _, row in with_field.iterrows():
        for f in row["config field"].split(", "):
            name = f.split(".")[-1]
            assert f"{name} = {field_value(official, f)!r}" in row["official code"]
            assert f"{name} = {field_value(ours, f)!r}" in row["stipkit default"]


# --------------------------------------------------------------------------- small training runs
def small_config(batch_size=2, loss="mse+gan+lp", **train):
    """The ci preset with Alg. 1's full loss and the official trainer's schedule (step decay, no
    warm-up, no weight average), training 2 -> 3 so that scheduled sampling acts."""
    cfg = get_preset("ci")
    kw = dict(batch_size=batch_size, loss=loss, sampling_stop_iter=50, sampling_rate=0.1,
              decay_interval=2, lr_decay=0.5, lr_schedule="exponential", warmup=0, ema=0.0)
    kw.update(train)
    return replace(cfg, train=replace(cfg.train, **kw), train_length=5, input_length=2)


def family_config(family="stip", batch_size=2):
    """``small_config`` of a model family: STIP, STRPM, BeyondMSE, or STIP's plain encoder/decoder
    around TrajGRU or MotionRNN (Table VII's model)."""
    cfg = small_config(batch_size=batch_size)
    if family == "strpm":
        strpm = get_preset("strpm-ci")
        return replace(cfg, name=strpm.name, model=strpm.model)
    if family == "beyondmse":
        from stipkit.models.beyondmse import beyondmse_config
        return beyondmse_config(cfg)
    if family in ("trajgru", "motionrnn"):
        from stipkit.reports.ablation_tables import table7_config
        return table7_config(cfg, family)
    assert family == "stip", family
    return cfg


def small_dataset():
    """16 Moving Digits sequences of 5 frames at 32x32 (what ``small_config`` trains on)."""
    return MovingDigits(num_sequences=16, total_length=5, resolution=(32, 32), seed=0)
