import pytest
import torch

from dcdm.training.config import ModelConfig
from dcdm.training.model import DCDMNet


@pytest.mark.parametrize("shape", [(13, 7), (16, 16), (5, 9), (1, 3)])
@pytest.mark.parametrize("levels", [0, 1, 2])
def test_2d_any_size(shape, levels):
    net = DCDMNet(dim=2, levels=levels)
    out = net(torch.randn(2, 1, *shape))
    assert out.shape == (2, 1, *shape)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shape", [(7, 5, 9), (8, 8, 8), (3, 6, 5)])
def test_3d_any_size(shape):
    net = DCDMNet(dim=3, channels=4)
    assert net(torch.randn(1, 1, *shape)).shape == (1, 1, *shape)


def test_paper_parameter_counts():
    # counted from the official layer list (reference/dcdm.md, Sec. 2)
    assert DCDMNet(dim=3).param_count() == 97_457
    assert DCDMNet(dim=3, convs_before=6, convs_coarse=10, convs_after=6).param_count() == 152_881
    assert DCDMNet(dim=2).param_count() == 32_657


def test_padding_does_not_leak_into_crop():
    # a size that needs padding gives the same values as the model on the padded input
    net = DCDMNet(dim=2).eval()
    x = torch.randn(1, 1, 9, 6)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 1))
    with torch.no_grad():
        assert torch.allclose(net(x), net(padded)[..., :9, :6], atol=1e-6)


def test_overrides_and_config():
    net = DCDMNet(ModelConfig(dim=2), channels=8)
    assert net.config.channels == 8 and net.dim == 2
    assert ModelConfig.from_dict(net.config.to_dict()) == net.config


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 1}, "dim must be 2 or 3"),
    ({"kernel": 4}, "kernel must be odd"),
    ({"channels": 0}, "channels must be a positive integer"),
    ({"levels": -1}, "levels must be an integer >= 0"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_from_dict_rejects_unknown():
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        ModelConfig.from_dict({"dim": 2, "width": 3})


def test_wrong_input_shape():
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 1, n, n\)"):
        DCDMNet(dim=2)(torch.zeros(1, 1, 4, 4, 4))


@pytest.mark.parametrize("kwargs", [
    {"dim": 2}, {"dim": 3, "channels": 4, "levels": 0}, {"dim": 2, "levels": 3, "kernel": 5},
    {"dim": 3, "convs_before": 3, "convs_coarse": 1, "convs_after": 0, "levels": 2},
])
def test_config_param_count_matches_the_network(kwargs):
    config = ModelConfig(**kwargs)
    assert config.param_count == DCDMNet(config).param_count()


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": 513}, "channels must be at most 512, got 513"),
    ({"levels": 7}, "levels must be at most 6"),
    ({"convs_after": 65}, "convs_after must be at most 64"),
    ({"channels": 10**30}, "channels must be at most 512"),
])
def test_config_bounds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)
