"""STRPM (CVPR 2022): the model of Eq. 1-4 around the RPM stack, its presets, its official-code
departures, the official-weights loader (fixtures recorded from github ZhengChang467/STRPM @
57a5f0c, see fixtures/README.md) and training through the kit's one train_step."""
from dataclasses import replace

import pytest
import torch

from _helpers import FIXTURES, assert_departure_rows, assert_gradients
from stipkit.config import ConfigError, ModelConfig, get_preset, preset_names
from stipkit.config.memories import RPMConfig
from stipkit.models import STRPM, build_model, build_predictor
from stipkit.models.official import (OfficialFormatError, convert_strpm, load_strpm,
                              load_strpm_discriminator, official_strpm_config)

pytestmark = pytest.mark.usefixtures("one_thread")
CASES = torch.load(FIXTURES / "official_strpm_tiny.pt", weights_only=True)
# (attention="conv", the official merge, is also the paper's and the default: not among them)
OFFICIAL_FIELDS = dict(temporal_states="repeat_last", spatial_states="zigzag",
                       stif_gate=True, decode_gate=True, forget_bias=1.0)


# ----------------------------------------------------------------------------- official code
@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_equal_the_official_strpm_code(name):
    case = CASES[name]
    model = load_strpm(case["state_dict"], case["args"])
    assert isinstance(model, STRPM)
    with torch.no_grad():
        out = model(case["frames"])
        sampled = model(case["frames"], case["mask"])
    assert out.predictions.shape == case["predictions"].shape
    assert (out.predictions - case["predictions"]).abs().max() < 1e-5
    assert (sampled.predictions - case["predictions_mask"]).abs().max() < 1e-5
    # every cell above the bottom one has a conv_sto the official forward never uses
    assert model.official_unused == sorted(f"cell_list.{k}.conv_sto.{p}" for k in
                                           range(1, case["args"]["num_layers"]) for p in ("bias", "weight"))


@pytest.mark.parametrize("name", sorted(CASES))
def test_strpm_discriminator_equals_the_official_code(name):
    case = CASES[name]
    disc = load_strpm_discriminator(case["disc_state_dict"], case["args"])
    with torch.no_grad():
        prob, feats = disc(case["frames"][:, 1:])
    assert (torch.sigmoid(prob).mean(1) - case["disc_prob_mean"]).abs().max() < 1e-5
    assert (feats - case["disc_features"]).abs().max() < 1e-5


@pytest.mark.parametrize("field, paper", [("attention", "softmax"),  # the kit's variant
                                          ("temporal_states", "past"),
                                          ("spatial_states", "layers"), ("stif_gate", False),
                                          ("decode_gate", False), ("forget_bias", 0.0)])
def test_each_official_departure_changes_the_outputs(field, paper):
    # Each departure field is live: with the official weights, switching one back to the
    # paper's value moves the predictions away from the official code's.
    case = CASES["rgb_16x32"]
    cfg = official_strpm_config(case["args"])
    cfg = replace(cfg, memory=replace(cfg.memory, **{field: paper}))
    model = build_predictor(cfg, input_length=case["args"]["input_length"])
    new, _ = convert_strpm(case["state_dict"], official_strpm_config(case["args"]))
    own = model.state_dict()
    if field == "stif_gate":  # the paper's STIF reads [T_E, S_E]: drop the gate's columns
        h = cfg.hidden
        new["memory.0.conv_stif.weight"] = new["memory.0.conv_stif.weight"][:, :2 * h]
    if field == "attention":  # the softmax attention has no merging conv for a single state
        new = {k: v for k, v in new.items() if k in own}
    model.load_state_dict(new)
    with torch.no_grad():
        diff = (model.eval()(case["frames"]).predictions - case["predictions"]).abs().max()
    assert diff > 1e-4, field


def test_bad_official_strpm_inputs_are_named():
    case = CASES["rgb_16x32"]
    args = dict(case["args"])
    del args["tau"]
    with pytest.raises(OfficialFormatError, match="tau"):
        load_strpm(case["state_dict"], args)
    with pytest.raises(OfficialFormatError, match="shape"):
        load_strpm(case["state_dict"], dict(case["args"], num_hidden=16))
    sd = dict(case["state_dict"])
    sd.pop("conv_last_sr.weight")
    with pytest.raises(OfficialFormatError, match="conv_last_sr.weight"):
        load_strpm(sd, case["args"])
    with pytest.raises(OfficialFormatError, match="know"):
        load_strpm({**case["state_dict"], "extra.weight": torch.zeros(1)}, case["args"])
    with pytest.raises(OfficialFormatError, match="sr_size"):
        load_strpm(case["state_dict"], dict(case["args"], sr_size=3))


# ----------------------------------------------------------------------------- the model
def tiny_strpm(**memory):
    cfg = get_preset("strpm-ci").model
    return replace(cfg, height=16, width=16, hidden=8, num_layers=2,
                   memory=replace(cfg.memory, tau=2, theta=2, **memory))


def test_strpm_rolls_out_and_every_parameter_learns():
    torch.manual_seed(0)
    cfg = tiny_strpm()
    model = build_predictor(cfg, input_length=2)
    frames = torch.rand(2, 5, 3, 16, 16)
    out = model(frames, return_features=True)
    assert out.predictions.shape == (2, 4, 3, 16, 16)
    assert {"T_E", "S_E", "R_T", "R_S", "R_O", "STIF", "STRF"} <= set(out.features)
    assert out.features["R_O"].shape == (2, 4, 2, 8, 4, 4)  # (B, T-1, K, C, H_N, W_N)
    out.predictions.square().mean().backward()
    assert_gradients(model)


def test_strpm_step_is_eq_4_of_the_decoded_streams():
    # v̂ = O_D ⊙ tanh(W_1x1 [T_D, S_D]) with T_P = T^K, S_P = S^K, O_P = H^K (Eq. 2-4), by hand.
    import torch.nn.functional as F
    torch.manual_seed(1)
    model = build_predictor(tiny_strpm(), input_length=1).eval()
    frame = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        enc = model.encode([frame])
        got = model.step(enc, model.init_state(frame))
        state = model.init_state(frame)
        state.shared["E"] = {"t": enc["t"], "o": enc["o"]}
        s_top, _ = model.memory(enc["s"], state)
        top = state.units[-1]
        dec = {k: F.conv2d(model.decoders[k](x), model.to_frame[k].weight, model.to_frame[k].bias)
               for k, x in (("t", top["T"]), ("s", s_top), ("o", top["H"]))}
        want = dec["o"] * torch.tanh(F.conv2d(torch.cat([dec["t"], dec["s"]], 1),
                                              model.head.weight, model.head.bias))
    assert torch.allclose(got, want, atol=1e-6)
    assert not torch.allclose(dec["t"], dec["s"])  # the streams differ


def test_decode_gate_decodes_the_top_output_gate():
    torch.manual_seed(2)
    model = build_predictor(tiny_strpm(decode_gate=True), input_length=1).eval()
    frame = torch.rand(1, 3, 16, 16)
    seen = []
    model.decoders["o"].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        out = model(torch.stack([frame, frame], 1), return_features=True)
    assert torch.equal(seen[0], out.features["R_O"][:, 0, -1])


def test_only_strpms_bottom_unit_has_the_stif_convolution():
    model = build_predictor(tiny_strpm(), input_length=1)
    assert model.memory[0].conv_stif.in_channels == 2 * 8          # W_1x1 [T_E, S_E] (Eq. 9)
    assert all(u.conv_stif is None for u in model.memory[1:])      # T_E = S_E = H^{k-1}: identity
    gated = build_predictor(tiny_strpm(stif_gate=True), input_length=1)
    assert gated.memory[0].conv_stif.in_channels == 3 * 8          # official: + R_O
    plain = build_predictor(replace(get_preset("ci").model, memory=RPMConfig(), sted=False, mgir=False,
                                    init="default"), input_length=1)
    assert all(u.conv_stif is None for u in plain.memory)          # RPM inside STIP (Table VII)


def test_strpm_config_errors_name_the_field():
    cfg = get_preset("strpm-ci").model
    with pytest.raises(ConfigError, match="ModelConfig.sted"):
        replace(cfg, sted=False)
    with pytest.raises(ConfigError, match="ModelConfig.mgir"):
        replace(cfg, mgir=True)
    with pytest.raises(ConfigError, match="ModelConfig.memory"):
        ModelConfig(name="strpm", mgir=False)
    for field, bad in (("attention", "dot"), ("temporal_states", "all"), ("spatial_states", "up"),
                       ("decode_gate", 1), ("stif_gate", "yes")):
        with pytest.raises(ConfigError, match=f"RPMConfig.{field}"):
            RPMConfig(**{field: bad})


def test_strpm_presets_follow_the_paper_and_official_configs():
    names = preset_names()
    assert {"strpm-ucfsport", "strpm-study", "strpm-ci-official", "strpm-sjtu4k-official"} <= set(names)
    ucf = get_preset("strpm-ucfsport")
    m = ucf.model
    assert (m.name, m.hidden, m.num_layers, m.filter_size, m.memory.tau, m.memory.theta) == \
        ("strpm", 128, 16, 5, 5, 5)                                 # STRPM Sec. 4
    assert (m.disc_hidden, ucf.train.gamma_lp, ucf.train.gamma_gan) == (128, 0.01, 0.001)
    assert m.latent_size == (16, 16)                                # official: patch 8, sr_size 4
    sjtu = get_preset("strpm-sjtu4k")
    assert (sjtu.train.gamma_lp, sjtu.train.gamma_gan) == (0.005, 0.0005)
    official = get_preset("strpm-sjtu4k-official")
    assert (official.train.gamma_lp, official.train.gamma_gan) == (0.01, 0.001)  # hard-coded
    assert official.model.disc_hidden == 64 and official.model.disc_activation == "relu"
    for k, v in OFFICIAL_FIELDS.items():
        assert getattr(official.model.memory, k) == v, k
        assert getattr(sjtu.model.memory, k) != v, k
    assert sjtu.model.memory.attention == official.model.memory.attention == "conv"
    assert official.train.gan_reduction == "clip_mean" and official.train_length == official.eval_length
    with pytest.raises(ConfigError, match="strpm-nope"):
        get_preset("strpm-nope")


def test_strpm_trains_through_the_one_train_step():
    from stipkit.training.train import make_optimizers, train_step
    torch.manual_seed(3)
    cfg = get_preset("strpm-ci")
    cfg = replace(cfg, model=replace(cfg.model, height=16, width=16, hidden=8),
                  train=replace(cfg.train, loss="mse+gan+lp", gamma_lp=0.01, gamma_gan=0.001))
    predictor, disc = build_model(cfg)
    opt_p, opt_d, _, _ = make_optimizers(predictor, disc, cfg.train)
    before = [p.detach().clone() for p in predictor.parameters()]
    logs = train_step(torch.rand(2, 4, 3, 16, 16), predictor, disc, opt_p, opt_d, cfg.train,
                      cfg.input_length)
    assert {"mse", "gan_p", "lp", "d", "total"} <= set(logs)
    assert all(map(lambda v: v == v, logs.values()))  # no NaN
    assert any(not torch.equal(a, b) for a, b in zip(before, predictor.parameters()))


def test_strpm_departures_has_one_row_per_config_field_departure():
    from stipkit.reports import departures
    df = departures.strpm_departures()
    # every departure, and only those
    assert_departure_rows(df, get_preset("strpm-sjtu4k"), get_preset("strpm-sjtu4k-official"))
