"""ImageSet: a folder of images decoded on the Dask workers, transformed there, and turned into arrays.

Analytics Zoo's ImageSet on Dask. ``ImageSet.read`` lists ``root/<label>/<file>`` (or an
unlabeled folder), decodes the files with Pillow into HWC uint8 arrays, and keeps them in a table
with one row per image (columns ``path``, ``label`` when labeled, ``image``) whose index is the
image's stable row id (its position in the listing). With ``npartitions=None`` the table is a
pandas frame decoded in this process; with an integer it is a dask frame, decoded by the workers
and kept in their memory.

Every step is a function of one partition (see :mod:`workbench.feature.frames`), and random
transforms draw from a generator seeded by ``(seed, row id)``, so local and distributed sets give
identical arrays however they are partitioned::

    images = ImageSet.read("photos/", resize=(72, 72), npartitions=8)
    augment = RandomCrop(64, 64) >> HFlip() >> ToFloat() >> ChannelNormalize(MEAN, STD) >> ToCHW()
    X, y = images.transform(augment, seed=0).to_arrays()

Decoding is eager: ``read`` returns once every file is decoded, so a file that cannot be decoded
is known then; it raises ``ValueError`` naming the file and Pillow's reason, or with
``on_error="skip"`` leaves it out, lists it in ``skipped_`` and warns. Transforms are lazy on a
dask frame (they run on the workers when the arrays are made) and immediate on a pandas frame.
"""

from __future__ import annotations

import math
import os
import struct
import warnings
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from workbench.arguments import check_positive_int
from workbench.feature.folders import list_files
from workbench.feature.frames import Frame, frame_to_array, is_distributed, map_partitions
from workbench.feature.image_transforms import (
    CenterCrop,
    ChannelNormalize,
    ColorJitter,
    Expand,
    HFlip,
    Pipeline,
    RandomCrop,
    Resize,
    ToCHW,
    ToFloat,
    Transform,
)

__all__ = ["ImageSet", "IMAGE_EXTENSIONS", "decode_image", "Transform", "Pipeline", "Resize", "CenterCrop", "RandomCrop",
           "HFlip", "ColorJitter", "ChannelNormalize", "Expand", "ToFloat", "ToCHW"]

#: File suffixes ImageSet.read takes (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: Pillow modes images can be read in: all give uint8 HWC arrays (1, 3 or 4 channels).
READ_MODES = ("RGB", "RGBA", "L")
#: What Pillow raises for a file that is not a readable image (truncated, corrupt, unknown format).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
#: Skipped or failing files named in a message; the rest are counted.
_NAMED_FILES = 5
#: show(): pixels between grid cells, caption height, and narrowest cell that gets a caption.
_GAP, _CAPTION_HEIGHT, _CAPTION_MIN_WIDTH = 2, 12, 24


class ImageSet:
    """Images with their file paths and labels, in a pandas (local) or dask (distributed) frame.

    Make one with :meth:`read`. Transform methods return a new ImageSet.

    Attributes:
        classes_: the category names (sorted sub-folder names); empty when unlabeled.
        skipped_: files left out by ``on_error="skip"`` because they could not be decoded.
        layout: "HWC" (as decoded), or "CHW" after a ``ToCHW`` step.
    """

    def __init__(self, frame: Frame, paths: list[str], labels: np.ndarray | None, classes: list[str],
                 skipped: list[str], layout: str = "HWC"):
        self._frame = frame
        self._paths = paths
        self._labels = labels
        self.classes_ = classes
        self.skipped_ = skipped
        self.layout = layout

    @classmethod
    def read(
        cls,
        path: str | os.PathLike,
        labeled: bool = True,
        resize: tuple[int, int] | None = None,
        npartitions: int | None = None,
        on_error: str = "raise",
        mode: str = "RGB",
    ) -> ImageSet:
        """Decode the images under a folder (``root/<label>/<file>``, or any layout if unlabeled).

        Args:
            path: the folder.
            labeled: take each sub-folder of ``path`` as a category (``classes_``, sorted).
            resize: ``(height, width)`` to resize to while reading (Pillow bilinear; JPEGs are
                first decoded at a reduced scale, never below that size, which is faster).
            npartitions: None decodes here into a pandas frame; an integer splits the files into
                that many partitions decoded in parallel by the Dask workers, which keep them.
            on_error: "raise" (a file that cannot be decoded is an error naming it) or "skip"
                (leave such files out, list them in ``skipped_`` and warn).
            mode: the Pillow mode images are converted to: "RGB", "RGBA" or "L" (grey, 1 channel).

        Raises:
            MissingPathError: ``path`` is not a folder.
            ValueError: no image file, an empty category, a file that cannot be decoded (with
                ``on_error="raise"``, or when no file can), or a bad argument.
        """
        resize = _check_read_arguments(resize, npartitions, on_error, mode)
        listing = list_files(path, IMAGE_EXTENSIONS, labeled=labeled, reader="ImageSet.read")
        table = pd.DataFrame({"path": listing.paths})
        if labeled:
            table["label"] = np.asarray(listing.labels, dtype=np.int64)
        decode = partial(_decode_partition, resize=resize, mode=mode)
        if npartitions is None:
            frame = decode(table)
        else:
            frame = map_partitions(dd.from_pandas(table, npartitions=npartitions), decode).persist()

        failures = _collect(map_partitions(frame, _failures))
        if len(failures) == len(table) or (len(failures) and on_error == "raise"):
            hint = "" if len(failures) == len(table) else "; pass on_error='skip' to leave them out"
            raise ValueError(f"ImageSet.read: cannot decode {len(failures)} of {len(table)} files: "
                             f"{_describe_failures(failures)}{hint}")
        frame = map_partitions(frame, _drop_failures)
        if is_distributed(frame):
            frame = frame.persist()
        skipped = list(failures["path"])
        if skipped:
            warnings.warn(f"ImageSet.read: skipped {len(skipped)} of {len(table)} files that cannot be decoded: "
                          f"{_describe_failures(failures)}; their paths are in .skipped_", UserWarning, stacklevel=2)
        kept = ~table["path"].isin(skipped).to_numpy()
        labels = table["label"].to_numpy()[kept] if labeled else None
        return cls(frame, list(table["path"][kept]), labels, list(listing.classes), skipped)

    # -- accessors ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._paths)

    @property
    def paths(self) -> list[str]:
        """The file of each image, in row order."""
        return list(self._paths)

    @property
    def labels(self) -> np.ndarray | None:
        """Each image's category index into ``classes_`` (int64), or None when unlabeled."""
        return None if self._labels is None else self._labels.copy()

    @property
    def frame(self) -> Frame:
        """The table: columns ``path``, ``label`` (when labeled) and ``image``; index = row id."""
        return self._frame

    @property
    def is_distributed(self) -> bool:
        """Whether the images live in a dask frame on the workers (else a pandas frame here)."""
        return is_distributed(self._frame)

    def __repr__(self) -> str:
        where = f"{self._frame.npartitions} partitions on the workers" if self.is_distributed else "local"
        classes = f", {len(self.classes_)} classes" if self._labels is not None else ", unlabeled"
        return f"<ImageSet {len(self)} images{classes}, {self.layout}, {where}>"

    # -- transforms --------------------------------------------------------------------------

    def transform(self, transform: Transform, seed: int | None = None) -> ImageSet:
        """A new ImageSet with ``transform`` (a step or a Pipeline) applied to every image.

        Runs now on a pandas frame, lazily on the workers for a dask frame. An image the
        transform cannot apply to raises ``ValueError`` naming its file (for a dask frame, when
        the images are computed, e.g. in :meth:`to_arrays`).

        Args:
            transform: e.g. ``Resize(64, 64) >> HFlip() >> ToFloat()``.
            seed: the seed of the random steps; image i draws from ``default_rng([seed, i])``,
                so the result does not depend on the partitioning. None draws a fresh seed.
        """
        if not isinstance(transform, Transform):
            raise TypeError(f"ImageSet.transform takes a Transform or Pipeline (Resize, HFlip, ...), got {transform!r}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy)
        elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"ImageSet.transform: seed must be an integer >= 0 or None, got {seed!r}")
        layout = transform.output_layout(self.layout)
        frame = map_partitions(self._frame, partial(_transform_partition, transform=transform, seed=int(seed)))
        return ImageSet(frame, self._paths, self._labels, self.classes_, self.skipped_, layout)

    # -- outputs -----------------------------------------------------------------------------

    def to_arrays(self, dtype: Any = np.float32) -> tuple[Any, Any]:
        """``(X, y)``: the images stacked into ``(n, *image_shape)`` of ``dtype``, and int64 labels.

        numpy arrays for a local set; for a distributed set, dask arrays with known chunks (one
        per partition) over transformed images the workers keep (pending transforms run here,
        once). ``y`` is None when unlabeled.

        Raises:
            ValueError: the images differ in shape (naming a file of each shape).
        """
        dtype = np.dtype(dtype)
        frame = self._frame.persist() if self.is_distributed else self._frame
        shapes = _collect(map_partitions(frame, _image_shapes))
        row_shape = self._common_shape(shapes)
        features = frame_to_array(frame, partial(_stack_images, row_shape=row_shape, dtype=dtype), row_shape, dtype)
        labels = None if self._labels is None else frame_to_array(frame, _label_array, (), np.int64)
        return features, labels

    def _common_shape(self, shapes: pd.Series) -> tuple[int, ...]:
        """The shape every image has; a ValueError naming a file that differs otherwise."""
        first = shapes.iloc[0]
        differs = np.flatnonzero([shape != first for shape in shapes])
        if len(differs):
            odd = differs[0]
            raise ValueError(
                f"to_arrays: images differ in shape: {self._paths[0]!r} is {first} but {self._paths[odd]!r} is "
                f"{shapes.iloc[odd]} ({len(differs)} of {len(shapes)} images differ from the first); "
                "add Resize(height, width) to the transforms (or read with resize=)"
            )
        return tuple(first)

    def show(self, n: int = 16, columns: int | None = None) -> Image.Image:
        """A grid of the first ``n`` images as one Pillow image (Jupyter displays it).

        Cells are as large as the largest image shown, ``columns`` to a row (default about
        square), 2 pixels apart; a labeled set gets its label names in a 12-pixel strip under
        each cell when cells are at least 24 pixels wide. Float images are stretched from their
        own minimum and maximum to black and white.
        """
        check_positive_int("n", n)
        if columns is not None:
            check_positive_int("columns", columns)
        rows = _first_rows(self._frame, min(n, len(self)))
        tiles = [_displayable(image, self.layout) for image in rows["image"]]
        columns = columns or math.ceil(math.sqrt(len(tiles)))
        cell_width = max(tile.width for tile in tiles)
        cell_height = max(tile.height for tile in tiles)
        captioned = self._labels is not None and cell_width >= _CAPTION_MIN_WIDTH
        step_x, step_y = cell_width + _GAP, cell_height + _GAP + (_CAPTION_HEIGHT if captioned else 0)
        grid = Image.new("RGB", (columns * step_x, math.ceil(len(tiles) / columns) * step_y))
        draw = ImageDraw.Draw(grid)
        for position, tile in enumerate(tiles):
            left, top = (position % columns) * step_x, (position // columns) * step_y
            grid.paste(tile, (left, top))
            if captioned:
                name = self.classes_[rows["label"].iloc[position]]
                draw.text((left, top + cell_height), name[: cell_width // 6], fill=(255, 255, 255))
        return grid


def _check_read_arguments(resize: Any, npartitions: Any, on_error: Any, mode: Any) -> tuple[int, int] | None:
    """ImageSet.read's options checked; returns ``resize`` as a pair of ints (or None)."""
    if npartitions is not None:
        check_positive_int("npartitions", npartitions)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"ImageSet.read: on_error must be 'raise' or 'skip', got {on_error!r}")
    if mode not in READ_MODES:
        raise ValueError(f"ImageSet.read: mode must be one of {READ_MODES}, got {mode!r}")
    if resize is None:
        return None
    if not isinstance(resize, (tuple, list)) or len(resize) != 2:
        raise ValueError(f"ImageSet.read: resize must be a (height, width) pair, got {resize!r}")
    check_positive_int("resize height", resize[0])
    check_positive_int("resize width", resize[1])
    return int(resize[0]), int(resize[1])


# -- partition functions (run on the workers for dask frames) --------------------------------


def _collect(frame: Frame) -> pd.DataFrame | pd.Series:
    return frame.compute() if isinstance(frame, (dd.DataFrame, dd.Series)) else frame


def _objects(values: list, index: pd.Index) -> pd.Series:
    """A Series holding ``values`` as they are (arrays stay one object per row)."""
    column = np.empty(len(values), dtype=object)
    for position, value in enumerate(values):
        column[position] = value
    return pd.Series(column, index=index, dtype=object)


def decode_image(path: str, resize: tuple[int, int] | None = None, mode: str = "RGB") -> np.ndarray:
    """One image file as an HWC uint8 array in Pillow ``mode``, optionally resized to ``(height, width)``.

    A JPEG to be resized is decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale that is not
    smaller than the target (Pillow's ``draft``), then resized exactly (bilinear).
    """
    with Image.open(path) as image:
        if resize is not None and image.format == "JPEG":
            image.draft(image.mode, (resize[1], resize[0]))
        converted = image.convert(mode)
    if resize is not None:
        converted = converted.resize((resize[1], resize[0]), Image.BILINEAR)
    pixels = np.asarray(converted)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _decode_partition(part: pd.DataFrame, resize: tuple[int, int] | None, mode: str) -> pd.DataFrame:
    """The partition with its files decoded (``image``), or the reason one is not (``error``)."""
    images, errors = [], []
    for path in part["path"]:
        try:
            images.append(decode_image(path, resize, mode))
            errors.append(None)
        except _DECODE_ERRORS as error:
            images.append(None)
            errors.append(f"{type(error).__name__}: {error}")
    return part.assign(image=_objects(images, part.index), error=_objects(errors, part.index))


def _failures(part: pd.DataFrame) -> pd.DataFrame:
    return part.loc[part["error"].notna(), ["path", "error"]]


def _drop_failures(part: pd.DataFrame) -> pd.DataFrame:
    return part[part["error"].isna()].drop(columns="error")


def _describe_failures(failures: pd.DataFrame) -> str:
    named = [f"{path!r} ({error})" for path, error in zip(failures["path"][:_NAMED_FILES], failures["error"])]
    more = len(failures) - len(named)
    return ", ".join(named) + (f" and {more} more" if more else "")


def _transform_partition(part: pd.DataFrame, transform: Transform, seed: int) -> pd.DataFrame:
    images = [_transform_one(transform, image, np.random.default_rng([seed, int(row)]), path)
              for row, path, image in zip(part.index, part["path"], part["image"])]
    return part.assign(image=_objects(images, part.index))


def _transform_one(transform: Transform, image: np.ndarray, rng: np.random.Generator, path: str) -> np.ndarray:
    try:
        return transform(image, rng)
    except (ValueError, TypeError) as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"{path!r} (image of shape {image.shape}): {error}") from error


def _image_shapes(part: pd.DataFrame) -> pd.Series:
    return _objects([image.shape for image in part["image"]], part.index)


def _stack_images(part: pd.DataFrame, row_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if not len(part):
        return np.empty((0, *row_shape), dtype=dtype)
    return np.stack(list(part["image"])).astype(dtype, copy=False)


def _label_array(part: pd.DataFrame) -> np.ndarray:
    return part["label"].to_numpy(dtype=np.int64)


# -- show() helpers ---------------------------------------------------------------------------


def _first_rows(frame: Frame, n: int) -> pd.DataFrame:
    """The first ``n`` rows, computing only the partitions that hold them."""
    if not is_distributed(frame):
        return frame.iloc[:n]
    parts, found = [], 0
    for index in range(frame.npartitions):
        if found >= n:
            break
        parts.append(frame.get_partition(index).compute().iloc[: n - found])
        found += len(parts[-1])
    return pd.concat(parts)


def _displayable(image: np.ndarray, layout: str) -> Image.Image:
    """An image array (any dtype, HWC or CHW) as an 8-bit Pillow image for display."""
    pixels = image.transpose(1, 2, 0) if layout == "CHW" else image
    if pixels.dtype != np.uint8:
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels.astype(np.float32) - low) * (255 / (high - low)) if high > low else np.zeros_like(pixels, np.float32)
        pixels = np.rint(scaled).astype(np.uint8)
    channels = pixels.shape[2]
    if channels not in (1, 3, 4):
        raise ValueError(f"show: images of {channels} channels cannot be displayed (1, 3 or 4 are)")
    return Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if channels == 1 else pixels)).convert("RGB")
