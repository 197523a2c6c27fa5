from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from _helpers import tiny
from stipkit.config import ModelConfig, get_preset, preset_names
from stipkit.training.losses import gan_d_loss, predictor_loss
from stipkit.models import MODELS, STGRU, STIP, Discriminator, Predictor, build_model


def make(cfg, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_runs_at_tiny_size(name):
    cfg = tiny(get_preset(name))
    m = cfg.model
    pred, disc = make(cfg)
    T = cfg.input_length + 2
    frames = torch.rand(2, T, m.img_channels, m.height, m.width)
    out = pred(frames, return_features=True)
    assert out.predictions.shape == (2, T - 1, m.img_channels, m.height, m.width)
    f = out.features
    hl, wl = m.latent_size
    assert len(f["T_E"]) == len(f["S_E"]) == m.num_downsample + 1
    assert f["T_E"][-1].shape == (2, T - 1, m.hidden, hl, wl)
    assert f["T_E"][0].shape == (2, T - 1, m.hidden, m.height // m.patch, m.width // m.patch)
    gates = ("R_t", "U_t") if m.name == "stip" else ("R_T", "R_S", "R_O")  # STGRU's / RPM's (STRPM)
    for g in gates:
        assert f[g].shape == (2, T - 1, m.num_layers, m.hidden, hl, wl), g
    logit, feats = disc(out.predictions)   # logits: D's probability is their sigmoid
    assert logit.shape == (2, T - 1) and feats.shape[:2] == (2, T - 1)
    assert torch.isfinite(logit).all()


def test_every_predictor_is_a_sibling_run_by_the_one_rollout_loop():
    """STIP, STRPM and BeyondMSE subclass the rollout base directly (none another) and none
    overrides its loop, its patching or its input checks: they differ only in their hooks."""
    shared = ("forward", "patchify", "unpatchify_into", "_stack", "_check")
    assert set(MODELS) == {"stip", "strpm", "beyondmse"}
    for cls in MODELS.values():
        assert cls.__bases__ == (Predictor,), cls
        assert not any(issubclass(cls, other) for other in MODELS.values() if other is not cls), cls
        assert all(getattr(cls, name) is getattr(Predictor, name) for name in shared), cls
        assert all(name in vars(cls) for name in ("encode", "step", "maps", "label", "PARTS")), cls
        assert cls.STEPS == ("encode", "step")
    assert "init_state" in vars(MODELS["beyondmse"])  # not recurrent: no memory stack's state
    assert "init_state" not in vars(STIP) and "init_state" not in vars(MODELS["strpm"])
    base = Predictor(get_preset("ci").model)
    for hook, args in (("encode", ([],)), ("step", ({}, {})), ("maps", ())):  # the base predicts nothing
        with pytest.raises(NotImplementedError):
            getattr(base, hook)(*args)


def test_features_cost_nothing_when_not_requested():
    cfg = tiny(get_preset("study"), init="default")
    pred, _ = make(cfg)
    frames = torch.rand(1, 6, 3, cfg.model.height, cfg.model.width)
    a, b = pred(frames), pred(frames, return_features=True)
    assert a.features is None
    assert torch.equal(a.predictions, b.predictions)


@pytest.mark.parametrize("variant", [dict(), dict(sted=False), dict(mgir=False), dict(sted=False, mgir=False)])
def test_gradients_reach_every_parameter(variant):
    cfg = tiny(get_preset("study"), init="default", **variant)  # copy_last: see below
    pred, disc = make(cfg)
    frames = torch.rand(2, 6, 3, cfg.model.height, cfg.model.width)
    mask = torch.tensor([[1.0], [0.0]])
    out = pred(frames, mask, input_length=4).predictions
    loss = predictor_loss(out, frames[:, 1:], disc, mode="mse+gan+lp")["total"]
    loss.backward()
    for name, p in pred.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    disc.zero_grad()
    p_real, _ = disc(frames[:, 1:])
    p_fake, _ = disc(out.detach())
    gan_d_loss(p_real, p_fake).backward()
    for name, p in disc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches D.{name}"


def test_table6_switches_change_the_architecture():
    base = tiny(get_preset("study"), init="default").model
    single = STIP(replace(base, sted=False))
    assert set(single.encoders) == {"t"} and set(single.decoders) == {"t"}
    assert single.merge_ts is not None
    assert sum(p.numel() for p in single.parameters()) < sum(p.numel() for p in STIP(base).parameters())
    # Without MGIR the recall weight no longer matters.
    frames = torch.rand(1, 5, 3, base.height, base.width)
    outs = []
    for lam in (0.1, 0.9):
        torch.manual_seed(0)
        outs.append(STIP(replace(base, mgir=False, recall_weight=lam))(frames).predictions)
    assert torch.equal(outs[0], outs[1])
    outs = []
    for lam in (0.1, 0.9):
        torch.manual_seed(0)
        outs.append(STIP(replace(base, recall_weight=lam))(frames).predictions)
    assert not torch.allclose(outs[0], outs[1])


def test_seeded_builds_and_runs_are_reproducible():
    cfg = tiny(get_preset("study"), init="default")
    (p1, d1), (p2, d2) = make(cfg, seed=3), make(cfg, seed=3)
    for a, b in zip(list(p1.state_dict().values()) + list(d1.state_dict().values()),
                    list(p2.state_dict().values()) + list(d2.state_dict().values())):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    frames = torch.rand(2, 6, 3, cfg.model.height, cfg.model.width)
    assert torch.equal(p1(frames).predictions, p2(frames).predictions)
    p3, _ = make(cfg, seed=4)
    assert not torch.equal(p1(frames).predictions, p3(frames).predictions)


def test_scheduled_sampling_mask_semantics():
    cfg = tiny(get_preset("study"), init="default")
    pred, _ = make(cfg)
    frames = torch.rand(2, 7, 3, cfg.model.height, cfg.model.width)
    teacher = pred(frames, input_length=6).predictions               # every step reads the truth
    ones = pred(frames, torch.ones(2, 2), input_length=4).predictions  # mask 1: truth as well
    zeros = pred(frames, torch.zeros(2, 2), input_length=4).predictions
    free = pred(frames[:, :4], input_length=4, total_length=7).predictions  # no future given
    assert torch.allclose(teacher, ones, atol=1e-6)
    assert torch.allclose(zeros, free, atol=1e-6)
    assert not torch.allclose(zeros, ones)
    mixed = pred(frames, torch.tensor([[1.0, 1.0], [0.0, 0.0]]), input_length=4).predictions
    assert torch.allclose(mixed[0], ones[0], atol=1e-6) and torch.allclose(mixed[1], zeros[1], atol=1e-6)


def test_future_only_keeps_just_the_predictions_of_unseen_frames():
    cfg = tiny(get_preset("study"), init="default")
    pred, _ = make(cfg)
    frames = torch.rand(2, 4, 3, cfg.model.height, cfg.model.width)
    with torch.inference_mode():
        every = pred(frames, input_length=4, total_length=7).predictions        # v_2..v_7
        future = pred(frames, input_length=4, total_length=7, future_only=True).predictions
    assert every.shape[1] == 6 and future.shape[1] == 3                         # v_5..v_7
    assert torch.equal(future, every[:, 3:])


def test_clip_padding_departure():
    base = tiny(get_preset("study"), init="default").model  # copy_last copies v_1 either way
    frames = torch.rand(1, 5, 3, base.height, base.width)
    outs = {}
    for pad in ("replicate", "zeros"):
        torch.manual_seed(0)
        outs[pad] = STIP(replace(base, clip_padding=pad))(frames).predictions
    assert not torch.allclose(outs["replicate"][:, 0], outs["zeros"][:, 0])


@pytest.mark.parametrize("bad", [
    lambda m, f: m(f[..., :-1]),                                      # wrong W
    lambda m, f: m(f[0]),                                             # 4-D
    lambda m, f: m(f, torch.zeros(2, 5)),                              # mask shape
    lambda m, f: m(f, input_length=6),                                 # input_length >= T
    lambda m, f: m(f[:, :3], torch.zeros(2, 1), total_length=6),       # mask needs the future
])
def test_bad_inputs_raise_clear_errors(bad):
    cfg = tiny(get_preset("study"), init="default")
    pred, _ = make(cfg)
    frames = torch.rand(2, 6, 3, cfg.model.height, cfg.model.width)
    with pytest.raises(ValueError, match=r"frames|mask|input_length"):
        bad(pred, frames)


def test_stgru_follows_equations_5_to_7():
    torch.manual_seed(0)
    h, size = 4, (6, 6)
    cell = STGRU(h, size, filter_size=3, update_bias=0.7)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    s, t = torch.randn(2, h, *size), torch.randn(2, h, *size)
    s_new, state, gates = cell(s, {"T": t})
    t_new = state["T"]
    conv = lambda x, c, n: F.layer_norm(F.conv2d(x, c.weight, c.bias, padding=1),  # noqa: E731
                                        n.normalized_shape, n.weight, n.bias)
    W_t = conv(t, cell.conv_t, cell.norm_t).split(h, 1)  # W_tu, W_tr, W_tt, W_ts
    W_s = conv(s, cell.conv_s, cell.norm_s).split(h, 1)  # W_su, W_sr, W_st, W_ss
    R = torch.sigmoid(W_s[1] + W_t[1])
    U = torch.sigmoid(W_s[0] + W_t[0] + 0.7)
    TT = torch.tanh(W_t[2] + R * W_s[2])
    SS = torch.tanh(W_s[3] + R * W_t[3])
    assert torch.allclose(gates["R_t"], R, atol=1e-6) and torch.allclose(gates["U_t"], U, atol=1e-6)
    assert torch.allclose(t_new, (1 - U) * TT + U * t, atol=1e-5)
    assert torch.allclose(s_new, (1 - U) * SS + U * s, atol=1e-5)


def test_discriminator_fc_size_follows_the_real_output_size():
    for h, w, patch in ((64, 64, 2), (64, 128, 2), (2176 // 8, 3840 // 8, 1)):
        m = ModelConfig(height=h if patch == 2 else 272, width=w if patch == 2 else 480, patch=patch,
                        num_downsample=1 if patch == 2 else 4, disc_hidden=8)
        d = Discriminator(m)
        prob, f = d(torch.rand(1, 1, 3, m.height, m.width))
        assert f.shape[-1] == d.fc.in_features


def test_patching_is_pixel_unshuffle_and_uint8_frames_match_float():
    cfg = tiny(get_preset("study"), init="default")
    pred, _ = make(cfg)
    x = torch.rand(2, 3, cfg.model.height, cfg.model.width)
    assert torch.equal(pred.patchify(x), F.pixel_unshuffle(x, cfg.model.patch))
    frames = torch.randint(0, 256, (2, 6, 3, cfg.model.height, cfg.model.width), dtype=torch.uint8)
    a, b = pred(frames).predictions, pred(frames.float() / 255).predictions
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("variant", [dict(patch=1, num_downsample=2, hidden=12),
                                     dict(patch=2, num_downsample=2, hidden=48),
                                     dict(patch=1, num_downsample=2, hidden=16, sted=False),
                                     dict(patch=1, num_downsample=2, hidden=12, clip_length=3,
                                          clip_padding="zeros", recall_deepest=False,
                                          last_upsample_act=False, swap_decoder_states=True)])
def test_copy_last_init_predicts_the_last_frame_exactly(variant):
    """ModelConfig.init="copy_last": before training, every prediction is the frame it was given
    (teacher-forced steps) or its own previous prediction (free-running steps) -- copy-last."""
    m = replace(ModelConfig(height=16, width=32, num_layers=2, disc_hidden=8, **variant),
                init="copy_last")
    torch.manual_seed(0)
    pred = STIP(m, input_length=3)
    frames = torch.rand(2, 7, 3, 16, 32)
    out = pred(frames[:, :3], total_length=7).predictions
    expected = torch.cat([frames[:, :2], frames[:, 2:3].expand(-1, 4, -1, -1, -1)], 1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    # and it trains: the heads' zeros open the other paths after one step (as a zero-initialised
    # residual branch does), then a gradient reaches every parameter
    opt = torch.optim.SGD(pred.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        F.mse_loss(pred(frames, torch.zeros(2, 3)).predictions, frames[:, 1:]).backward()
        opt.step()
    for name, p in pred.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_copy_last_init_leaves_the_default_init_alone():
    """Only the copy path and the heads change: the memory and the deeper layers keep PyTorch's
    initialisation, drawn from the same seed."""
    m = ModelConfig(height=16, width=16, patch=1, num_downsample=2, hidden=12, num_layers=2,
                    disc_hidden=8)
    torch.manual_seed(0)
    a = STIP(m).state_dict()
    torch.manual_seed(0)
    b = STIP(replace(m, init="copy_last")).state_dict()
    same = [k for k in a if torch.equal(a[k], b[k])]
    assert all(k in same for k in a if k.startswith("memory."))
    assert "encoders.s.down.0.weight" not in same and "head.s.weight" not in same
    assert all(k in same for k in a if k.startswith(("encoders.t.", "decoders.t.")))


@pytest.mark.parametrize("field, value, fix", [
    ("num_downsample", 1, "num_downsample"), ("hidden", 8, "hidden"),
    ("recall_weight", 0.0, "recall_weight")])
def test_copy_last_init_names_what_it_needs(field, value, fix):
    """The recall route (MGIR on) needs room for the copy; without MGIR the same values are valid
    (the residual route, tests/test_equal_starts.py)."""
    from stipkit.config import ConfigError
    kw = dict(height=16, width=16, patch=1, num_downsample=2, hidden=12, init="copy_last")
    kw[field] = value
    with pytest.raises(ConfigError, match=f"ModelConfig.{fix}=.*init='copy_last' and mgir=True"):
        ModelConfig(**kw)
    assert ModelConfig(**kw, mgir=False).copy_route == "residual"
