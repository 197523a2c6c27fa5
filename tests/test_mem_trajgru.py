"""TrajGRU (Shi et al., NeurIPS 2017, Eq. 3-4): shapes, gradients, state over time, one step by
hand, the warp, the HKO-7 code's biases, flow initialisation and warp sign, its (absent) wiring,
the parameter count at Table VII's setting, and STIP end to end.

The authors' code (sxjscience/HKO-7 ``nowcasting/operators/traj_rnn.py``) is MXNet, which does
not run under PyTorch: there is no golden-output test. Instead the tests check what the code
has layer by layer: a bias on every convolution (and that each one is used), the flow network's
zero-initialised output layer, and its warp sign (``warp="code"``)."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import get_preset
from stipkit.config.memories import memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, MemoryStack
from stipkit.models.memories.base import Context
from stipkit.models.memories.trajgru import TrajGRU
from _helpers import assert_gradients

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_close(a, b, atol=1e-5, rtol=0):
    """(torch.testing.assert_close's first call costs seconds of imports: a plain check.)"""
    assert a.shape == b.shape and torch.allclose(a, b, atol=atol, rtol=rtol), (a - b).abs().max()


B, C, SIZE, L = 2, 4, (6, 7), 3


def unit(seed=0, random_flows=True, **kw):
    """A small unit; random_flows: gamma's output layer drawn at random (not the zeros it starts
    with), so that every parameter acts from the first step."""
    torch.manual_seed(seed)
    cell = TrajGRU(C, filter_size=3, links=L, flow_kernel=3, **kw)
    if random_flows:
        with torch.no_grad():
            cell.flow_out.weight.normal_(std=0.1)
            cell.flow_out.bias.normal_(std=0.5)
    return cell


def test_shapes_of_output_state_and_maps():
    cell = unit()
    x = torch.randn(B, C, *SIZE)
    out, state, maps = cell(x, cell.init_state(x), Context())
    assert out.shape == (B, C, *SIZE) and set(state) == {"h"} and state["h"].shape == out.shape
    assert set(maps) == set(TrajGRU.MAPS)
    assert maps["z_t"].shape == maps["r_t"].shape == (B, C, *SIZE)
    assert maps["flow"].shape == (B, 1, *SIZE) and (maps["flow"] >= 0).all()
    assert TrajGRU.TEMPORAL == "h" and torch.equal(out, state["h"])


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack([unit(0), unit(1)])
    x = torch.randn(B, C, *SIZE)
    state = stack.init_state(x)
    loss = 0
    for _ in range(3):
        out, _ = stack(x, state)
        loss = loss + out.square().mean()
    loss.backward()
    assert_gradients(stack)


def test_the_state_is_carried_over_time():
    cell = unit()
    x = torch.randn(B, C, *SIZE)
    h1 = torch.randn(B, C, *SIZE)
    out_a, _, _ = cell(x, {"h": h1}, Context())
    out_b, _, _ = cell(x, {"h": h1 + 0.5}, Context())
    out_0, _, _ = cell(x, cell.init_state(x), Context())
    assert not torch.allclose(out_a, out_b) and not torch.allclose(out_a, out_0)
    # and in a stack: step 2 reads step 1's state
    stack = MemoryStack([unit()])
    state = stack.init_state(x)
    first, _ = stack(x, state)
    second, _ = stack(x, state)
    assert torch.equal(state.units[0]["h"], second) and not torch.allclose(first, second)


def test_one_step_follows_equations_3_and_4_with_zero_flows():
    """gamma's last layer zeroed: every link is the identity warp, so sum_l W^l * warp_l(H) is
    the 1x1 kernels summed over the links."""
    cell = unit()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(std=0.5)
        cell.flow_out.weight.zero_()
        cell.flow_out.bias.zero_()
    x, h = torch.randn(B, C, *SIZE), torch.randn(B, C, *SIZE)
    out, state, maps = cell(x, {"h": h}, Context())
    wx = F.conv2d(x, cell.conv_x.weight, cell.conv_x.bias, padding=1).split(C, 1)
    w_links = cell.conv_h.weight.reshape(3 * C, L, C).sum(1)[..., None, None]  # sum_l W^l
    wh = F.conv2d(h, w_links, cell.conv_h.bias).split(C, 1)
    z = torch.sigmoid(wx[0] + wh[0])
    r = torch.sigmoid(wx[1] + wh[1])
    cand = F.leaky_relu(wx[2] + r * wh[2], 0.2)
    assert_close(maps["z_t"], z, atol=1e-5, rtol=0)
    assert_close(maps["r_t"], r, atol=1e-5, rtol=0)
    assert_close(out, (1 - z) * cand + z * h, atol=1e-5, rtol=0)
    assert torch.equal(maps["flow"], torch.zeros(B, 1, *SIZE))


def test_one_step_with_known_integer_flows_reads_the_shifted_states():
    """gamma's last layer set to constant flows (U, V) per link: warp_l(H)[i, j] = H[i+V, j+U]
    (zeros outside), and the gates read those shifted states through their own 1x1 kernel."""
    flows = [(1, 0), (0, -2), (0, 0)]  # (U_l, V_l)
    cell = unit()
    with torch.no_grad():
        cell.flow_out.weight.zero_()
        cell.flow_out.bias.copy_(torch.tensor(flows, dtype=torch.float).flatten())
    x, h = torch.randn(B, C, *SIZE), torch.randn(B, C, *SIZE)
    out, _, maps = cell(x, {"h": h}, Context())

    def shift(t, u, v):  # t[..., i + v, j + u], zero outside
        out = torch.zeros_like(t)
        hh, ww = t.shape[-2:]
        out[..., max(0, -v):hh - max(0, v), max(0, -u):ww - max(0, u)] = \
            t[..., max(0, v):hh + min(0, v), max(0, u):ww + min(0, u)]
        return out

    warped = torch.cat([shift(h, u, v) for u, v in flows], 1)
    assert_close(TrajGRU.warp(h, cell.flow_out.bias.view(1, -1, 1, 1).expand(
        B, -1, *SIZE)), warped, atol=1e-6, rtol=0)
    wx = F.conv2d(x, cell.conv_x.weight, cell.conv_x.bias, padding=1).split(C, 1)
    wh = F.conv2d(warped, cell.conv_h.weight, cell.conv_h.bias).split(C, 1)
    z, r = torch.sigmoid(wx[0] + wh[0]), torch.sigmoid(wx[1] + wh[1])
    cand = F.leaky_relu(wx[2] + r * wh[2], 0.2)
    assert_close(out, (1 - z) * cand + z * h, atol=1e-5, rtol=0)
    assert_close(maps["flow"], torch.full((B, 1, *SIZE), (1 + 2 + 0) / 3))


def test_warp_shifts_by_integer_flows_and_interpolates_half_pixels():
    h = torch.arange(2 * 3 * 4, dtype=torch.float).view(1, 2, 3, 4)
    flow = torch.zeros(1, 4, 3, 4)
    flow[:, 0] = 1.0   # link 1: U = +1, reads the right neighbour
    flow[:, 3] = 0.5   # link 2: V = +0.5, halfway to the row below
    out = TrajGRU.warp(h, flow)
    right = torch.cat([h[..., 1:], torch.zeros(1, 2, 3, 1)], -1)
    assert_close(out[:, :2], right, atol=1e-5, rtol=0)
    half = (h[..., :2, :] + h[..., 1:, :]) / 2  # last row: halfway to the zero outside
    assert_close(out[:, 2:, :2], half)
    assert_close(out[:, 2:, 2], h[..., 2, :] / 2)


def test_wiring_needs_no_shared_state_window_or_lower_layers():
    cell = unit()
    x = torch.randn(B, C, *SIZE)
    assert cell.window == 0 and cell.below == 0 and cell.init_shared(x) == {}
    stack = MemoryStack([unit(0), unit(1)])
    state = stack.init_state(x)
    stack(x, state)
    assert state.shared == {} and state.past == [[], []]


def test_trajgru_plugs_into_stip_end_to_end():
    assert MEMORIES["trajgru"] is TrajGRU
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("trajgru", links=3),
                                     init="default"))
    predictor, _ = build_model(cfg)
    assert all(isinstance(u, TrajGRU) and u.links == 3 for u in predictor.memory)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    for name in TrajGRU.MAPS:
        assert out.features[name].shape[:3] == (2, cfg.eval_length - 1, cfg.model.num_layers)
    out.predictions.mean().backward()
    assert all(p.grad is not None for p in predictor.memory.parameters())


# ------------------------------------------------------------------ the HKO-7 code's cell
def test_every_convolution_has_a_bias_and_each_one_is_used():
    """HKO-7's traj_rnn.py gives i2h, h2h (the 1x1 links), i2f_conv1, h2f_conv1 and f_out a
    bias each; moving any one of them moves the output."""
    cell = unit()
    x, h = torch.randn(B, C, *SIZE), torch.randn(B, C, *SIZE)
    base, _, _ = cell(x, {"h": h}, Context())
    for name in ("conv_x", "conv_h", "flow_x", "flow_h", "flow_out"):
        bias = getattr(cell, name).bias
        assert bias is not None, name
        with torch.no_grad():
            bias.add_(0.5)
        moved, _, _ = cell(x, {"h": h}, Context())
        with torch.no_grad():
            bias.sub_(0.5)
        assert not torch.allclose(base, moved), name
    assert TrajGRU.REVISION == 2 and "biases" in TrajGRU.REVISION_NOTE


def test_the_flows_start_at_zero_as_hko7_init_grid():
    cell = unit(random_flows=False)
    assert not cell.flow_out.weight.any() and not cell.flow_out.bias.any()
    x, h = torch.randn(B, C, *SIZE), torch.randn(B, C, *SIZE)
    _, _, maps = cell(x, {"h": h}, Context())
    assert torch.equal(maps["flow"], torch.zeros(B, 1, *SIZE))  # every link the identity warp
    assert unit(random_flows=False, zero_flows=False).flow_out.weight.abs().sum() > 0


def test_the_code_warp_sign_samples_against_the_flow():
    """warp='code' reads H[i - V, j - U] (HKO-7's GridGenerator of -flow): the paper's cell with
    gamma's output layer negated."""
    code, paper = unit(warp="code"), unit(warp="paper")
    with torch.no_grad():
        paper.flow_out.weight.neg_()
        paper.flow_out.bias.neg_()
    x, h = torch.randn(B, C, *SIZE), torch.randn(B, C, *SIZE)
    a, _, maps_a = code(x, {"h": h}, Context())
    b, _, maps_b = paper(x, {"h": h}, Context())
    assert_close(a, b, atol=1e-6)
    assert_close(maps_a["flow"], maps_b["flow"], atol=1e-6)
    with pytest.raises(ValueError, match="warp='sideways'"):
        TrajGRU(C, warp="sideways")


def test_config_fields_are_checked_named_and_passed_on():
    from stipkit.config import ConfigError
    for field, bad in (("flow_kernel", 4), ("flow_kernel", 0), ("warp", "sideways"),
                       ("zero_flows", "yes")):
        with pytest.raises(ConfigError, match=rf"TrajGRUConfig\.{field}={bad!r} is invalid"):
            memory_config("trajgru", **{field: bad})
    m = replace(get_preset("ci").model, hidden=C, filter_size=3, init="default",
                memory=memory_config("trajgru", links=2, flow_kernel=3, warp="code",
                                     zero_flows=False))
    cell = TrajGRU.from_config(m)
    assert cell.links == 2 and cell.flow_x.kernel_size == (3, 3) and cell.sign == -1.0
    assert cell.flow_out.weight.abs().sum() > 0


def test_parameter_count_at_table_vii_setting_is_the_hko7_codes():
    """Hidden 128, kernel 5, L = 9, layer by layer as HKO-7's traj_rnn.py: i2h 128 -> 384 (5x5),
    h2h 9 x 128 -> 384 (1x1), i2f_conv1 and h2f_conv1 128 -> 32 (5x5), f_out 32 -> 18 (5x5),
    each with a bias. Table VII: 1.68M (1.07x)."""
    with torch.device("meta"):
        cell = TrajGRU(128, filter_size=5, links=9)
    want = ((128 * 384 * 25 + 384) + (9 * 128 * 384 + 384) + 2 * (128 * 32 * 25 + 32)
            + (32 * 18 * 25 + 18))
    assert sum(p.numel() for p in cell.parameters()) == want == 1_891_218
