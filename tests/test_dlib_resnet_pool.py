"""dlib's ResNet gives exactly the same outputs with its faster stem max pool."""

import torch
import torch.nn.functional as F

from siamgui.core.models.dlib_resnet import DlibResNet


def reference_features(net: DlibResNet, x: torch.Tensor) -> torch.Tensor:
    x = F.max_pool2d(F.relu(net.stem(x)), 3, 2)  # the plain NCHW kernel
    return net.units(x).mean(dim=(2, 3))


def small_net(seed: int = 0) -> DlibResNet:
    torch.manual_seed(seed)
    return DlibResNet(stem_width=8, widths=(8, 8, 16, 16, 16), embedding_dim=12).eval()


def test_features_equal_the_plain_max_pool():
    net = small_net()
    x = torch.randn(3, 3, 150, 150) * 40
    with torch.inference_mode():
        got = net.features(x)
        want = reference_features(net, x)
        assert torch.equal(got, want)
        assert got.is_contiguous()
        # channels-last input takes the ordinary path and agrees to rounding
        got_cl = net.features(x.contiguous(memory_format=torch.channels_last))
        assert torch.allclose(got_cl, want, atol=1e-5, rtol=1e-5)
        other = net.features(torch.randn(3, 3, 150, 150) * 40)
        assert not torch.allclose(other, want)  # the comparison above is not vacuous


def test_gradients_equal_the_plain_max_pool():
    net = small_net(1)
    x = torch.randn(1, 3, 150, 150) * 40
    net.zero_grad()
    net.features(x).square().sum().backward()
    params = [p for name, p in net.named_parameters() if not name.startswith("head")]  # features skip the head
    got = [p.grad.clone() for p in params]
    net.zero_grad()
    reference_features(net, x).square().sum().backward()
    for g, p in zip(got, params):
        assert torch.allclose(g, p.grad, rtol=1e-4, atol=1e-6)
    assert got[0].abs().sum() > 0
