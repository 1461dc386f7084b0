"""ImageSet and image transforms: reading folders, transforms against Pillow/numpy, local = distributed."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import workbench as wb
from workbench.data import MissingPathError
from workbench.feature import ImageSet
from workbench.feature.image import (
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
)

HEIGHT, WIDTH = 20, 28
CLASSES = ["blue", "green", "red"]
RNG = np.random.default_rng  # RNG(seed): a fresh generator, for test data and for calling transforms


def noise(seed: int, shape: tuple[int, ...] = (HEIGHT, WIDTH, 3)) -> np.ndarray:
    return RNG(seed).integers(0, 256, shape, dtype=np.uint8)


def write(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """3 categories of 4 images each (2 PNG, 2 JPEG), all HEIGHT x WIDTH RGB noise."""
    root = tmp_path / "images"
    for label, name in enumerate(CLASSES):
        for index in range(4):
            write(root / name / f"{index}.{'png' if index % 2 else 'jpg'}", noise(10 * label + index))
    return root


def pillow_pixels(path: str, mode: str = "RGB") -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert(mode))
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def augment() -> Pipeline:
    return Pipeline([Expand(ratio=(1.0, 1.5), fill=(10, 20, 30)), Resize(24, 24), RandomCrop(16, 16), HFlip(),
                     ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3), ToFloat(),
                     ChannelNormalize([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]), ToCHW()])


# -- reading -------------------------------------------------------------------------------------


def test_read_labeled_folder_decodes_every_file_like_pillow(folder):
    images = ImageSet.read(folder)
    assert images.classes_ == CLASSES
    assert len(images) == 12
    assert images.paths == sorted(str(p) for p in folder.rglob("*.*"))  # category, then file name
    np.testing.assert_array_equal(images.labels, np.repeat([0, 1, 2], 4))
    features, labels = images.to_arrays(dtype=np.uint8)
    np.testing.assert_array_equal(features, np.stack([pillow_pixels(p) for p in images.paths]))
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 4))
    assert labels.dtype == np.int64 and features.shape == (12, HEIGHT, WIDTH, 3)
    assert images.skipped_ == [] and not images.is_distributed
    assert repr(images) == "<ImageSet 12 images, 3 classes, HWC, local>"


def test_read_unlabeled_folder_takes_files_at_any_depth(tmp_path):
    write(tmp_path / "top.png", noise(1))
    write(tmp_path / "deeper" / "inside.bmp", noise(2))
    (tmp_path / "notes.txt").write_text("not an image")
    images = ImageSet.read(tmp_path, labeled=False)
    assert images.paths == [str(tmp_path / "deeper" / "inside.bmp"), str(tmp_path / "top.png")]
    assert images.labels is None and images.classes_ == []
    features, labels = images.to_arrays()
    assert labels is None
    np.testing.assert_array_equal(features, np.stack([noise(2), noise(1)]).astype(np.float32))


def test_grey_mode_gives_one_channel(folder):
    images = ImageSet.read(folder, mode="L")
    features, _ = images.to_arrays(dtype=np.uint8)
    assert features.shape == (12, HEIGHT, WIDTH, 1)
    np.testing.assert_array_equal(features, np.stack([pillow_pixels(p, "L") for p in images.paths]))


def test_resize_on_read_matches_pillow(tmp_path):
    rows, columns = np.mgrid[0:96, 0:128]
    smooth = np.stack([rows * 2, columns * 2, (rows + columns)], axis=2).astype(np.uint8)  # a gentle gradient
    png, jpeg = write(tmp_path / "a" / "big.png", smooth), write(tmp_path / "b" / "big.jpg", smooth)
    features, _ = ImageSet.read(tmp_path, resize=(24, 32)).to_arrays(dtype=np.uint8)
    assert features.shape == (2, 24, 32, 3)
    # PNG: the plain Pillow resize; JPEG: decoded at 1/4 scale (96x128 -> 24x32) first, as documented
    np.testing.assert_array_equal(features[0], np.asarray(Image.open(png).convert("RGB").resize((32, 24), Image.BILINEAR)))
    draft = Image.open(jpeg)
    draft.draft("RGB", (32, 24))
    assert draft.size == (32, 24)
    np.testing.assert_array_equal(features[1], np.asarray(draft.convert("RGB").resize((32, 24), Image.BILINEAR)))
    full = np.asarray(Image.open(jpeg).convert("RGB").resize((32, 24), Image.BILINEAR)).astype(int)
    assert np.abs(features[1].astype(int) - full).mean() < 3  # the reduced decode costs little quality


def test_local_and_distributed_sets_give_identical_arrays(folder, context):
    local = ImageSet.read(folder, resize=(18, 22)).transform(augment(), seed=7).to_arrays()
    for npartitions in (2, 5):
        images = ImageSet.read(folder, resize=(18, 22), npartitions=npartitions)
        assert images.is_distributed and images.frame.npartitions == npartitions
        features, labels = images.transform(augment(), seed=7).to_arrays()
        assert features.chunks[0] == labels.chunks[0] and sum(features.chunks[0]) == 12
        np.testing.assert_array_equal(features.compute(), local[0])
        np.testing.assert_array_equal(labels.compute(), local[1])
    assert local[0].shape == (12, 3, 16, 16) and local[0].dtype == np.float32


def test_transform_returns_a_new_set_and_leaves_the_original(folder):
    images = ImageSet.read(folder)
    before, _ = images.to_arrays()
    flipped = images.transform(HFlip(p=1.0))
    assert flipped is not images and flipped.paths == images.paths
    np.testing.assert_array_equal(images.to_arrays()[0], before)
    np.testing.assert_array_equal(flipped.to_arrays()[0], before[:, :, ::-1])


def test_random_transforms_are_reproducible_and_depend_on_the_seed(folder):
    images = ImageSet.read(folder)
    random_steps = RandomCrop(10, 10) >> HFlip() >> ColorJitter(brightness=0.5)
    first, _ = images.transform(random_steps, seed=1).to_arrays()
    again, _ = images.transform(random_steps, seed=1).to_arrays()
    other, _ = images.transform(random_steps, seed=2).to_arrays()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    flips = [np.array_equal(out, img[:, ::-1]) for out, img in
             zip(images.transform(HFlip(), seed=3).to_arrays()[0], images.to_arrays()[0])]
    assert 0 < sum(flips) < len(flips)  # p=0.5 flips some images and not others


# -- transforms against Pillow and numpy ----------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resize_matches_pillow_bilinear(channels):
    pixels = noise(5, (HEIGHT, WIDTH, channels))
    image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
    expected = np.asarray(image.resize((11, 7), Image.BILINEAR)).reshape(7, 11, channels)
    np.testing.assert_array_equal(Resize(7, 11)(pixels, RNG(0)), expected)


def test_resize_of_float_images_matches_pillow_per_channel():
    pixels = RNG(1).random((HEIGHT, WIDTH, 2), dtype=np.float32)
    out = Resize(30, 9)(pixels, RNG(0))
    for channel in range(2):
        expected = np.asarray(Image.fromarray(pixels[:, :, channel]).resize((9, 30), Image.BILINEAR))
        np.testing.assert_array_equal(out[:, :, channel], expected)
    assert out.dtype == np.float32


def test_center_crop_matches_slicing():
    pixels = noise(2)
    np.testing.assert_array_equal(CenterCrop(11, 20)(pixels, RNG(0)), pixels[4:15, 4:24])
    np.testing.assert_array_equal(CenterCrop(HEIGHT, WIDTH)(pixels, RNG(0)), pixels)


def test_random_crop_takes_every_window_position():
    pixels = np.arange(4 * 5 * 1, dtype=np.uint8).reshape(4, 5, 1)
    corners = set()
    for seed in range(200):
        window = RandomCrop(3, 3)(pixels, RNG(seed))
        corner = int(window[0, 0, 0])
        top, left = divmod(corner, 5)
        np.testing.assert_array_equal(window, pixels[top : top + 3, left : left + 3])
        corners.add((top, left))
    assert corners == {(top, left) for top in range(2) for left in range(3)}


def test_hflip_with_probability_one_and_zero():
    pixels = noise(3)
    np.testing.assert_array_equal(HFlip(p=1.0)(pixels, RNG(0)), pixels[:, ::-1])
    np.testing.assert_array_equal(HFlip(p=0.0)(pixels, RNG(0)), pixels)


def test_color_jitter_with_fixed_factors_matches_the_formulas():
    pixels = noise(4)
    values = pixels.astype(np.float32)
    luma = np.float32([0.299, 0.587, 0.114])

    def as_uint8(x):
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    np.testing.assert_array_equal(ColorJitter(brightness=(0.5, 0.5))(pixels, RNG(0)), as_uint8(values * 0.5))
    mean = (values @ luma).mean()
    np.testing.assert_allclose(ColorJitter(contrast=(2.0, 2.0))(pixels, RNG(0)).astype(int),
                               as_uint8((values - mean) * 2 + mean).astype(int), atol=1)
    grey = ColorJitter(saturation=(0.0, 0.0))(pixels, RNG(0))
    np.testing.assert_allclose(grey.astype(int), np.repeat(as_uint8(values @ luma)[:, :, None], 3, axis=2).astype(int), atol=1)
    np.testing.assert_array_equal(ColorJitter()(pixels, RNG(0)), pixels)  # all factors 1


def test_color_jitter_draws_factors_within_the_range():
    pixels = np.full((4, 4, 3), 100, dtype=np.uint8)
    brightness = {int(ColorJitter(brightness=0.2)(pixels, RNG(seed))[0, 0, 0]) for seed in range(100)}
    assert min(brightness) >= 80 and max(brightness) <= 120 and len(brightness) > 20


def test_channel_normalize_matches_numpy():
    pixels = noise(6)
    mean, std = [120.0, 110.5, 100.0], [60.0, 55.0, 50.25]
    expected = (pixels.astype(np.float32) - np.float32(mean)) / np.float32(std)
    out = ChannelNormalize(mean, std)(pixels, RNG(0))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="2 values per statistic but the image has 3 channels"):
        ChannelNormalize([1, 2], [1, 1])(pixels, RNG(0))


def test_expand_places_the_image_on_a_filled_canvas():
    pixels = noise(7, (6, 8, 3))
    out = Expand(ratio=2.0, fill=(1, 2, 3))(pixels, RNG(0))
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    placed = [(top, left) for top in range(7) for left in range(9) if np.array_equal(out[top : top + 6, left : left + 8], pixels)]
    assert len(placed) == 1
    top, left = placed[0]
    outside = np.ones((12, 16), dtype=bool)
    outside[top : top + 6, left : left + 8] = False
    assert (out[outside] == [1, 2, 3]).all()
    sizes = {Expand(ratio=(1.0, 3.0))(pixels, RNG(seed)).shape for seed in range(20)}
    assert len(sizes) > 5 and all(6 <= h <= 18 and 8 <= w <= 24 for h, w, _ in sizes)
    with pytest.raises(ValueError, match="3 fill values but the image has 1 channels"):
        Expand(ratio=2.0)(pixels[:, :, :1], RNG(0))


def test_to_float_and_to_chw():
    pixels = noise(8)
    np.testing.assert_array_equal(ToFloat()(pixels, RNG(0)), pixels.astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(ToFloat(scale=2.0)(pixels, RNG(0)), pixels.astype(np.float32) * 2)
    np.testing.assert_array_equal(ToCHW()(pixels, RNG(0)), pixels.transpose(2, 0, 1))


def test_pipelines_compose_and_flatten():
    steps = [Resize(8, 8), HFlip(p=1.0), ToFloat()]
    chained = Resize(8, 8) >> HFlip(p=1.0) >> ToFloat()
    assert chained == Pipeline(steps) == Pipeline([Pipeline(steps[:2]), steps[2]])
    assert chained.steps == tuple(steps)
    pixels = noise(9)
    expected = ToFloat()(HFlip(p=1.0)(Resize(8, 8)(pixels, RNG(0)), RNG(0)), RNG(0))
    np.testing.assert_array_equal(chained(pixels, RNG(0)), expected)
    with pytest.raises(TypeError, match="Pipeline steps must be Transforms"):
        Pipeline([Resize(8, 8), "flip"])


# -- bad input ----------------------------------------------------------------------------------------


@pytest.fixture
def broken_folder(folder) -> Path:
    """``folder`` plus a text file named .jpg and a PNG cut in half."""
    (folder / "red" / "text.jpg").write_text("this is not a JPEG")
    intact = (folder / "red" / "1.png").read_bytes()
    (folder / "green" / "cut.png").write_bytes(intact[: len(intact) // 2])
    return folder


def test_undecodable_files_are_named_with_pillow_reason(broken_folder):
    with pytest.raises(ValueError, match=r"cannot decode 2 of 14 files") as raised:
        ImageSet.read(broken_folder)
    message = str(raised.value)
    assert "cut.png' (OSError: image file is truncated" in message
    assert "text.jpg' (UnidentifiedImageError: cannot identify image file" in message
    assert "on_error='skip'" in message


@pytest.mark.parametrize("npartitions", [None, 3])
def test_skip_leaves_out_undecodable_files_and_reports_them(broken_folder, npartitions, context):
    with pytest.warns(UserWarning, match=r"skipped 2 of 14 files that cannot be decoded: .*cut\.png.*text\.jpg") as caught:
        images = ImageSet.read(broken_folder, on_error="skip", npartitions=npartitions)
    assert len(caught) == 1
    assert images.skipped_ == [str(broken_folder / "green" / "cut.png"), str(broken_folder / "red" / "text.jpg")]
    assert len(images) == 12 and not set(images.skipped_) & set(images.paths)
    features, labels = images.to_arrays(dtype=np.uint8)
    features, labels = np.asarray(features), np.asarray(labels)
    np.testing.assert_array_equal(features, np.stack([pillow_pixels(p) for p in images.paths]))
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 4))


def test_a_folder_of_only_undecodable_files_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    for index in range(7):
        (tmp_path / "a" / f"fake{index}.png").write_text("text")
    with pytest.raises(ValueError, match=r"cannot decode 7 of 7 files: .*fake0\.png.*fake4\.png' \([^)]*\) and 2 more$"):
        ImageSet.read(tmp_path, on_error="skip")


@pytest.mark.parametrize("npartitions", [None, 2])
def test_images_of_different_shapes_are_named_at_to_arrays(folder, npartitions, context):
    odd = write(folder / "red" / "odd.png", noise(0, (HEIGHT + 1, WIDTH, 3)))
    images = ImageSet.read(folder, npartitions=npartitions)
    with pytest.raises(ValueError, match=rf"{re.escape(str(odd))}' is \(21, 28, 3\).*add Resize\(height, width\)"):
        images.to_arrays()
    assert np.asarray(images.transform(Resize(8, 8)).to_arrays()[0]).shape == (13, 8, 8, 3)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(MissingPathError, match="absent"):
        ImageSet.read(tmp_path / "absent")
    with pytest.raises(ValueError, match="no category sub-folders"):
        ImageSet.read(tmp_path)
    with pytest.raises(ValueError, match=r"no \.jpg/.*file under"):
        ImageSet.read(tmp_path, labeled=False)
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match=r"category folder .*cats' holds no"):
        ImageSet.read(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda: Resize(-1, 4), r"Resize\.height must be a positive integer, got -1"),
    (lambda: Resize(4, 0), r"Resize\.width must be a positive integer, got 0"),
    (lambda: CenterCrop(2.5, 4), r"CenterCrop\.height must be a positive integer, got 2\.5"),
    (lambda: RandomCrop(3, -2), r"RandomCrop\.width must be a positive integer, got -2"),
    (lambda: HFlip(p=1.5), r"HFlip\.p must be a probability in \[0, 1\], got 1\.5"),
    (lambda: ColorJitter(brightness=-0.1), r"ColorJitter\.brightness must be a number >= 0.*got -0\.1"),
    (lambda: ColorJitter(contrast=(2, 1)), r"ColorJitter\.contrast .*low <= high, got \(2, 1\)"),
    (lambda: ChannelNormalize([0, 0, 0], [1, 1]), r"as many means as stds"),
    (lambda: ChannelNormalize([0], [0]), r"stds > 0"),
    (lambda: Expand(ratio=0.5), r"Expand\.ratio must be >= 1.*got 0\.5"),
    (lambda: Expand(fill="grey"), r"Expand\.fill must be a number"),
    (lambda: ToFloat(scale=float("nan")), r"ToFloat\.scale must be a finite number"),
])
def test_bad_transform_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("npartitions", [None, 2])
def test_a_crop_larger_than_the_image_names_sizes_and_file(folder, npartitions, context):
    images = ImageSet.read(folder, npartitions=npartitions)
    expected = (r"(blue|green|red)/\d\.(jpg|png)' \(image of shape \(20, 28, 3\)\): "
                r"CenterCrop\(height=24, width=24\) is larger than the image \(20x28\)")
    with pytest.raises(ValueError, match=expected):
        images.transform(CenterCrop(24, 24)).to_arrays()  # distributed sets fail when computed


@pytest.mark.parametrize("arguments, message", [
    ({"resize": (0, 5)}, r"resize height must be a positive integer, got 0"),
    ({"resize": 32}, r"resize must be a \(height, width\) pair, got 32"),
    ({"npartitions": 0}, r"npartitions must be a positive integer, got 0"),
    ({"on_error": "ignore"}, r"on_error must be 'raise' or 'skip', got 'ignore'"),
    ({"mode": "CMYK"}, r"mode must be one of \('RGB', 'RGBA', 'L'\), got 'CMYK'"),
])
def test_bad_read_arguments_are_refused(folder, arguments, message):
    with pytest.raises(ValueError, match=message):
        ImageSet.read(folder, **arguments)


def test_bad_transform_calls_are_refused(folder):
    images = ImageSet.read(folder)
    with pytest.raises(TypeError, match="takes a Transform or Pipeline"):
        images.transform("flip")
    with pytest.raises(ValueError, match="seed must be an integer >= 0 or None, got -1"):
        images.transform(HFlip(), seed=-1)
    with pytest.raises(ValueError, match=r"Resize\(height=8, width=8\) works on HWC images, but they are CHW"):
        images.transform(ToCHW() >> Resize(8, 8))
    with pytest.raises(ValueError, match="but they are CHW after ToCHW"):
        images.transform(ToCHW()).transform(HFlip())
    assert images.transform(ToCHW()).transform(ToFloat()).to_arrays()[0].shape == (12, 3, HEIGHT, WIDTH)


# -- show ---------------------------------------------------------------------------------------------


def test_show_lays_out_a_grid_with_captions(folder):
    images = ImageSet.read(folder, resize=(24, 30))
    grid = images.show(n=5)  # 3 columns, 2 rows of 24x30 cells, 2 px apart, 12 px captions
    assert isinstance(grid, Image.Image)
    assert grid.size == (3 * (30 + 2), 2 * (24 + 2 + 12))
    np.testing.assert_array_equal(np.asarray(grid)[:24, :30], images.to_arrays(dtype=np.uint8)[0][0])
    assert images.show(n=100, columns=4).size == (4 * 32, math.ceil(12 / 4) * 38)


def test_show_without_captions_and_of_float_chw_images(folder, context):
    images = ImageSet.read(folder, labeled=False, npartitions=3)
    assert images.show(n=4).size == (2 * (WIDTH + 2), 2 * (HEIGHT + 2))
    normalized = images.transform(ToFloat() >> ChannelNormalize([0.5], [0.1]) >> ToCHW()).show(n=1)
    first = np.asarray(images.frame.get_partition(0).compute()["image"].iloc[0]).astype(np.float32)
    stretched = np.rint((first - first.min()) * (255 / (first.max() - first.min())))
    np.testing.assert_allclose(np.asarray(normalized)[:HEIGHT, :WIDTH].astype(int), stretched.astype(int), atol=1)


# -- end to end ---------------------------------------------------------------------------------------


def stripes(seed: int, kind: str, size: int) -> np.ndarray:
    """A ``size`` x ``size`` image of horizontal or vertical stripes, or a flat colour, plus noise."""
    rng = RNG(seed)
    colour = rng.integers(0, 256, 3)
    other = (colour + rng.integers(96, 160, 3)) % 256  # far enough from colour for the stripes to show
    period, phase = int(rng.integers(3, 6)), int(rng.integers(0, 6))
    rows, columns = np.mgrid[0:size, 0:size]
    along = {"horizontal": rows, "vertical": columns, "flat": np.zeros_like(rows)}[kind]
    on = ((along + phase) // period) % 2 == 1 if kind != "flat" else np.zeros_like(rows, dtype=bool)
    pixels = np.where(on[:, :, None], other, colour) + rng.normal(0, 12, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def test_a_small_cnn_learns_stripe_orientation_from_an_image_folder(tmp_path, context):
    import torch

    kinds = ["flat", "horizontal", "vertical"]
    for split, count, offset in (("train", 60, 0), ("test", 20, 10_000)):
        for kind in kinds:
            for index in range(count):
                size = int(RNG(offset + index).integers(18, 26))
                write(tmp_path / split / kind / f"{index}.png", stripes(offset + 97 * kinds.index(kind) + index, kind, size))

    prepare = Resize(18, 18) >> ToFloat() >> ChannelNormalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    train = ImageSet.read(tmp_path / "train", npartitions=2)
    test = ImageSet.read(tmp_path / "test", npartitions=2)
    x_train, y_train = train.transform(prepare >> RandomCrop(16, 16) >> HFlip() >> ToCHW(), seed=0).to_arrays()
    x_test, y_test = test.transform(prepare >> CenterCrop(16, 16) >> ToCHW()).to_arrays()
    assert train.classes_ == kinds and x_train.shape == (180, 3, 16, 16)

    def make_cnn() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 3))

    estimator = wb.Estimator.from_torch(make_cnn, optimizer="adam", optimizer_kwargs={"lr": 0.01},
                                        loss="cross_entropy", metrics=["accuracy"])
    estimator.fit((x_train, y_train), epochs=15, batch_size=30, verbose=False)
    assert estimator.evaluate((x_test, y_test))["accuracy"] >= 0.9
