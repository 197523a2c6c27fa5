"""ConvLSTM (Shi et al. 2015, Eq. 3), ConvGRU (Ballas et al. 2016) and dGRU (Oliu et al. 2018):
shapes, gradients, state over time, one step by hand from the equations, the (plain) wiring,
Table VII's sizes, and each memory plugged into STIP end to end."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stipkit.config import ConfigError, from_dict, get_preset, to_dict
from stipkit.config.memories import memory_config
from stipkit.config.memories import ConvLSTMConfig
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, ConvGRU, ConvLSTM, Context, DGRU, MemoryStack
from _helpers import assert_gradients

H, SIZE, K = 4, (6, 6), 3  # hidden, latent size, kernel of the small units

UNITS = {
    "convlstm": lambda: ConvLSTM(H, SIZE, K, forget_bias=0.3),
    "convgru": lambda: ConvGRU(H, K),
    "dgru": lambda: DGRU(H, K),
}
NAMES = list(UNITS)


def unit(name, seed=0, scale=0.3):
    """A small unit with every parameter random (peepholes included: they start at zero)."""
    torch.manual_seed(seed)
    u = UNITS[name]()
    with torch.no_grad():
        for p in u.parameters():
            p.normal_(0, scale)
    return u


def rand(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def random_state(u, x, seed=2):
    return {k: rand(*v.shape, seed=seed + i) for i, (k, v) in enumerate(u.init_state(x).items())}


@pytest.mark.parametrize("name", NAMES)
def test_shapes_of_output_state_and_maps(name, one_thread):
    u = unit(name)
    x = rand(2, H, *SIZE).contiguous(memory_format=torch.channels_last)
    state = u.init_state(x)
    assert u.TEMPORAL in state
    for _ in range(2):
        out, state, maps = u(x, state, Context())
        assert out.shape == (2, H, *SIZE)
        assert set(state) == set(u.init_state(x))
        assert all(s.shape == (2, H, *SIZE) for s in state.values())
        assert list(maps) == list(u.MAPS) and all(m.shape == (2, H, *SIZE) for m in maps.values())
    assert MEMORIES[name] is type(u)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter_through_a_3_step_rollout(name, one_thread):
    torch.manual_seed(0)
    stack = MemoryStack([UNITS[name](), UNITS[name]()])
    x = rand(2, H, *SIZE)
    state = stack.init_state(x)
    loss = sum((stack(x * (t + 1), state)[0] ** 2).mean() for t in range(3))
    loss.backward()
    assert_gradients(stack)


@pytest.mark.parametrize("name", NAMES)
def test_the_state_is_carried_over_time(name, one_thread):
    u = unit(name)
    x = rand(2, H, *SIZE)
    out0, _, _ = u(x, u.init_state(x), Context())
    out1, _, _ = u(x, random_state(u, x), Context())
    assert not torch.allclose(out0, out1, atol=1e-4)  # same input, another state: another output
    # in a stack: step 2 reads the same input, but step 1 did not -> step 2's output differs
    torch.manual_seed(0)
    stack = MemoryStack([UNITS[name](), UNITS[name]()])
    outs = []
    for first in (x, 2 * x):
        state = stack.init_state(x)
        stack(first, state)
        outs.append(stack(x, state)[0])
    assert not torch.allclose(*outs, atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_plain_wiring_each_unit_its_own_state_nothing_shared(name, one_thread):
    """These memories need no zigzag state, no window of past states and no lower layers."""
    u = unit(name)
    x = rand(2, H, *SIZE)
    assert u.window == 0 and u.below == 0 and u.init_shared(x) == {}
    state = random_state(u, x)
    busy = Context(shared={"M": rand(2, H, *SIZE, seed=7)}, past=[state], below=[x, x])
    a, b = u(x, state, Context()), u(x, state, busy)
    assert torch.equal(a[0], b[0])  # the context is not read
    # in a stack each unit carries its own state: the stack's step is the units' steps in turn
    stack = MemoryStack([unit(name, seed=0), unit(name, seed=1)])
    st = stack.init_state(x)
    stack(x, st)
    before = [dict(s) for s in st.units]
    top, _ = stack(x, st)
    y = x
    for k, v in enumerate(stack):
        y, s, _ = v(y, before[k], None)
        assert all(torch.allclose(s[key], st.units[k][key]) for key in s)
    assert torch.allclose(top, y) and st.shared == {} and st.past == [[], []]


# ------------------------------------------------------------------ one step by hand
def close(got, want, atol=1e-5):
    assert torch.allclose(got, want, atol=atol, rtol=0), (got - want).abs().max()


def conv(x, c):
    return F.conv2d(x, c.weight, c.bias, padding=K // 2)


def test_convlstm_follows_equation_3(one_thread):
    u = unit("convlstm")
    x, h0, c0 = rand(2, H, *SIZE, seed=1), rand(2, H, *SIZE, seed=2), rand(2, H, *SIZE, seed=3)
    out, state, gates = u(x, {"h": h0, "c": c0}, Context())
    Wx = conv(x, u.conv_x).split(H, 1)   # W_xi, W_xf, W_xc, W_xo (+ b)
    Wh = conv(h0, u.conv_h).split(H, 1)  # W_hi, W_hf, W_hc, W_ho
    Wci, Wcf, Wco = u.peephole
    i = torch.sigmoid(Wx[0] + Wh[0] + Wci * c0)
    f = torch.sigmoid(Wx[1] + Wh[1] + Wcf * c0 + 0.3)
    c = f * c0 + i * torch.tanh(Wx[2] + Wh[2])
    o = torch.sigmoid(Wx[3] + Wh[3] + Wco * c)
    h = o * torch.tanh(c)
    for got, want in ((gates["i_t"], i), (gates["f_t"], f), (gates["o_t"], o), (state["c"], c),
                      (state["h"], h), (out, h)):
        close(got, want)


def test_convlstm_without_peepholes_is_the_zero_peephole_unit(one_thread):
    a = ConvLSTM(H, SIZE, K, peephole=False)
    b = ConvLSTM(H, SIZE, K)
    b.load_state_dict({**a.state_dict(), "peephole": torch.zeros(3, H, *SIZE)})
    x = rand(2, H, *SIZE)
    s = random_state(a, x)
    assert a.peephole is None and len(list(a.parameters())) == 3
    close(a(x, s)[0], b(x, s)[0])


def gru(cell, a, s):
    """The ConvGRU map by hand: input a, state s -> (s', z, r)."""
    W = conv(a, cell.conv_x).split(H, 1)   # W_z, W_r, W (+ b)
    U = conv(s, cell.conv_h).split(H, 1)   # U_z, U_r
    z, r = torch.sigmoid(W[0] + U[0]), torch.sigmoid(W[1] + U[1])
    candidate = torch.tanh(W[2] + conv(r * s, cell.conv_rh))
    return (1 - z) * s + z * candidate, z, r


def test_convgru_follows_the_gru_rcn_equations(one_thread):
    u = unit("convgru")
    x, h0 = rand(2, H, *SIZE, seed=1), rand(2, H, *SIZE, seed=2)
    out, state, gates = u(x, {"h": h0}, Context())
    h, z, r = gru(u, x, h0)
    for got, want in ((gates["z_t"], z), (gates["r_t"], r), (state["h"], h), (out, h)):
        close(got, want)


def test_dgru_is_a_forward_then_a_backward_gru_mapping(one_thread):
    u = unit("dgru")
    x, h0 = rand(2, H, *SIZE, seed=1), rand(2, H, *SIZE, seed=2)
    out, state, gates = u(x, {"h": h0}, Context())
    h, z_f, r_f = gru(u.fwd, x, h0)   # f_f: the state from the input
    x_hat, z_b, r_b = gru(u.bwd, h, x)  # f_b: the representation below from the state
    for got, want in ((gates["z_f"], z_f), (gates["r_f"], r_f), (gates["z_b"], z_b),
                      (gates["r_b"], r_b), (state["h"], h), (out, x_hat)):
        close(got, want)


# ------------------------------------------------------------------ Table VII's sizes
@pytest.mark.parametrize("name, params_m, macs_g", [("convgru", 2.34, 0.59), ("dgru", 4.69, 1.17)])
def test_table_vii_parameters_and_macs(name, params_m, macs_g, one_thread):
    """hidden 128, kernel 5, one 16x16 unit, one sample (M = 2^20, G = 2^30 MACs)."""
    macs = []  # a convolution's MACs: its output size x the inputs each output reads

    def count(c, _, y):
        macs.append(y.numel() * c.in_channels * c.weight[0, 0].numel())

    u = MEMORIES[name](128, 5)
    for c in u.modules():
        if isinstance(c, nn.Conv2d):
            c.register_forward_hook(count)
    x = torch.zeros(1, 128, 16, 16)
    with torch.no_grad():
        u(x, u.init_state(x), Context())
    weights = sum(p.numel() for p in u.parameters() if p.dim() == 4)
    assert weights == {"convgru": 1, "dgru": 2}[name] * 3 * (128 + 128) * 128 * 25
    assert abs(sum(p.numel() for p in u.parameters()) / 2**20 / params_m - 1) < 0.02
    assert abs(sum(macs) / 2**30 / macs_g - 1) < 0.02


def test_convlstm_section_validates_and_round_trips():
    with pytest.raises(ConfigError, match=r"ConvLSTMConfig\.peephole"):
        ConvLSTMConfig(peephole="yes")
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("convlstm", peephole=False)))
    assert from_dict(to_dict(cfg)) == cfg


# ------------------------------------------------------------------ end to end in STIP
@pytest.mark.parametrize("name", NAMES)
def test_plugs_into_stip_end_to_end(name, one_thread):
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config(name), init="default"))
    torch.manual_seed(0)
    predictor, disc = build_model(cfg)
    cls = MEMORIES[name]
    assert all(isinstance(v, cls) for v in predictor.memory)
    assert set(predictor.maps()) == {"S_E", "T_E", *cls.MAPS}
    m = cfg.model
    frames = torch.rand(2, cfg.eval_length, 3, m.height, m.width)
    out = predictor(frames, return_features=True)
    for key in cls.MAPS:
        assert out.features[key].shape == (2, cfg.eval_length - 1, m.num_layers, m.hidden,
                                           *m.latent_size)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)
