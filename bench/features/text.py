"""TextSet throughput (documents/s) against Keras' TextVectorization on the same corpus.

Both sides go from raw text to padded index sequences with a fitted vocabulary of the same
size: TextSet runs tokenize/normalize/word2idx (fit)/shape_sequence/to_arrays, computed, on a
2-worker local cluster (the text already in a persisted dask frame) and on a pandas frame in
this process; Keras runs ``layer.adapt(texts)`` then ``layer(texts)``. The outputs are checked
to be identical before timing. The bar: TextSet distributed >= 1.0x TextVectorization.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from distributed import wait  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.feature import TextSet  # noqa: E402

DOCUMENTS, MEAN_WORDS, DISTINCT_WORDS, VOCABULARY, LENGTH, PARTITIONS, REPEATS = 200_000, 40, 50_000, 20_000, 64, 8, 3
KERAS = "Keras TextVectorization adapt + call"


def make_corpus() -> list[str]:
    """Documents of about MEAN_WORDS words drawn from a Zipf law, with capitals and punctuation to clean."""
    rng = np.random.default_rng(0)
    spellings = [f"word{i}" for i in range(DISTINCT_WORDS)]
    variants = [s.capitalize() for s in spellings] + [s + "," for s in spellings] + [s + "." for s in spellings]
    words = pa.array(spellings + variants)
    sizes = rng.integers(MEAN_WORDS // 2, MEAN_WORDS * 3 // 2 + 1, DOCUMENTS)
    ranks = np.minimum(rng.zipf(1.3, sizes.sum()), DISTINCT_WORDS) - 1
    spelling = rng.choice(4, sizes.sum(), p=[0.8, 0.1, 0.05, 0.05]) * DISTINCT_WORDS  # plain, Capital, comma, period
    offsets = pa.array(np.concatenate(([0], np.cumsum(sizes))), pa.int32())
    documents = pc.binary_join(pa.ListArray.from_arrays(offsets, words.take(pa.array(ranks + spelling))), " ")
    return documents.to_pylist()


def textset_arrays(texts: TextSet) -> np.ndarray:
    shaped = texts.tokenize().normalize().word2idx(max_words_num=VOCABULARY).shape_sequence(LENGTH, "post")
    features = shaped.to_arrays()[0]
    return features.compute() if texts.is_distributed else features


def timed(function) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    import keras

    # the corpus travels inside the task graph of the persisted frame; dask warns about its size
    warnings.filterwarnings("ignore", message="Sending large graph")
    corpus = make_corpus()
    table = pd.DataFrame({"text": pd.Series(corpus, dtype="str")})

    def keras_arrays() -> np.ndarray:
        layer = keras.layers.TextVectorization(max_tokens=VOCABULARY + 2, output_sequence_length=LENGTH,
                                               standardize="lower_and_strip_punctuation", split="whitespace")
        layer.adapt(corpus)
        return np.asarray(layer(corpus))

    with wb.init(workers=2):
        frame = wb.data.from_pandas(table, npartitions=PARTITIONS).persist()
        wait(frame)
        runs = {
            KERAS: keras_arrays,
            f"TextSet, 2 workers ({PARTITIONS} partitions)": lambda: textset_arrays(TextSet.from_dataframe(frame)),
            "TextSet, local (pandas, one process)": lambda: textset_arrays(TextSet.from_dataframe(table)),
        }
        times: dict[str, list[float]] = {label: [] for label in runs}
        for repeat in range(REPEATS):
            outputs = []
            for label, run in runs.items():
                seconds, output = timed(run)
                times[label].append(seconds)
                outputs.append(output)
            if repeat == 0 and not all(np.array_equal(output, outputs[0]) for output in outputs):
                raise AssertionError("TextSet and TextVectorization made different sequences")

    rates = {label: DOCUMENTS / statistics.median(seconds) for label, seconds in times.items()}
    print(f"text pipeline: {DOCUMENTS:,} documents of ~{MEAN_WORDS} words ({DISTINCT_WORDS:,} distinct), "
          f"vocabulary {VOCABULARY:,}, length {LENGTH}, medians of {REPEATS}")
    for label, rate in rates.items():
        ratio = f"   ratio {rate / rates[KERAS]:.2f}x" if label != KERAS else ""
        print(f"  {label:38s} {rate / 1e3:8.1f} k docs/s{ratio}")


if __name__ == "__main__":
    main()
