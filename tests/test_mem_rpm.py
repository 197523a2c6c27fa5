"""RPM (STRPM, CVPR 2022, Eq. 5-9): shapes, gradients, state over time, one step by hand (with the
paper's and official code's merging convolution, the default, and the kit's softmax variant), the
window of tau temporal states, the theta lower spatial states and the hidden state passed up,
and the memory plugged into STIP."""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from stipkit.config import ConfigError, get_preset
from stipkit.config.memories import memory_config
from stipkit.config.memories import RPMConfig
from stipkit.models import build_model
from stipkit.models.memories import MEMORIES, RPM, Context, MemoryStack
from _helpers import assert_gradients, rollout

H, SIZE, K = 4, (5, 6), 3  # hidden, map size, kernel: tiny


@pytest.fixture(autouse=True)
def _threads(one_thread):
    torch.manual_seed(0)


def _unit(tau=3, theta=2, bottom=False, **kw):
    return RPM(H, SIZE, K, tau=tau, theta=theta, bottom=bottom, **kw)


def _randomise(unit):
    with torch.no_grad():
        for p in unit.parameters():
            p.normal_(0, 0.3)


def _x():
    return torch.randn(2, H, *SIZE)


def _by_hand(unit, x, state, ctx, forget_bias):
    """Eq. 5-9 and the attention, from F ops on the unit's weights."""
    def conv(inp, seq):  # a convolution and its layer normalisation
        c, n = seq
        return F.layer_norm(F.conv2d(inp, c.weight, c.bias, padding=K // 2), n.normalized_shape,
                            n.weight, n.bias)

    def att(seq, states, n):  # oldest first, zero-padded to n
        states = [torch.zeros_like(states[0])] * (n - len(states)) + states
        if unit.attention == "conv":  # ATT = LN(W_q * [X_1, ..., X_n]): no weights
            return conv(torch.cat(states, 1), seq), None
        if n == 1:
            return states[0], torch.ones_like(states[0])
        q = conv(torch.cat(states, 1), seq)
        a = torch.softmax(torch.stack([q * s for s in states]), 0)
        return sum(a_i * s for a_i, s in zip(a, states)), a[-1]

    e = x if unit.bottom else ctx.shared["H"]
    TF, SF, OF = conv(e, unit.conv_t), conv(e, unit.conv_s), conv(e, unit.conv_o)
    HF, MF = conv(state["H"], unit.conv_h), conv(x, unit.conv_m)
    R_T, R_S = torch.sigmoid(TF + HF), torch.sigmoid(SF + MF)
    att_t, A_T = att(unit.att_t, [p["T"] for p in ctx.past[:-1]] + [state["T"]], unit.window)
    att_s, A_S = att(unit.att_s, list(ctx.below), unit.below)
    T = R_T * torch.tanh(TF + HF) + torch.sigmoid(TF + HF + forget_bias) * att_t
    S = R_S * torch.tanh(SF + MF) + torch.sigmoid(SF + MF + forget_bias) * att_s
    R_O = torch.sigmoid(OF + HF + conv(torch.cat([T, S], 1), unit.conv_ts))
    STRF = R_O * torch.tanh(F.conv2d(torch.cat([T, S], 1), unit.conv_last.weight,
                                     unit.conv_last.bias))
    STIF = e if unit.residual else torch.zeros_like(STRF)
    maps = {"R_T": R_T, "R_S": R_S, "R_O": R_O, "A_T": A_T, "A_S": A_S, "STIF": STIF, "STRF": STRF}
    return S, {"T": T, "H": STIF + STRF}, {k: v for k, v in maps.items() if v is not None}


def _check(got, want):
    out, state, maps = got
    w_out, w_state, w_maps = want
    torch.testing.assert_close(out, w_out, atol=1e-5, rtol=0)
    for d, w in ((state, w_state), (maps, w_maps)):
        assert set(d) == set(w)
        for k in w:
            torch.testing.assert_close(d[k], w[k], atol=1e-5, rtol=0, msg=k)


def test_registered_with_its_config_section():
    assert MEMORIES["rpm"] is RPM
    cfg = memory_config("rpm")
    assert (cfg.tau, cfg.theta, cfg.residual, cfg.forget_bias) == (5, 5, True, 0.0)  # STRPM Sec. 4
    assert cfg.attention == "conv"  # the paper's and official code's merge; "softmax": the kit's
    assert RPM.REVISION == 2 and "softmax" in RPM.REVISION_NOTE
    with pytest.raises(ConfigError, match=r"RPMConfig\.attention"):
        RPMConfig(attention="dot")
    with pytest.raises(ConfigError, match=r"RPMConfig\.tau"):
        RPMConfig(tau=0)
    with pytest.raises(ConfigError, match=r"RPMConfig\.theta"):
        RPMConfig(theta=-1)


def test_shapes_of_output_state_and_maps():
    unit, x = _unit(), _x()
    ctx = Context(shared={"H": _x()}, past=[unit.init_state(x)], below=[_x(), x])
    out, state, maps = unit(x, ctx.past[-1], ctx)
    assert out.shape == x.shape and set(state) == {"T", "H"} and RPM.TEMPORAL == "T"
    assert all(v.shape == x.shape for v in state.values())
    assert torch.equal(ctx.shared["H"], state["H"])  # H_t^k goes up
    assert set(maps) == set(RPM.MAPS) and all(v.shape == x.shape for v in maps.values())
    assert (unit.window, unit.below) == (3, 2)
    soft = _unit(attention="softmax")  # the kit's variant also shows its attention weights
    ctx = Context(shared={"H": _x()}, past=ctx.past, below=ctx.below)
    out, state, maps = soft(x, ctx.past[-1], ctx)
    assert list(maps) == list(soft.MAPS) == ["R_T", "R_S", "R_O", "A_T", "A_S", "STIF", "STRF"]


@pytest.mark.parametrize("attention", ["conv", "softmax"])
@pytest.mark.parametrize("bottom", [False, True])
def test_one_step_follows_equations_5_to_9(bottom, attention):
    unit = _unit(tau=3, theta=3, bottom=bottom, forget_bias=0.4, attention=attention)
    _randomise(unit)
    x, e = _x(), _x()
    state = {"T": _x(), "H": _x()}
    # two past states (one zero-padded slot), the newest being the unit's state; two below
    past, below = [{"T": _x(), "H": _x()}, state], [_x(), x]
    ctx = lambda: Context(shared={"H": e}, past=past, below=below)  # noqa: E731
    _check(unit(x, state, ctx()), _by_hand(unit, x, state, ctx(), 0.4))


def test_without_residual_h_is_strf_alone():
    unit, x = _unit(), _x()
    _randomise(unit)
    state, e = {"T": _x(), "H": _x()}, _x()
    ctx = lambda: Context(shared={"H": e}, past=[state], below=[x])  # noqa: E731
    _, with_residual, _ = unit(x, state, ctx())
    unit.residual = False
    got = unit(x, state, ctx())
    _check(got, _by_hand(unit, x, state, ctx(), 0.0))
    torch.testing.assert_close(with_residual["H"] - got[1]["H"], e)  # STIF = E
    cfg = replace(get_preset("ci").model, memory=RPMConfig(residual=False))
    assert not RPM.from_config(cfg).residual


def test_the_default_merge_is_one_convolution_of_the_states():
    """attention="conv" (default): ATT_T is LN(W_q * [T_{t-tau}, ..., T_{t-1}]) itself, for one
    state too (the official code's att_c / att_m); the kit's softmax changes the outputs."""
    unit, x = _unit(tau=1, theta=1), _x()
    assert unit.attention == "conv" and unit.att_t is not None and unit.att_s is not None
    _randomise(unit)
    state, e = {"T": _x(), "H": _x()}, _x()
    ctx = lambda: Context(shared={"H": e}, past=[state], below=[x])  # noqa: E731
    got = unit(x, state, ctx())
    _check(got, _by_hand(unit, x, state, ctx(), 0.0))
    unit, older, lower = _unit(tau=3, theta=2), {"T": _x()}, _x()
    _randomise(unit)
    ctx = lambda: Context(shared={"H": e}, past=[older, state], below=[lower, x])  # noqa: E731
    conv = unit(x, state, ctx())
    _check(conv, _by_hand(unit, x, state, ctx(), 0.0))
    unit.attention = "softmax"
    assert not torch.allclose(conv[1]["T"], unit(x, state, ctx())[1]["T"])


def test_attention_over_one_state_gives_weight_1():
    """The kit's softmax variant: one state has weight 1 and no W_q."""
    unit, x = _unit(tau=1, theta=1, attention="softmax"), _x()
    _randomise(unit)
    assert unit.att_t is None and unit.att_s is None  # no W_q: nothing to weigh
    state, e = {"T": _x(), "H": _x()}, _x()
    ctx = lambda: Context(shared={"H": e}, past=[state], below=[x])  # noqa: E731
    got = unit(x, state, ctx())
    assert torch.equal(got[2]["A_T"], torch.ones_like(x))
    assert torch.equal(got[2]["A_S"], torch.ones_like(x))
    _check(got, _by_hand(unit, x, state, ctx(), 0.0))  # ATT_T = T_{t-1}, ATT_S = S_t^{k-1}
    # the weights of a longer window sum to 1 over the states
    unit = _unit(tau=3, attention="softmax")
    _randomise(unit)
    seen = []
    real = unit.attend
    unit.attend = lambda conv, states, n: seen.append(real(conv, states, n)) or seen[-1]
    unit(x, state, Context(shared={"H": _x()}, past=[{"T": _x()}, state], below=[_x(), x]))
    for _, weights in seen:
        torch.testing.assert_close(weights.sum(0), torch.ones_like(x))


def test_gradients_reach_every_parameter_through_a_3_step_rollout():
    m = replace(get_preset("ci").model, hidden=H, filter_size=K, num_layers=3, init="default",
                memory=RPMConfig(tau=2, theta=2))
    stack = MemoryStack(RPM.stack(m))
    outs, state = rollout(stack, [torch.randn(2, H, *m.latent_size) for _ in range(3)])[:2]
    (sum(o.square().mean() for o in outs) + state.units[-1]["T"].mean()).backward()
    assert_gradients(stack)


def test_state_is_carried_over_time():
    """T_t^k and H_t^k depend on the unit's states (Eq. 7, 9); S_t^k has no term from t-1
    (Eq. 8): it carries time through E = H_t^{k-1}, so the stack's output does."""
    unit, x = _unit(), _x()
    zero = unit.init_state(x)
    e = torch.zeros_like(x)
    ctx = lambda past: Context(shared={"H": e}, past=past, below=[x])  # noqa: E731
    base = unit(x, zero, ctx([zero]))[1]
    for key in ("T", "H"):  # each of its own states matters
        other = {**zero, key: _x()}
        new = unit(x, other, ctx([other]))[1]
        assert not torch.allclose(base["T"], new["T"]) and not torch.allclose(base["H"], new["H"])
    older = {"T": _x(), "H": _x()}  # and so does an older state of the window
    assert not torch.allclose(base["T"], unit(x, zero, ctx([older, zero]))[1]["T"])
    stack = MemoryStack([_unit(bottom=True), _unit()])  # in a stack: step 1 changes step 2
    x2 = _x()
    a, _ = rollout(stack, [x, x2])[:2]
    b, _ = rollout(stack, [_x(), x2])[:2]
    assert not torch.allclose(a[1], b[1])


def test_the_window_holds_tau_states_and_the_attention_reads_past_and_below():
    """Over 4 steps of a 3-unit stack (tau = 2, theta = 2): ATT_T of unit k reads exactly its
    latest tau temporal states (ctx.past, oldest first; T_0 = 0 first), ATT_S exactly the
    outputs of the theta layers under it at this step (ctx.below; the stack input counts), and
    E is the H_t^{k-1} that the unit below wrote at this step."""
    units = [_unit(tau=2, theta=2, bottom=k == 0) for k in range(3)]
    stack = MemoryStack(units)
    seen = [[] for _ in units]  # per unit, per step: what it read and returned
    for k, unit in enumerate(units):
        def spy(conv, states, n, real=unit.attend, k=k):
            seen[k][-1]["T" if "T" not in seen[k][-1] else "S"] = list(states)
            return real(conv, states, n)
        unit.attend = spy
        unit.register_forward_pre_hook(
            lambda mod, args, k=k: seen[k].append({"E": args[2].shared.get("H")}))
        unit.register_forward_hook(lambda mod, args, out, k=k: seen[k][-1].update(
            out=out[0], T_new=out[1]["T"], H_new=out[1]["H"]))
    xs = [_x() for _ in range(4)]
    _, state = rollout(stack, xs)[:2]
    zero = torch.zeros_like(xs[0])
    for t in range(4):
        for k in range(3):
            got = seen[k][t]
            want_t = ([zero] + [seen[k][s]["T_new"] for s in range(t)])[-2:]
            want_s = ([xs[t]] + [seen[j][t]["out"] for j in range(k)])[-2:]
            for name, a, b in (("T", got["T"], want_t), ("S", got["S"], want_s)):
                assert len(a) == len(b), (name, k, t)
                assert all(torch.equal(u, v) for u, v in zip(a, b)), (name, k, t)
            if k:
                assert got["E"] is seen[k - 1][t]["H_new"]
    for k, past in enumerate(state.past):  # the window holds the tau latest states
        assert len(past) == 2 and all(
            torch.equal(p["T"], seen[k][t]["T_new"]) for p, t in zip(past, (2, 3)))


def test_the_bottom_unit_reads_its_merged_temporal_state_and_not_the_shared_h():
    """STIP's Alg. 1 line 7 replaces the bottom unit's state by one with T_E merged into T; the
    window's newest entry is still the unmerged dict: RPM reads the newest T from ``state``."""
    unit, x = _unit(bottom=True), _x()
    _randomise(unit)
    old = {"T": _x(), "H": _x()}
    merged = {**old, "T": _x()}
    ctx = lambda: Context(shared={"H": _x()}, past=[{"T": x, "H": x}, old], below=[x])  # noqa: E731
    got = unit(x, merged, ctx())
    _check(got, _by_hand(unit, x, merged, ctx(), 0.0))
    again = unit(x, merged, ctx())  # E = x: the shared H plays no part
    assert torch.equal(got[0], again[0]) and torch.equal(got[1]["H"], again[1]["H"])
    assert not torch.allclose(got[1]["T"], unit(x, old, ctx())[1]["T"])


def test_plugs_into_stip_end_to_end():
    cfg = get_preset("ci")
    cfg = replace(cfg, model=replace(cfg.model, memory=memory_config("rpm", tau=2, theta=2),
                                     init="default"))
    predictor, disc = build_model(cfg)
    assert all(isinstance(u, RPM) for u in predictor.memory)
    assert [u.bottom for u in predictor.memory] == [True] + [False] * (cfg.model.num_layers - 1)
    frames = torch.rand(2, cfg.eval_length, 3, cfg.model.height, cfg.model.width)
    out = predictor(frames, return_features=True)
    maps = {k: v for k, v in out.features.items() if k not in ("S_E", "T_E")}
    assert set(maps) == set(RPM.MAPS) and set(predictor.maps()) == {"S_E", "T_E", *RPM.MAPS}
    assert not {"A_T", "A_S"} & set(maps)  # the default merge has no attention weights
    for v in maps.values():
        assert v.shape == (2, cfg.eval_length - 1, cfg.model.num_layers, cfg.model.hidden,
                           *cfg.model.latent_size)
    out.predictions.mean().backward()
    assert_gradients(predictor.memory)


def test_parameter_count_at_table_vii_setting():
    """Hidden 128, kernel 5, 16x16, tau = theta = 5: Table VII's 6.72M (M = 2^20) is the official
    bottom cell's convolutions, 7,046,400, which include a 1x1 STIF convolution over
    [T_E, S_E, O_E] (384 -> 128, 49,280) that stipkit's identity STIF does not have; Table VII
    counts no layer normalisation (8 of them here). The default merge and the kit's softmax
    have the same parameters."""
    with torch.device("meta"):
        unit = RPM(128, (16, 16), 5, tau=5, theta=5)
        soft = RPM(128, (16, 16), 5, tau=5, theta=5, attention="softmax")
    assert sum(p.numel() for p in soft.parameters()) == sum(p.numel() for p in unit.parameters())
    conv = sum(p.numel() for n, p in unit.named_parameters() if n.endswith((".0.weight", ".0.bias"))
               or n.startswith("conv_last"))
    norm = sum(p.numel() for p in unit.parameters()) - conv
    assert conv == 7_046_400 - (384 * 128 + 128) and round(7_046_400 / 2**20, 2) == 6.72
    assert norm == 8 * 2 * 128 * 16 * 16
