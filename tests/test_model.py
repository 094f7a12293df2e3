import torch

from carvana.model.unet import UNet, count_parameters


def test_seed_unet_has_the_tutorials_parameter_count():
    assert count_parameters(UNet(in_channels=3, out_channels=1, features=(64, 128, 256, 512))) == 31_037_633


def test_output_matches_odd_input_sizes():
    model = UNet(features=(8, 16, 32, 64)).eval()
    for height, width in [(161, 161), (96, 144), (33, 47)]:
        with torch.no_grad():
            assert model(torch.randn(2, 3, height, width)).shape == (2, 1, height, width)


def test_width_is_configurable():
    assert count_parameters(UNet(features=(16, 32, 64, 128))) < count_parameters(UNet(features=(32, 64, 128, 256)))
    assert len(UNet(features=(8, 16, 32)).downs) == 3


def test_widths_need_not_double_from_level_to_level():
    model = UNet(features=(8, 24, 48), block="separable").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 33, 47)).shape == (1, 1, 33, 47)


def test_a_space_to_depth_stem_runs_the_network_at_half_size_and_predicts_every_pixel():
    model = UNet(features=(8, 16), space_to_depth=2).eval()
    seen = []
    model.downs[0].register_forward_hook(lambda layer, inputs, output: seen.append(inputs[0].shape))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 96)).shape == (2, 1, 64, 96)
    assert seen == [(2, 12, 32, 48)]  # each 2x2 block of the photo's 3 channels, folded into 12
    plain = UNet(features=(8, 16))
    assert set(model.state_dict()) == set(plain.state_dict())  # the stem and head hold no weights of their own


def test_a_separable_network_keeps_a_dense_first_convolution_and_separates_the_rest():
    model = UNet(features=(8, 16), block="separable").eval()
    convolutions = [
        layer for layer in model.modules() if isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (3, 3)
    ]
    assert [layer.groups for layer in convolutions[:3]] == [1, 8, 8]  # the photo's 3 channels: dense; then depthwise
    assert all(layer.groups == layer.in_channels for layer in convolutions[1:])
    with torch.no_grad():
        assert model(torch.randn(2, 3, 33, 47)).shape == (2, 1, 33, 47)
    assert count_parameters(model) < count_parameters(UNet(features=(8, 16))) / 3
