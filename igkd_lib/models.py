"""The paper's teacher (CIFAR-10 MobileNetV2) and its truncated students.

Every model here takes images in [0, 1] pixel space, shape ``(N, 3, 32, 32)``, and normalises
inside itself, so callers never need to know the CIFAR-10 statistics. See chapter 4 ("The models").
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.mobilenetv2 import MobileNetV2

from igkd_lib.validators import check_int, check_number

__all__ = ["CIFAR_MEAN", "CIFAR_STD", "Classifier", "teacher", "student", "count_parameters", "count_macs",
           "STUDENT_PARAMETERS"]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)

# torchvision's inverted-residual table (t, c, n, s) with the second stage's stride set to 1.
_CIFAR_SETTING = [[1, 16, 1, 1], [6, 24, 2, 1], [6, 32, 3, 2], [6, 64, 4, 2],
                  [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]

# Exact parameter counts of student(cut) (asserted by the tests).
STUDENT_PARAMETERS = {3: 1_019_402, 5: 543_498, 7: 306_954, 9: 185_738,
                      11: 77_194, 13: 40_970, 15: 16_042, 17: 1_994}


class Classifier(nn.Module):
    """(Normalise,) ``features``, global average pool, dropout, linear head.

    ``normalise`` subtracts the CIFAR-10 mean and divides by its std inside the model (the teacher);
    without it the first convolution sees the [0, 1] pixels as they are (the official student).
    """

    def __init__(self, features: nn.Sequential, width: int, num_classes: int = 10, dropout: float = 0.2,
                 normalise: bool = True):
        super().__init__()
        self.normalise = normalise
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1), persistent=False)
        self.features = features
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, 3, H, W) pixels in [0, 1] -> logits (N, num_classes)."""
        if self.normalise:
            x = (x - self.mean) / self.std
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def _cifar_mobilenet_features() -> nn.Sequential:
    net = MobileNetV2(num_classes=10, inverted_residual_setting=_CIFAR_SETTING, dropout=0.2)
    net.features[0][0].stride = (1, 1)  # stem stride 1 for 32x32 inputs
    return net.features


def teacher() -> Classifier:
    """The paper's teacher: CIFAR-10 MobileNetV2, 2,236,682 parameters, freshly initialised."""
    return Classifier(_cifar_mobilenet_features(), width=1280)


def student(cut: int = 5, *, dropout: float = 0.0, normalise: bool = False) -> Classifier:
    """The teacher's ``features[:-cut]`` + pool + Linear: 543,498 parameters at ``cut=5``.

    The defaults are the official student's (``SmallerMobileNet``): no dropout, raw [0, 1] pixels.
    """
    check_int("cut", cut, 1, 18)
    check_number("dropout", dropout, 0, 1, high_open=True)
    features = _cifar_mobilenet_features()[:-cut]
    width = features[-1].out_channels
    return Classifier(features, width=width, dropout=dropout, normalise=normalise)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, image_size: int = 32) -> int:
    """Multiply-accumulates for one image (torch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    param = next(model.parameters())
    x = torch.zeros(1, 3, image_size, image_size, device=param.device, dtype=param.dtype)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2
