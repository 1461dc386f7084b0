"""ImageSet throughput: decode + resize + normalize a folder of JPEGs into arrays.

Anchor (same machine, same files, same run): a plain single-process Pillow loop (open, convert
to RGB, resize, normalize with numpy, stack). Rows:
- ImageSet local (npartitions=None): the same work in this process; differs from the loop by
  decoding JPEGs at a reduced scale (Pillow's draft) before the exact resize;
- ImageSet on 2 workers: decoding and transforms in parallel on a 2-worker local cluster, timed
  until the arrays are computed on the workers, and until they are on the driver.
With 2 cores the 2 workers should approach 2x the local ImageSet.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import wait
from PIL import Image

import workbench as wb
from workbench.feature import ImageSet
from workbench.feature.image import ChannelNormalize, ToFloat

FILES, CLASSES, SOURCE_SIZE, TARGET, REPEATS, NPARTITIONS = 2000, 4, 256, 64, 5, 8
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_images(root: Path) -> list[Path]:
    """FILES JPEGs of SOURCE_SIZE pixels: a per-class colour gradient plus noise."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:SOURCE_SIZE, 0:SOURCE_SIZE]
    paths = []
    for index in range(FILES):
        label = index % CLASSES
        base = np.stack([rows, columns, (rows + columns) // 2], axis=2) * (label + 1) % 256
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = root / f"class{label}" / f"{index:05d}.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def pillow_loop(paths: list[Path]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    mean, std = np.float32(MEAN), np.float32(STD)
    images = []
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB").resize((TARGET, TARGET), Image.BILINEAR))
        images.append((pixels.astype(np.float32) / 255 - mean) / std)
    return np.stack(images), time.perf_counter() - start


def imageset(root: Path, npartitions: int | None) -> tuple[np.ndarray, float, float]:
    """The arrays, seconds until computed (on the workers if distributed), seconds until on the driver."""
    start = time.perf_counter()
    images = ImageSet.read(root, resize=(TARGET, TARGET), npartitions=npartitions)
    features, _ = images.transform(ToFloat() >> ChannelNormalize(MEAN, STD)).to_arrays()
    if npartitions is None:
        seconds = time.perf_counter() - start
        return features, seconds, seconds
    features = features.persist()
    wait(features)
    computed = time.perf_counter() - start
    features = features.compute()
    return features, computed, time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, wb.init(workers=2):
        root = Path(folder)
        paths = sorted(write_images(root))
        megabytes = sum(p.stat().st_size for p in paths) / 2**20
        loop_times, local_times, worker_times, driver_times = [], [], [], []
        for _ in range(REPEATS):
            reference, seconds = pillow_loop(paths)
            loop_times.append(seconds)
            local, seconds, _ = imageset(root, None)
            local_times.append(seconds)
            distributed, on_workers, on_driver = imageset(root, NPARTITIONS)
            worker_times.append(on_workers)
            driver_times.append(on_driver)
        assert distributed.shape == reference.shape == (FILES, TARGET, TARGET, 3)
        np.testing.assert_array_equal(distributed, local)
        gap = float(np.abs(local - reference).mean())

    loop_rate = FILES / statistics.median(loop_times)
    local_rate = FILES / statistics.median(local_times)
    worker_rate = FILES / statistics.median(worker_times)
    driver_rate = FILES / statistics.median(driver_times)
    print(f"image features: {FILES} JPEGs of {SOURCE_SIZE}x{SOURCE_SIZE} ({megabytes:.0f} MiB) -> "
          f"{TARGET}x{TARGET} float32, normalized; medians of {REPEATS}")
    print(f"  plain Pillow loop, one process        {loop_rate:8.0f} images/s")
    print(f"  ImageSet local (draft + resize)       {local_rate:8.0f} images/s   ratio {local_rate / loop_rate:.2f}x"
          f"   (mean |difference| to the loop {gap:.3f} in normalized units)")
    print(f"  ImageSet 2 workers, arrays computed   {worker_rate:8.0f} images/s   ratio {worker_rate / loop_rate:.2f}x")
    print(f"  ImageSet 2 workers, arrays on driver  {driver_rate:8.0f} images/s   ratio {driver_rate / loop_rate:.2f}x")


if __name__ == "__main__":
    main()
