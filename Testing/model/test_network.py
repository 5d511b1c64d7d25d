"""The click-conditioned U-Net: any slice size, the two configurations, config round trip."""

from __future__ import annotations

import json

import pytest
import torch
from conftest_engine import TINY_CONFIG

from InteractiveAdaptLib.model.network import (
    CONFIGS,
    IN_CHANNELS,
    OUT_CHANNELS,
    ClickUNet,
    NetworkConfig,
    build_network,
    count_parameters,
)


@pytest.mark.parametrize("size", [(37, 53), (5, 7), (1, 9), (1, 1), (2, 3), (4, 4), (64, 3)])
def test_tiny_network_keeps_odd_slice_sizes(tiny_network, size):
    with torch.no_grad():
        out = tiny_network(torch.randn(2, IN_CHANNELS, *size))
    assert out.shape == (2, OUT_CHANNELS, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(217, 181), (16, 16), (10, 12), (17, 1)])
def test_default_network_keeps_slice_sizes(size):
    torch.manual_seed(0)
    net = build_network("default").eval()
    with torch.no_grad():
        out = net(torch.randn(1, IN_CHANNELS, *size))
    assert out.shape == (1, OUT_CHANNELS, *size)


def test_sizes_at_the_stride_multiple_go_to_the_unet_unpadded(tiny_network):
    x = torch.randn(1, IN_CHANNELS, 12, 20)  # multiples of 4
    with torch.no_grad():
        torch.testing.assert_close(tiny_network(x), tiny_network.unet(x))


def test_odd_size_output_is_the_padded_output_cropped_back(tiny_network):
    x = torch.randn(1, IN_CHANNELS, 13, 18)  # padded to 16 x 20: 1/2 rows and 1/1 columns of reflection
    padded = torch.nn.functional.pad(x, (1, 1, 1, 2), mode="reflect")
    with torch.no_grad():
        torch.testing.assert_close(tiny_network(x), tiny_network.unet(padded)[..., 1:14, 1:19])


def test_gradients_flow_on_an_odd_size(tiny_network):
    tiny_network.train()
    x = torch.randn(2, IN_CHANNELS, 29, 31)
    tiny_network(x).sum().backward()
    grads = [p.grad for p in tiny_network.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_paper_config_has_about_8_1_million_parameters():
    n = count_parameters(build_network("paper"))
    assert 8.0e6 <= n <= 8.3e6
    assert CONFIGS["paper"].channels == (12, 72, 144, 288, 576) and CONFIGS["paper"].num_res_units == 2


def test_default_config_is_much_smaller_than_the_paper_config():
    assert count_parameters(build_network("default")) < count_parameters(build_network("paper")) / 4


def test_instance_norm_has_no_affine_parameters(tiny_network):
    norms = [m for m in tiny_network.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms and not any(m.affine for m in norms)


@pytest.mark.parametrize(
    "config",
    [*CONFIGS.values(), TINY_CONFIG, NetworkConfig("custom", (4, 8, 16), 0, dropout=0.1, strides=(2, 1))],
    ids=lambda c: c.name,
)
def test_network_config_round_trips_through_json(config):
    restored = NetworkConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert isinstance(restored.channels, tuple) and isinstance(restored.strides, tuple)


def test_size_multiple_follows_the_strides():
    assert CONFIGS["default"].size_multiple == 16
    assert NetworkConfig("x", (4, 8, 16), 0, strides=(2, 1)).size_multiple == 2


def test_build_network_from_a_name_or_a_config():
    assert build_network("default").config == CONFIGS["default"]
    assert isinstance(build_network(TINY_CONFIG), ClickUNet)
    with pytest.raises(KeyError):
        build_network("no-such-config")
