"""Small helpers shared by the tests."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

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

