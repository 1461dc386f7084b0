"""Image classification: a small CNN or a MobileNet-style network, built from code (no download).

Analytics Zoo's ``ImageClassifier`` loads pre-trained ImageNet networks; Workbench works offline,
so both backbones here are defined in code and trained from scratch on the cluster. Their layer
names are made for transfer learning with :class:`workbench.nets.Net`: the convolutional
``features`` (blocks ``features.block1``, ``features.block2``, ...), a global average ``pool``,
``flatten`` (the image embedding, ``feature_dim`` wide) and the ``classifier`` head::

    net = Net.load(saved_dir)  # an ImageClassifier's Estimator.save directory
    base = net.cut(at="flatten").freeze(up_to="features.block2.pool")
    model = base.append(torch.nn.Linear(net.model.feature_dim, 3)).model
"""

# No ``from __future__ import annotations`` here: torch.fx copies ``forward``'s annotations into
# the graphs ``Net`` builds, and a graph holding them as strings cannot be pickled for the workers.
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from workbench.arguments import check_positive_int
from workbench.models.base import BuiltinModel

__all__ = ["ImageClassifier", "BACKBONES"]

#: Backbone names, with the channels of their blocks at ``width=1``; MobileNet's first entry is
#: its stem, a plain convolution before the depthwise-separable blocks.
BACKBONES = {
    "cnn": (32, 64, 128),
    "mobilenet": (32, 64, 128, 128, 256, 256),
}
#: Images must be at least this many pixels high and wide.
_MIN_SIZE = 8


class ImageClassifier(BuiltinModel):
    """An image classifier: a convolutional backbone, global average pooling and a linear head.

    Backbones: ``"cnn"``, blocks of 3x3 convolution, batch norm, ReLU and 2x2 max pooling;
    ``"mobilenet"``, a 3x3 convolution followed by MobileNet's depthwise-separable blocks (a
    3x3 convolution per channel, then a 1x1 convolution mixing channels, each with batch norm
    and ReLU6), downsampling by stride 2. Both keep halving the image while it is at least 4
    pixels high and wide, so they suit small images (8x8 digits, 32x32 CIFAR) as they are.

    Input: float images ``(n, *input_shape)``, channels first (``ToCHW``). Output: ``class_num``
    logits. Default loss ``cross_entropy`` on integer labels, metric ``accuracy``.

    Args:
        class_num: number of classes (at least 2).
        input_shape: ``(channels, height, width)`` of the images; height and width at least 8.
        backbone: ``"cnn"`` or ``"mobilenet"``.
        width: multiplier of every block's channels (MobileNet's width multiplier).
        dropout: dropout rate before the classifier, in [0, 1).

    Attributes:
        input_shape: ``(channels, height, width)``, as a tuple.
        feature_dim: width of the image embedding (the output of the ``flatten`` layer).

    Example::

        import workbench as wb
        from workbench.datasets.tabular import digits
        from workbench.models.image import ImageClassifier

        wb.init()
        images, labels = digits(as_images=True)
        model = ImageClassifier(class_num=10, input_shape=(1, 8, 8), backbone="cnn", width=0.5)
        estimator = model.estimator(lr=3e-3)
        estimator.fit((images[:1500], labels[:1500]), epochs=3, batch_size=64)
        print(estimator.evaluate((images[1500:], labels[1500:])))
    """

    default_loss = "cross_entropy"
    default_metrics = ("accuracy",)

    def __init__(self, class_num: int, input_shape: Sequence[int] = (3, 32, 32), backbone: str = "cnn",
                 width: float = 1.0, dropout: float = 0.2):
        input_shape = _check_arguments(class_num, input_shape, backbone, width, dropout)
        super().__init__(class_num=int(class_num), input_shape=list(input_shape), backbone=backbone, width=width,
                         dropout=dropout)
        channels = [max(8, round(c * width)) for c in BACKBONES[backbone]]
        build = _cnn if backbone == "cnn" else _mobilenet
        self.features = build(input_shape[0], channels, min(input_shape[1:]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Sequential(OrderedDict(dropout=nn.Dropout(dropout),
                                                    linear=nn.Linear(channels[-1], int(class_num))))
        self.feature_dim = channels[-1]
        self.input_shape = input_shape

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(n, class_num)`` for images ``(n, *input_shape)``."""
        if not isinstance(images, torch.fx.Proxy):  # torch.fx traces (for Net) without a real batch
            _check_images(images, self.input_shape)
        return self.classifier(self.flatten(self.pool(self.features(images))))


def _check_arguments(class_num: int, input_shape: Sequence[int], backbone: str, width: float,
                     dropout: float) -> tuple[int, int, int]:
    """``input_shape`` as a tuple, after checking every argument (ValueError/TypeError naming it)."""
    check_positive_int("class_num", class_num)
    if class_num < 2:
        raise ValueError(f"class_num must be at least 2, got {class_num!r}")
    shape = tuple(input_shape) if isinstance(input_shape, (list, tuple)) else ()
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape) \
            or shape[0] < 1 or min(shape[1:]) < _MIN_SIZE:
        raise ValueError(f"input_shape must be (channels, height, width) with height and width >= {_MIN_SIZE}, "
                         f"got {input_shape!r}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; known: {', '.join(BACKBONES)}")
    for name, value in (("width", width), ("dropout", dropout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 < width < math.inf:
        raise ValueError(f"width must be a positive number, got {width!r}")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return tuple(int(s) for s in shape)


def _conv_block(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                activation: type[nn.Module] = nn.ReLU) -> OrderedDict[str, nn.Module]:
    """Convolution (same padding, no bias), batch norm and activation, by name."""
    return OrderedDict(
        conv=nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                       groups=groups, bias=False),
        bn=nn.BatchNorm2d(out_channels),
        relu=activation(),
    )


def _cnn(in_channels: int, channels: list[int], size: int) -> nn.Sequential:
    """Blocks ``conv -> bn -> relu [-> pool]``, pooling while the image is at least 4 pixels."""
    blocks = OrderedDict()
    for index, out_channels in enumerate(channels, start=1):
        block = _conv_block(in_channels, out_channels, 3)
        if size >= 4:
            block["pool"] = nn.MaxPool2d(2)
            size //= 2
        blocks[f"block{index}"] = nn.Sequential(block)
        in_channels = out_channels
    return nn.Sequential(blocks)


def _mobilenet(in_channels: int, channels: list[int], size: int) -> nn.Sequential:
    """A 3x3 stem (``channels[0]``), then depthwise-separable blocks; every other block strides 2
    while the image is at least 4 pixels."""
    blocks = OrderedDict(stem=nn.Sequential(_conv_block(in_channels, channels[0], 3, activation=nn.ReLU6)))
    in_channels = channels[0]
    for index, out_channels in enumerate(channels[1:], start=1):
        stride = 2 if index % 2 == 0 and size >= 4 else 1
        size = math.ceil(size / stride)
        blocks[f"block{index}"] = nn.Sequential(OrderedDict(
            depthwise=nn.Sequential(_conv_block(in_channels, in_channels, 3, stride, groups=in_channels,
                                                activation=nn.ReLU6)),
            pointwise=nn.Sequential(_conv_block(in_channels, out_channels, 1, activation=nn.ReLU6)),
        ))
        in_channels = out_channels
    return nn.Sequential(blocks)


def _check_images(images: torch.Tensor, shape: tuple[int, ...]) -> None:
    """Raise ValueError naming both shapes unless ``images`` is a batch of ``shape`` images."""
    if images.dim() != 4 or tuple(images.shape[1:]) != shape:
        raise ValueError(f"ImageClassifier expects images of shape (n, {', '.join(map(str, shape))}), "
                         f"got {tuple(images.shape)}")
