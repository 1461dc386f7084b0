"""Image transforms: small, picklable steps that ImageSet applies to each image on the workers.

A transform is called as ``step(image, rng)`` on one image, an ``(height, width, channels)``
numpy array (HWC, uint8 as decoded, or float32 after ``ToFloat``/``ChannelNormalize``), and
returns the new image. ``rng`` is a numpy Generator that ImageSet derives from the transform
seed and the image's row id, so random steps (``RandomCrop``, ``HFlip``, ``ColorJitter``,
``Expand``) give the same result whichever partition, worker or process runs them.

Steps compose into a :class:`Pipeline`, either ``Pipeline([a, b, c])`` or ``a >> b >> c``.
Arguments are checked when a step is made; a step that cannot apply to an image (a crop larger
than the image, a channel count that does not match) raises ``ValueError`` naming the sizes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from workbench.arguments import check_positive_int

__all__ = ["Transform", "Pipeline", "Resize", "CenterCrop", "RandomCrop", "HFlip", "ColorJitter",
           "ChannelNormalize", "Expand", "ToFloat", "ToCHW"]

#: Mean RGB of ImageNet in 0..255, Analytics Zoo's default fill for Expand.
IMAGENET_MEANS = (123.0, 117.0, 104.0)
#: ITU-R 601-2 luma weights, the ones Pillow uses to convert RGB to grey.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: A factor range for ColorJitter: v means [max(0, 1 - v), 1 + v]; a pair is (low, high).
FactorRange = float | tuple[float, float]


class Transform(ABC):
    """One step applied to each image; ``a >> b`` chains steps into a :class:`Pipeline`."""

    #: Whether the step reads images as HWC (every step but ToFloat does).
    needs_hwc = True

    @abstractmethod
    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The transformed image; random steps draw from ``rng`` only."""

    def output_layout(self, layout: str) -> str:
        """The layout ("HWC" or "CHW") of images after this step, given the one before it."""
        if self.needs_hwc and layout != "HWC":
            raise ValueError(f"{self!r} works on HWC images, but they are {layout} after ToCHW; put ToCHW last")
        return layout

    def __rshift__(self, other: Transform) -> Pipeline:
        return Pipeline([self, other])


class Pipeline(Transform):
    """Steps applied in order, each to the output of the one before.

    Nested pipelines are flattened, so ``Pipeline([a, b]) >> c`` has the steps ``a, b, c``.
    """

    def __init__(self, steps: Sequence[Transform]):
        flat: list[Transform] = []
        for step in steps:
            if not isinstance(step, Transform):
                raise TypeError(f"Pipeline steps must be Transforms (Resize, HFlip, ...), got {step!r}")
            flat += step.steps if isinstance(step, Pipeline) else [step]
        self.steps = tuple(flat)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for step in self.steps:
            image = step(image, rng)
        return image

    def output_layout(self, layout: str) -> str:
        for step in self.steps:
            layout = step.output_layout(layout)
        return layout

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.steps == other.steps

    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(map(repr, self.steps))}])"


@dataclass(frozen=True)
class _Sized(Transform):
    """A step with an output size, ``height`` x ``width`` pixels (positive integers, checked)."""

    height: int
    width: int

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_positive_int(f"{name}.height", self.height)
        check_positive_int(f"{name}.width", self.width)


@dataclass(frozen=True)
class _Crop(_Sized):
    """A ``height`` x ``width`` window of the image, whose top-left corner ``_corner`` chooses."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width = image.shape[:2]
        if self.height > height or self.width > width:
            raise ValueError(f"{self!r} is larger than the image ({height}x{width}); Resize it first or crop less")
        top, left = self._corner(height, width, rng)
        return np.ascontiguousarray(image[top : top + self.height, left : left + self.width])

    @abstractmethod
    def _corner(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        """The window's top row and left column in an image of ``height`` x ``width``."""


@dataclass(frozen=True)
class Resize(_Sized):
    """Resize to ``height`` x ``width`` with Pillow's bilinear filter.

    uint8 images of 1, 3 or 4 channels are resized as one Pillow image (L, RGB, RGBA), exactly
    as ``Image.resize((width, height), Image.BILINEAR)`` does; other images channel by channel
    as float32 ("F") Pillow images, and come back as float32.
    """

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        size = (self.width, self.height)
        channels = image.shape[2]
        if image.dtype == np.uint8 and channels in (1, 3, 4):
            resized = np.asarray(Image.fromarray(image[:, :, 0] if channels == 1 else image).resize(size, Image.BILINEAR))
            return resized[:, :, None] if channels == 1 else resized
        planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[:, :, c], dtype=np.float32)).resize(size, Image.BILINEAR))
                  for c in range(channels)]
        return np.stack(planes, axis=2)


@dataclass(frozen=True)
class CenterCrop(_Crop):
    """The central ``height`` x ``width`` window (rows from ``(H - height) // 2``, same for columns)."""

    def _corner(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        return (height - self.height) // 2, (width - self.width) // 2


@dataclass(frozen=True)
class RandomCrop(_Crop):
    """A ``height`` x ``width`` window at a random position (uniform over all positions)."""

    def _corner(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.integers(0, height - self.height + 1)), int(rng.integers(0, width - self.width + 1))


@dataclass(frozen=True)
class HFlip(Transform):
    """Mirror left-right with probability ``p``."""

    p: float = 0.5

    def __post_init__(self) -> None:
        if not _is_number(self.p) or not 0 <= self.p <= 1:
            raise ValueError(f"HFlip.p must be a probability in [0, 1], got {self.p!r}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1]) if rng.random() < self.p else image


@dataclass(frozen=True)
class ColorJitter(Transform):
    """Random brightness, contrast and saturation changes, applied in that order.

    Each argument is a factor range: ``v`` draws the factor uniformly from
    ``[max(0, 1 - v), 1 + v]`` (0: unchanged), a pair ``(low, high)`` from that range. With
    factors b, c, s: brightness scales the pixels by b; contrast moves them away from the mean
    grey level by c (``(x - mean) * c + mean``); saturation moves them away from their own grey
    level by s (``grey + (x - grey) * s``; grey images have no saturation). uint8 images are
    rounded and clipped to 0..255; float images are left unclipped. Works on 1 or 3 channels.
    """

    brightness: FactorRange = 0.0
    contrast: FactorRange = 0.0
    saturation: FactorRange = 0.0

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation"):
            _factor_range(name, getattr(self, name))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        channels = image.shape[2]
        if channels not in (1, 3):
            raise ValueError(f"{self!r} works on 1 or 3 channels, the image has {channels}")
        brightness, contrast, saturation = (rng.uniform(*_factor_range(name, getattr(self, name)))
                                            for name in ("brightness", "contrast", "saturation"))
        pixels = image.astype(np.float32) * np.float32(brightness)
        mean = _grey(pixels).mean(dtype=np.float32)
        pixels = (pixels - mean) * np.float32(contrast) + mean
        if channels == 3:
            grey = _grey(pixels)
            pixels = grey + (pixels - grey) * np.float32(saturation)
        if image.dtype == np.uint8:
            return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
        return pixels


@dataclass(frozen=True)
class ChannelNormalize(Transform):
    """``(image - mean) / std`` per channel, in float32 (one value each, or one per channel)."""

    mean: Sequence[float] | float
    std: Sequence[float] | float

    def __post_init__(self) -> None:
        mean, std = np.atleast_1d(self.mean), np.atleast_1d(self.std)
        if mean.ndim != 1 or std.ndim != 1 or len(mean) != len(std) or not len(mean):
            raise ValueError("ChannelNormalize needs as many means as stds (one per channel), "
                             f"got mean={self.mean!r}, std={self.std!r}")
        if not (np.issubdtype(mean.dtype, np.number) and np.issubdtype(std.dtype, np.number)):
            raise TypeError(f"ChannelNormalize mean and std must be numbers, got mean={self.mean!r}, std={self.std!r}")
        if not np.isfinite(mean).all() or not (np.isfinite(std) & (std > 0)).all():
            raise ValueError(f"ChannelNormalize needs finite means and stds > 0, got mean={self.mean!r}, std={self.std!r}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        mean = np.atleast_1d(self.mean).astype(np.float32)
        std = np.atleast_1d(self.std).astype(np.float32)
        if len(mean) not in (1, image.shape[2]):
            raise ValueError(f"{self!r} has {len(mean)} values per statistic but the image has {image.shape[2]} channels")
        return (image.astype(np.float32) - mean) / std


@dataclass(frozen=True)
class Expand(Transform):
    """Zoom out: place the image at a random position on a larger canvas of colour ``fill``.

    The canvas is ``int(H * r)`` x ``int(W * r)`` for a ratio r drawn uniformly from ``ratio``
    (a pair ``(low, high)``, or one fixed value), both >= 1. ``fill`` is one value per channel
    (default: ImageNet's mean RGB) or one value for all. Follow it with Resize to get back to a
    fixed size.
    """

    ratio: FactorRange = (1.0, 4.0)
    fill: Sequence[float] | float = IMAGENET_MEANS

    def __post_init__(self) -> None:
        low, high = self._ratios()
        if not 1 <= low <= high or not math.isfinite(high):
            raise ValueError(f"Expand.ratio must be >= 1 (a value or a (low, high) pair), got {self.ratio!r}")
        fill = np.atleast_1d(self.fill)
        if fill.ndim != 1 or not len(fill) or not np.issubdtype(fill.dtype, np.number) or not np.isfinite(fill).all():
            raise ValueError(f"Expand.fill must be a number or one number per channel, got {self.fill!r}")

    def _ratios(self) -> tuple[float, float]:
        if _is_number(self.ratio):
            return float(self.ratio), float(self.ratio)
        if isinstance(self.ratio, (tuple, list)) and len(self.ratio) == 2 and all(map(_is_number, self.ratio)):
            return float(self.ratio[0]), float(self.ratio[1])
        raise ValueError(f"Expand.ratio must be a number or a (low, high) pair, got {self.ratio!r}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        height, width, channels = image.shape
        fill = np.atleast_1d(self.fill)
        if len(fill) not in (1, channels):
            raise ValueError(f"{self!r} has {len(fill)} fill values but the image has {channels} channels")
        if image.dtype == np.uint8 and not ((fill >= 0) & (fill <= 255)).all():
            raise ValueError(f"{self!r}: fill values must lie in 0..255 for uint8 images")
        ratio = rng.uniform(*self._ratios())
        canvas_height, canvas_width = int(height * ratio), int(width * ratio)
        top = int(rng.integers(0, canvas_height - height + 1))
        left = int(rng.integers(0, canvas_width - width + 1))
        canvas = np.empty((canvas_height, canvas_width, channels), dtype=image.dtype)
        canvas[:] = fill.astype(image.dtype)
        canvas[top : top + height, left : left + width] = image
        return canvas


@dataclass(frozen=True)
class ToFloat(Transform):
    """float32 pixels times ``scale`` (default 1/255: uint8 0..255 becomes 0..1); any layout."""

    scale: float = 1 / 255

    needs_hwc = False

    def __post_init__(self) -> None:
        if not _is_number(self.scale) or not math.isfinite(self.scale):
            raise ValueError(f"ToFloat.scale must be a finite number, got {self.scale!r}")

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return image.astype(np.float32) * np.float32(self.scale)


@dataclass(frozen=True)
class ToCHW(Transform):
    """Channels first, ``(channels, height, width)``, as torch's convolutions expect; goes last."""

    def output_layout(self, layout: str) -> str:
        super().output_layout(layout)
        return "CHW"

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.ascontiguousarray(image.transpose(2, 0, 1))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _factor_range(name: str, value: FactorRange) -> tuple[float, float]:
    """ColorJitter's factor range for one argument (see its docstring), checked."""
    if _is_number(value) and 0 <= value < math.inf:
        return max(0.0, 1.0 - value), 1.0 + value
    pair = isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_number, value))
    if pair and 0 <= value[0] <= value[1] < math.inf:
        return float(value[0]), float(value[1])
    raise ValueError(f"ColorJitter.{name} must be a number >= 0 or a (low, high) pair with 0 <= low <= high, got {value!r}")


def _grey(pixels: np.ndarray) -> np.ndarray:
    """The grey level of each pixel, shape (H, W, 1)."""
    if pixels.shape[2] == 1:
        return pixels
    return (pixels @ _LUMA)[:, :, None]
