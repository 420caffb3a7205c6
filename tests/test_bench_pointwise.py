"""igkd_lib.bench.pointwise: both kernels compute the student's 1x1 convolutions identically, with gradients."""
import torch

from igkd_lib.bench import pointwise
from igkd_lib.config import make_config


def test_pointwise_shapes_are_the_students_1x1_convolutions():
    shapes = pointwise.pointwise_shapes(make_config("smoke"))
    assert len(shapes) == 25  # 12 expansions (the first block has none) + 13 projections at cut 5
    assert shapes[0][:2] == (32, 16) and shapes[-1][1] == 96
    assert all(h == w for _, _, h, w in shapes)


def test_batched_matmul_equals_grouped_conv_forward_and_backward():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2 * 5, 4, 4, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2, 7, 5, generator=generator)
    grads = []
    for kernel in (pointwise.grouped_conv, pointwise.batched_matmul):
        xi, wi = x.clone().requires_grad_(), weight.clone().requires_grad_()
        out = kernel(xi, wi)
        assert out.shape == (3, 14, 4, 4)
        (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
        grads.append((out.detach(), xi.grad, wi.grad))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # member 1's outputs depend on member 1's inputs only
    out = pointwise.batched_matmul(x, weight)
    x2 = x.clone()
    x2[:, :5] += 1
    assert torch.equal(pointwise.batched_matmul(x2, weight)[:, 7:], out[:, 7:])
