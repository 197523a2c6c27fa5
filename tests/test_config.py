import pytest

from stipkit.config import (Config, ConfigError, ModelConfig, TrainConfig, from_dict, get_preset,
                            preset_names, to_dict)


def test_table1_presets_match_the_paper():
    # Table I: resolution, layers, patch, hidden, lambda, gamma_1, gamma_2.
    rows = {"ucfsport": (512, 512, 16, 2, 64, 0.1, 0.010, 0.0010, 10),
            "human36m": (1024, 1024, 16, 4, 64, 0.1, 0.010, 0.0010, 8),
            "sjtu4k": (2176, 3840, 16, 8, 64, 0.1, 0.005, 0.0005, 8)}
    for name, (h, w, layers, patch, hidden, lam, g1, g2, eval_len) in rows.items():
        c = get_preset(name)
        m = c.model
        assert (m.height, m.width, m.num_layers, m.patch, m.hidden) == (h, w, layers, patch, hidden)
        assert (m.num_downsample, m.recall_weight) == (4, lam)
        assert (c.train.gamma_gan, c.train.gamma_lp) == (g1, g2)
        assert (c.input_length, c.train_length, c.eval_length) == (4, 5, eval_len)
        assert m.disc_layers == 8  # "8 x DL_D"


def test_official_preset_switches_every_departure_and_swaps_gammas():
    p, o = get_preset("ucfsport"), get_preset("ucfsport-official")
    assert (p.model.memory.update_bias, o.model.memory.update_bias) == (0.0, 1.0)
    assert not p.model.swap_decoder_states and o.model.swap_decoder_states
    assert p.model.recall_deepest and not o.model.recall_deepest
    assert p.model.last_upsample_act and not o.model.last_upsample_act
    assert (p.model.clip_padding, o.model.clip_padding) == ("replicate", "zeros")
    assert (p.model.disc_activation, o.model.disc_activation) == ("leaky_relu", "relu")
    assert (o.train.gamma_gan, o.train.gamma_lp) == (p.train.gamma_lp, p.train.gamma_gan)
    assert o.train.gan_reduction == "clip_mean"
    assert set(preset_names()) >= {"ucfsport", "human36m", "sjtu4k", "study", "ci", "study-official"}


@pytest.mark.parametrize("kwargs, field", [
    (dict(height=500), "ModelConfig.height"),
    (dict(width=100, patch=2, num_downsample=4), "ModelConfig.width"),
    (dict(hidden=0), "ModelConfig.hidden"),
    (dict(num_layers=-1), "ModelConfig.num_layers"),
    (dict(patch=0), "ModelConfig.patch"),
    (dict(num_downsample=0), "ModelConfig.num_downsample"),
    (dict(filter_size=4), "ModelConfig.filter_size"),
    (dict(memory="lstm9000"), "ModelConfig.memory"),
    (dict(name="resnet"), "ModelConfig.name"),
    (dict(clip_padding="mirror"), "ModelConfig.clip_padding"),
    (dict(disc_hidden=6), "ModelConfig.disc_hidden"),
    (dict(recall_weight=-1.0), "ModelConfig.recall_weight"),
    (dict(init="zeros"), "ModelConfig.init"),
])
def test_bad_model_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        ModelConfig(**kwargs)


def test_resolution_error_gives_valid_values():
    with pytest.raises(ConfigError, match=r"divisible by .*= 32 \(nearest valid: 480 or 512\)"):
        ModelConfig(height=500, patch=2, num_downsample=4)


@pytest.mark.parametrize("kwargs, field", [
    (dict(input_length=10, train_length=10), "Config.train_length"),
    (dict(input_length=4, eval_length=3), "Config.eval_length"),
    (dict(input_length=0), "Config.input_length"),
])
def test_bad_lengths_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        Config(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(batch_size=0), "TrainConfig.batch_size"), (dict(lr=0), "TrainConfig.lr"),
    (dict(loss="mse+vgg"), "TrainConfig.loss"), (dict(lr_decay=1.5), "TrainConfig.lr_decay"),
    (dict(gan_reduction="sum"), "TrainConfig.gan_reduction"), (dict(grad_clip=0.0), "TrainConfig.grad_clip"),
    (dict(lr_schedule="step"), "TrainConfig.lr_schedule"), (dict(warmup=-1), "TrainConfig.warmup"),
    (dict(ema=1.0), "TrainConfig.ema"), (dict(crops=0), "TrainConfig.crops"),
])
def test_bad_train_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        TrainConfig(**kwargs)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"preset='kth' is unknown: valid presets are .*'ucfsport'"):
        get_preset("kth")


def test_dict_round_trip_and_unknown_field():
    for name in preset_names():
        c = get_preset(name)
        assert from_dict(to_dict(c)) == c
    d = to_dict(get_preset("study"))
    d["model"]["hiden"] = 3
    with pytest.raises(ConfigError, match=r"Config.model has unknown field\(s\) \['hiden'\]"):
        from_dict(d)
