"""Reversible predictive module (CrevNet, ICLR 2020, Sec. 3.2): shapes, gradients, state over
time, one step by hand, the invertible coupling, the zigzag memory M, and the memory plugged
into STIP."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import ConfigError, get_preset, memory_config
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, Context, MemoryStack, ReversiblePM
from _helpers import assert_gradients, rollout

H, SIZE, K = 6, (5, 6), 3  # hidden (halves of 3), map size, kernel: tiny
C = H // 2


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _unit():
    return ReversiblePM(H, filter_size=K)


def _randomise(unit):
    with torch.no_grad():
        for p in unit.parameters():
            p.normal_(0, 0.3)


def test_registered_with_its_config_section():
    assert MEMORIES["reversible"] is ReversiblePM
    m = replace(get_preset("ci").model, hidden=7, memory=memory_config("reversible"),
                init="default")
    with pytest.raises(ConfigError, match=r"ModelConfig\.hidden=7"):
        ReversiblePM.from_config(m)


def test_shapes_of_output_state_and_maps():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    ctx = Context(shared=unit.init_shared(x))
    assert ctx.shared["M"].shape == (2, C, *SIZE)
    out, state, maps = unit(x, unit.init_state(x), ctx)
    assert out.shape == x.shape and set(state) == {"T"} and ReversiblePM.TEMPORAL == "T"
    assert state["T"].shape == x.shape and ctx.shared["M"].shape == (2, C, *SIZE)
    assert set(maps) == set(ReversiblePM.MAPS)
    assert all(v.shape == (2, C, *SIZE) for v in maps.values())
    assert torch.equal(out[:, C:], x[:, :C])  # x_1 passes through, to the second half


def test_one_step_follows_the_equations():
    unit = _unit()
    _randomise(unit)
    x, h, c, m = torch.randn(2, H, *SIZE), *(torch.randn(2, C, *SIZE) for _ in range(3))
    ctx = Context(shared={"M": m})
    out, state, maps = unit(x, {"T": torch.cat([h, c], 1)}, ctx)
    conv = lambda inp, layer: F.conv2d(inp, layer.weight, layer.bias,  # noqa: E731
                                       padding=layer.padding)
    x1, x2 = x[:, :C], x[:, C:]
    i, f, g = conv(torch.cat([x1, h, c], 1), unit.conv_c).split(C, 1)
    i, f = torch.sigmoid(i), torch.sigmoid(f)
    c_t = f * c + i * torch.tanh(g)
    i2, f2, g2 = conv(torch.cat([x1, m, c_t], 1), unit.conv_m).split(C, 1)
    i2, f2 = torch.sigmoid(i2), torch.sigmoid(f2)
    m_t = f2 * m + i2 * torch.tanh(g2)
    o = torch.sigmoid(conv(torch.cat([x1, h, c_t, m_t], 1), unit.conv_o))
    h_t = o * torch.tanh(conv(torch.cat([c_t, m_t], 1), unit.conv_cm))
    w1, n1, _, w2, n2, _, w3, _ = unit.att
    gn = lambda inp, n: F.group_norm(inp, 1, n.weight, n.bias, n.eps)  # noqa: E731
    a = torch.sigmoid(conv(F.relu(gn(conv(F.relu(gn(conv(h_t, w1), n1)), w2), n2)), w3))
    y2 = (1 - a) * x2 + a * h_t
    for got, want in ((out, torch.cat([y2, x1], 1)), (state["T"], torch.cat([h_t, c_t], 1)),
                      (ctx.shared["M"], m_t), (maps["i_t"], i), (maps["f_t"], f),
                      (maps["i'_t"], i2), (maps["f'_t"], f2), (maps["o_t"], o), (maps["g_t"], a)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_the_coupling_is_invertible_given_the_states():
    """x is recovered from x_out given the state and the M the unit read: one unit, and a whole
    stack inverted top-down (each unit's state and M as they were when it ran)."""
    unit = _unit()
    _randomise(unit)
    x = torch.randn(2, H, *SIZE)
    state = {"T": torch.randn(2, H, *SIZE)}
    shared = {"M": torch.randn(2, C, *SIZE)}
    out, _, _ = unit(x, state, Context(shared=dict(shared)))
    torch.testing.assert_close(unit.inverse(out, state, Context(shared=shared)), x,
                               atol=1e-5, rtol=0)
    stack = MemoryStack([_unit() for _ in range(3)])
    read = []  # per step: (state, M) each unit read
    for u in stack:
        u.register_forward_pre_hook(
            lambda mod, args: read[-1].append((args[1], {"M": args[2].shared["M"]})))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    st = stack.init_state(xs[0])
    for x in xs:
        read.append([])
        y, _ = stack(x, st)
        for u, (s, m) in zip(reversed(stack), reversed(read[-1])):
            y = u.inverse(y, s, Context(shared=m))
        torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    stack = MemoryStack([_unit() for _ in range(2)])
    outs, state = rollout(stack, [torch.randn(2, H, *SIZE) for _ in range(3)])[:2]
    (sum(o.square().mean() for o in outs) + state.units[-1]["T"].mean()).backward()
    assert_gradients(stack)


def test_state_is_carried_over_time():
    unit, x = _unit(), torch.randn(2, H, *SIZE)
    zero, m = unit.init_state(x), unit.init_shared(x)["M"]
    base, _, _ = unit(x, zero, Context(shared={"M": m}))
    h, c = torch.randn(2, C, *SIZE), torch.randn(2, C, *SIZE)
    for T in (torch.cat([h, 0 * c], 1), torch.cat([0 * h, c], 1)):  # h_{t-1} and c_{t-1} matter
        other, _, _ = unit(x, {"T": T}, Context(shared={"M": m}))
        assert not torch.allclose(base, other)
    other, _, _ = unit(x, zero, Context(shared={"M": torch.randn_like(m)}))  # and so does M
    assert not torch.allclose(base, other)
    stack = MemoryStack([_unit() for _ in range(2)])  # in a stack: step 1 changes step 2
    x2 = torch.randn(2, H, *SIZE)
    a, _ = rollout(stack, [x, x2])[:2]
    b, _ = rollout(stack, [torch.randn_like(x), x2])[:2]
    assert not torch.allclose(a[1], b[1])


def test_m_zigzags_up_the_stack_and_from_the_top_back_to_the_bottom():
    stack = MemoryStack([_unit() for _ in range(3)])
    read, wrote = [[] for _ in stack], [[] for _ in stack]
    for k, unit in enumerate(stack):
        unit.register_forward_pre_hook(lambda mod, args, k=k: read[k].append(args[2].shared["M"]))
        unit.register_forward_hook(lambda mod, args, out, k=k: wrote[k].append(args[2].shared["M"]))
    xs = [torch.randn(2, H, *SIZE) for _ in range(3)]
    rollout(stack, xs)
    assert torch.equal(read[0][0], torch.zeros(2, C, *SIZE))
    for t in range(3):
        for k in range(1, 3):
            assert read[k][t] is wrote[k - 1][t]
        if t:
            assert read[0][t] is wrote[2][t - 1]


def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("reversible"),
                                     init="default"))
    predictor, disc = build_model(cfg)
    assert all(isinstance(u, ReversiblePM) for u in predictor.memory)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    maps = {k: v for k, v in out.features.items() if k not in ("S_E", "T_E")}
    assert set(maps) == set(ReversiblePM.MAPS)
    assert set(predictor.maps()) == {"S_E", "T_E", *ReversiblePM.MAPS}
    for v in maps.values():
        assert v.shape == (2, cfg.eval_length - 1, cfg.model.num_layers, cfg.model.hidden // 2,
                           *cfg.model.latent_size)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)


def test_parameter_count_at_table_vii_setting():
    """Hidden 128 (halves of 64), kernel 5: W_c and W_m 192 -> 192, W_o 256 -> 64 (5x5), the 1x1
    128 -> 64, the attention's 1x1, 5x5, 1x1 (64 -> 64) and two GroupNorms; biases everywhere."""
    with torch.device("meta"):
        unit = ReversiblePM(128, filter_size=5)
    c = 64
    want = (2 * (9 * c * c * 25 + 3 * c) + (4 * c * c * 25 + c) + (2 * c * c + c)
            + (c * c + c) + (c * c * 25 + c) + (c * c + c) + 2 * 2 * c)
    assert sum(p.numel() for p in unit.parameters()) == want == 2_372_544
