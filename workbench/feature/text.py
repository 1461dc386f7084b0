"""Text feature sets (TextSet): raw documents to padded word-index sequences for training.

A port of Analytics Zoo's TextSet onto Dask. A TextSet holds one row per document (its text,
its label when labelled, and a stable row id) in a pandas frame (local) or a dask frame
(distributed). Every step is a function of one partition that works on whole pyarrow arrays,
without a Python loop per document, applied directly or with ``map_partitions``; local and
distributed sets therefore give identical results::

    texts = TextSet.read("news/", npartitions=8)             # news/<category>/<file>.txt
    train, val = texts.tokenize().normalize().random_split([0.8, 0.2])
    train = train.word2idx(max_words_num=20_000).shape_sequence(200)
    val = val.word2idx(existing_map=train.word_index_).shape_sequence(200)
    X, y = train.to_arrays()

Conventions, chosen to match Keras' ``TextVectorization`` so that vocabularies and sequences
can be compared and exchanged:

- ``tokenize()`` then ``normalize()`` equals ``standardize="lower_and_strip_punctuation",
  split="whitespace"``: split on ASCII whitespace, lowercase ASCII letters, remove the 32 ASCII
  punctuation characters, drop tokens left empty. Other characters (accented letters, digits,
  symbols outside ASCII) are kept as they are, as Keras keeps them.
- Word indices: 0 pads (:data:`PAD_INDEX`), 1 is any word outside the vocabulary
  (:data:`OOV_INDEX`), the vocabulary's words take 2, 3, ... by decreasing corpus frequency;
  words of equal frequency are ordered like Keras orders them (the greater string first).
  ``max_words_num=k`` is Keras' ``max_tokens=k + 2``.
"""

from __future__ import annotations

import codecs
import copy
import functools
import json
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from workbench.arguments import check_positive_int
from workbench.data.readers import MissingPathError
from workbench.data.readers import read_csv as read_csv_frame
from workbench.data.readers import read_parquet as read_parquet_frame
from workbench.feature.folders import list_files
from workbench.feature.frames import (
    Frame,
    is_distributed,
    map_partitions,
    partition_results,
    partitions_to_arrays,
)

__all__ = ["TextSet", "Embeddings", "load_embeddings", "PAD_INDEX", "OOV_INDEX"]

#: The index that pads sequences (Keras' mask index).
PAD_INDEX = 0
#: The index of every word outside the vocabulary (Keras' OOV index).
OOV_INDEX = 1
_FIRST_WORD_INDEX = 2

# Keras' standardization by byte: which bytes are ASCII punctuation (its pattern's 32 characters,
# those of string.punctuation), and each byte with ASCII capitals lowercased.
_IS_PUNCTUATION = np.zeros(256, dtype=bool)
_IS_PUNCTUATION[list(string.punctuation.encode("ascii"))] = True
_ASCII_LOWER = np.arange(256, dtype=np.uint8)
_ASCII_LOWER[ord("A") : ord("Z") + 1] += ord("a") - ord("A")

# The columns of a TextSet's frame. TEXT, ROW_ID (and LABEL when labelled) exist from the start;
# each step adds its own column, listed in _STEPS with the call that adds it, in pipeline order.
TEXT, LABEL, ROW_ID, TOKENS, INDICES, SEQUENCE = "text", "label", "row_id", "tokens", "indices", "sequence"
_STEPS = ((TOKENS, "tokenize()"), (INDICES, "word2idx()"), (SEQUENCE, "shape_sequence(length)"))
_STEP_COLUMNS = [column for column, _ in _STEPS]
_TRUNC_MODES = ("pre", "post")


class TextSet:
    """Documents, optionally labelled, on their way to ``(X, y)`` arrays of word indices.

    Build one with :meth:`read`, :meth:`read_csv`, :meth:`read_parquet` or :meth:`from_dataframe`.
    Transforms return a new TextSet (the set they are called on is unchanged) and are lazy on a
    distributed set; only fitting a vocabulary computes.

    The frame (:attr:`frame`) has the columns ``text``, ``row_id`` (an id given to each row
    when the set is made, which :meth:`random_split` hashes), ``label`` (int64) when labelled,
    then ``tokens``, ``indices`` and ``sequence`` as the steps add them.

    Attributes:
        classes_: the class names, whose positions are the labels (folder names for
            :meth:`read`, sorted string labels); None when the labels are integers used as given.
        word_index_: the vocabulary, word -> index (from 2); None before :meth:`word2idx` or
            :meth:`load_word_index`.
        word_counts_: every distinct word of the corpus with its count, in vocabulary order
            (a pandas Series); None unless :meth:`word2idx` fitted the vocabulary.
        removed_words_: the most frequent words that ``remove_topN`` left out of the vocabulary.
        sequence_length_: the length set by :meth:`shape_sequence`.
    """

    def __init__(self, frame: Frame, layout: _RowLayout, classes: list | None) -> None:
        """Internal: use the constructors (``read``, ``read_csv``, ``read_parquet``, ``from_dataframe``)."""
        self._frame = frame
        self._layout = layout
        self.classes_ = classes
        self.word_index_: dict[str, int] | None = None
        self.word_counts_: pd.Series | None = None
        self.removed_words_: list[str] = []
        self.sequence_length_: int | None = None

    # ----------------------------------------------------------------------------- constructors

    @classmethod
    def read(cls, path: str | os.PathLike, npartitions: int | None = None, encoding: str = "utf-8") -> TextSet:
        """The ``.txt`` files of a folder laid out ``path/<category>/<file>.txt``, one document each.

        Labels are category indices into ``classes_``, the sorted sub-folder names.

        Args:
            path: the root folder.
            npartitions: None reads the files here into a local (pandas) set; an integer makes a
                distributed set of that many partitions (at most one per file) whose files are
                read inside the tasks, on the workers.
            encoding: the files' text encoding.

        Raises:
            MissingPathError: ``path`` is not a folder.
            ValueError: no category folder, a category without ``.txt`` files, an unknown
                encoding, or a file that cannot be decoded (named, with the encoding; for a
                distributed set when the files are read).
        """
        try:
            codecs.lookup(encoding)
        except LookupError as error:
            raise ValueError(f"TextSet.read: unknown encoding {encoding!r}") from error
        listing = list_files(path, (".txt",), labeled=True, reader="TextSet.read")
        count = len(listing.paths)
        if npartitions is None:
            frame = _read_documents(listing.paths, listing.labels, 0, encoding)
            return cls(frame, _RowLayout(((0, count),)), listing.classes)
        check_positive_int("npartitions", npartitions)
        chunks = np.array_split(np.arange(count), min(npartitions, count))
        firsts = [int(chunk[0]) for chunk in chunks]
        frame = dd.from_map(
            _read_documents,
            [[listing.paths[i] for i in chunk] for chunk in chunks],
            [[listing.labels[i] for i in chunk] for chunk in chunks],
            firsts,
            encoding=encoding,
            meta=_read_documents([], [], 0, encoding),
            enforce_metadata=False,
        )
        layout = _RowLayout(tuple((first, len(chunk)) for first, chunk in zip(firsts, chunks)))
        return cls(frame, layout, listing.classes)

    @classmethod
    def read_csv(cls, path: str | os.PathLike | Sequence[str | os.PathLike], text_col: str = "text",
                 label_col: str | None = None, npartitions: int | None = None, **kwargs: Any) -> TextSet:
        """Documents from CSV file(s), one per row (see :func:`workbench.data.read_csv`).

        Args:
            path: a file, a glob, or a list of them.
            text_col: the column holding the text.
            label_col: the column holding the labels (integers or strings); None for no labels.
            npartitions: None for a local set; an integer for a distributed set of that many partitions.
            **kwargs: passed on to the CSV reader (``sep=``, ``encoding=``, ...).
        """
        frame = read_csv_frame(path, columns=_source_columns(text_col, label_col), **kwargs)
        return cls._from_read_frame(frame, text_col, label_col, npartitions)

    @classmethod
    def read_parquet(cls, path: str | os.PathLike | Sequence[str | os.PathLike], text_col: str = "text",
                     label_col: str | None = None, npartitions: int | None = None, **kwargs: Any) -> TextSet:
        """Documents from Parquet file(s), one per row; arguments as for :meth:`read_csv`."""
        frame = read_parquet_frame(path, columns=_source_columns(text_col, label_col), **kwargs)
        return cls._from_read_frame(frame, text_col, label_col, npartitions)

    @classmethod
    def from_dataframe(cls, frame: Frame, text_col: str = "text", label_col: str | None = None) -> TextSet:
        """Documents from a pandas frame (a local set) or a dask frame (a distributed set).

        The frame is checked now, in one pass for a dask frame: missing text or labels, text
        that is not strings, labels that are neither integers nor strings, and negative integer
        labels raise an error naming the column, the count and the first row's index. String
        labels become indices into ``classes_`` (their sorted distinct values).

        Raises:
            TypeError: ``frame`` is neither a pandas nor a dask DataFrame, or a column has the wrong type.
            ValueError: a missing column (the available ones are listed), no rows, missing values.
        """
        if not isinstance(frame, (pd.DataFrame, dd.DataFrame)):
            raise TypeError(f"TextSet.from_dataframe expects a pandas or dask DataFrame, got {type(frame).__name__}")
        columns = _source_columns(text_col, label_col)
        absent = [column for column in columns if column not in frame.columns]
        if absent:
            raise ValueError(f"TextSet: column(s) {absent} not found; available: {list(frame.columns)}")
        inspect = functools.partial(_inspect_partition, text_col=text_col, label_col=label_col)
        reports = partition_results(frame, inspect)
        lengths, classes = _check_reports(reports, text_col, label_col)
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).tolist()
        standard = map_partitions(frame, functools.partial(
            _standard_partition, text_col=text_col, label_col=label_col, classes=classes, offsets=offsets))
        return cls(standard, _RowLayout(tuple(zip(offsets, lengths))), classes)

    @classmethod
    def _from_read_frame(cls, frame: dd.DataFrame, text_col: str, label_col: str | None,
                         npartitions: int | None) -> TextSet:
        if npartitions is None:
            return cls.from_dataframe(frame.compute(), text_col, label_col)
        check_positive_int("npartitions", npartitions)
        return cls.from_dataframe(frame.repartition(npartitions=npartitions), text_col, label_col)

    # ----------------------------------------------------------------------------- inspection

    @property
    def frame(self) -> Frame:
        """The set's table: pandas for a local set, dask (lazy) for a distributed one."""
        return self._frame

    @property
    def is_distributed(self) -> bool:
        return is_distributed(self._frame)

    def __len__(self) -> int:
        """The number of documents (known without computing a distributed set)."""
        return sum(self._layout.lengths)

    def __repr__(self) -> str:
        kind = f"distributed, {len(self._layout.lengths)} partitions" if self.is_distributed else "local"
        done = [call for column, call in _STEPS if column in self._frame.columns]
        return f"TextSet({len(self)} documents, {kind}, steps done: {', '.join(done) or 'none'})"

    # ----------------------------------------------------------------------------- transforms

    def tokenize(self) -> TextSet:
        """Split each text into tokens on ASCII whitespace (runs of spaces, tabs, newlines count as one)."""
        if TOKENS in self._frame.columns:
            raise ValueError("tokenize(): the set is already tokenized")
        return self._with(map_partitions(self._frame, _tokenize_partition))

    def normalize(self) -> TextSet:
        """Lowercase ASCII letters and remove ASCII punctuation, like Keras' ``lower_and_strip_punctuation``.

        After :meth:`tokenize` it cleans the tokens and drops those left empty (a token of
        punctuation only); before it, it cleans the text, which gives the same tokens.
        """
        if INDICES in self._frame.columns:
            raise ValueError(
                "normalize() must come before word2idx(): the word indices were made from the tokens as they are"
            )
        return self._with(map_partitions(self._frame, _normalize_partition))

    def word2idx(self, remove_topN: int = 0, max_words_num: int | None = None, min_freq: int = 1,
                 existing_map: Mapping[str, int] | None = None) -> TextSet:
        """Replace each token with its vocabulary index (1 for words outside the vocabulary).

        The vocabulary is, in order of use: ``existing_map`` when given; else the one this set
        carries (from :meth:`load_word_index` or an earlier ``word2idx``); else one fitted now by
        counting the words of every partition and adding the counts up. A fitted vocabulary
        ranks the words by decreasing count (ties: the greater string first, as Keras does),
        leaves out the ``remove_topN`` most frequent (Analytics Zoo's stop-word removal, listed in
        ``removed_words_``), then the words seen fewer than ``min_freq`` times, and keeps at most
        ``max_words_num`` words; they take the indices 2, 3, ... Every count is in ``word_counts_``.

        Args:
            remove_topN: how many of the most frequent words to leave out.
            max_words_num: the most words to keep (None: all); Keras' ``max_tokens`` minus 2.
            min_freq: the fewest occurrences a word needs to be kept.
            existing_map: word -> index (integers >= 2), e.g. the ``word_index_`` of the training set.

        Raises:
            ValueError: :meth:`tokenize` was not called, a bad option, counting options together
                with a given vocabulary, or a fitted vocabulary that would be empty.
        """
        self._require(INDICES, "word2idx()")
        if not isinstance(remove_topN, (int, np.integer)) or isinstance(remove_topN, bool) or remove_topN < 0:
            raise ValueError(f"remove_topN must be an integer >= 0, got {remove_topN!r}")
        if max_words_num is not None:
            check_positive_int("max_words_num", max_words_num)
        check_positive_int("min_freq", min_freq)
        if existing_map is None and self.word_index_ is None:
            derived = self._fit_vocabulary(remove_topN, max_words_num, min_freq)
        elif (remove_topN, max_words_num, min_freq) != (0, None, 1):
            raise ValueError(
                "remove_topN, max_words_num and min_freq shape a vocabulary being fitted; this call uses "
                f"{'existing_map' if existing_map is not None else 'the vocabulary the set carries'} as it is"
            )
        elif existing_map is not None:
            derived = self._with_vocabulary(_checked_word_index(existing_map, "word2idx(existing_map)"))
        else:
            derived = self
        words = pa.array(list(derived.word_index_), pa.large_string())
        lookup = np.append(np.fromiter(derived.word_index_.values(), np.int64, len(words)), OOV_INDEX)
        index = functools.partial(_index_partition, words=words, lookup=lookup)
        frame = map_partitions(self._without(INDICES), index)
        return derived._with(frame)

    def shape_sequence(self, length: int, trunc_mode: str = "pre", pad_element: int = PAD_INDEX) -> TextSet:
        """Make every index sequence ``length`` long.

        Longer sequences are truncated (``trunc_mode="pre"`` drops indices from the start,
        ``"post"`` from the end; :meth:`truncated_count` says how many were); shorter ones are
        padded with ``pad_element`` at the end. Keras' ``output_sequence_length`` is ``"post"``.
        """
        self._require(SEQUENCE, "shape_sequence()")
        check_positive_int("length", length)
        if trunc_mode not in _TRUNC_MODES:
            raise ValueError(f"trunc_mode must be one of {_TRUNC_MODES}, got {trunc_mode!r}")
        if isinstance(pad_element, bool) or not isinstance(pad_element, (int, np.integer)):
            raise ValueError(f"pad_element must be an integer, got {pad_element!r}")
        frame = map_partitions(self._without(SEQUENCE), functools.partial(
            _shape_partition, length=int(length), trunc_mode=trunc_mode, pad_element=int(pad_element)))
        return self._with(frame, sequence_length_=int(length))

    def truncated_count(self) -> int:
        """How many documents had more indices than the :meth:`shape_sequence` length (computes a distributed set)."""
        self._require(SEQUENCE, "truncated_count()", after=True)
        counter = functools.partial(_count_longer, length=self.sequence_length_)
        return int(sum(partition_results(self._frame, counter)))

    def random_split(self, weights: Sequence[float] = (0.8, 0.2), seed: int = 0) -> list[TextSet]:
        """Disjoint random subsets in proportions close to ``weights`` (normalized to sum 1).

        A row's subset is decided by a uniform number hashed from ``(seed, row_id)``, so the split
        is the same for the same data whether local or distributed, however it is partitioned.
        """
        try:
            shares = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            shares = np.array([np.nan])
        valid = shares.ndim == 1 and len(shares) and np.all(np.isfinite(shares) & (shares > 0))
        if isinstance(weights, (str, bytes)) or not valid:
            raise ValueError(f"weights must be a non-empty sequence of positive finite numbers, got {weights!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        bounds = np.concatenate(([0.0], np.cumsum(shares) / shares.sum()))
        bounds[-1] = 1.0
        splits = []
        for low, high in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
            keep = functools.partial(_split_partition, seed=int(seed), low=low, high=high)
            layout = self._layout.split(int(seed), low, high)
            splits.append(self._with(map_partitions(self._frame, keep), _layout=layout))
        return splits

    def to_arrays(self) -> tuple[np.ndarray | da.Array, np.ndarray | da.Array | None]:
        """``(X, y)``: X int64 ``(documents, length)``, y int64 ``(documents,)`` or None without labels.

        numpy arrays for a local set; dask arrays with known chunks (one per partition) for a
        distributed one, ready for ``Estimator.fit``.
        """
        self._require(SEQUENCE, "to_arrays()", after=True)
        labeled = LABEL in self._frame.columns
        shapes = [(self.sequence_length_,), ()] if labeled else [(self.sequence_length_,)]
        arrays = partitions_to_arrays(
            self._frame, functools.partial(_partition_arrays, length=self.sequence_length_, labeled=labeled),
            self._layout.lengths, shapes, np.int64,
        )
        return (arrays[0], arrays[1] if labeled else None)

    #: Analytics Zoo's name for :meth:`to_arrays`.
    generate_sample = to_arrays

    # ----------------------------------------------------------------------------- vocabulary files

    def save_word_index(self, path: str | os.PathLike) -> None:
        """Write ``word_index_`` to ``path`` as a JSON object ``{word: index}``, one word per line."""
        if self.word_index_ is None:
            raise ValueError("save_word_index(): the set has no vocabulary yet; call word2idx() first")
        ordered = dict(sorted(self.word_index_.items(), key=lambda item: item[1]))
        Path(path).write_text(json.dumps(ordered, ensure_ascii=False, indent=0), encoding="utf-8")

    def load_word_index(self, path: str | os.PathLike) -> TextSet:
        """This set carrying the vocabulary saved at ``path``, which :meth:`word2idx` then uses.

        As in Analytics Zoo, inference loads the training vocabulary instead of fitting one:
        ``TextSet.read(...).tokenize().normalize().load_word_index(path).word2idx()``.

        Raises:
            MissingPathError: no such file.
            ValueError: the file is not a JSON object of words to integers >= 2 (the file is named).
        """
        return self._with_vocabulary(_read_word_index(path))

    # ----------------------------------------------------------------------------- internals

    def _with(self, frame: Frame, **attributes: Any) -> TextSet:
        """A copy of this set with another frame and some attributes replaced."""
        derived = copy.copy(self)
        derived._frame = frame
        for name, value in attributes.items():
            setattr(derived, name, value)
        return derived

    def _with_vocabulary(self, word_index: dict[str, int], counts: pd.Series | None = None,
                         removed: list[str] | None = None) -> TextSet:
        """This set carrying ``word_index`` (and the counts it was fitted from, if it was)."""
        return self._with(self._frame, word_index_=word_index, word_counts_=counts, removed_words_=removed or [])

    def _without(self, column: str) -> Frame:
        """The frame without ``column`` and the columns of the steps after it (a step redone drops them)."""
        present = [name for name in _STEP_COLUMNS[_STEP_COLUMNS.index(column):] if name in self._frame.columns]
        return self._frame.drop(columns=present) if present else self._frame

    def _require(self, column: str, caller: str, after: bool = False) -> None:
        """Raise naming the calls ``caller`` misses: the steps before the one adding ``column``.

        With ``after``, the step adding ``column`` is needed too.
        """
        position = _STEP_COLUMNS.index(column) + (1 if after else 0)
        missing = [call for name, call in _STEPS[:position] if name not in self._frame.columns]
        if missing:
            raise ValueError(f"{caller} needs {' and '.join(missing)} first")

    def _fit_vocabulary(self, remove_top_n: int, max_words_num: int | None, min_freq: int) -> TextSet:
        counts = _vocabulary_order(_sum_counts(partition_results(self._frame, _count_partition)))
        if counts.empty:
            raise ValueError("word2idx(): the documents hold no tokens to build a vocabulary from")
        kept = counts.iloc[remove_top_n:]
        kept = kept[kept >= min_freq]
        if max_words_num is not None:
            kept = kept.iloc[:max_words_num]
        if kept.empty:
            raise ValueError(
                f"word2idx(): remove_topN={remove_top_n} and min_freq={min_freq} leave no word of the "
                f"{len(counts)} distinct words (the most frequent is seen {int(counts.iloc[0])} times)"
            )
        word_index = dict(zip(kept.index.tolist(), range(_FIRST_WORD_INDEX, _FIRST_WORD_INDEX + len(kept))))
        return self._with_vocabulary(word_index, counts, counts.index[:remove_top_n].tolist())


@dataclass(frozen=True)
class _RowLayout:
    """The row ids of each partition, known without computing the data.

    A set starts with a contiguous range of ids per partition; each random split keeps the rows
    whose hashed number falls in its interval, so the rows per partition after any chain of
    splits follow from the ids alone (dask arrays need them as chunk sizes).
    """

    ranges: tuple[tuple[int, int], ...]  # (first row id, rows) of each partition when the set was made
    splits: tuple[tuple[int, float, float], ...] = ()  # (seed, low, high) of each split since

    @functools.cached_property
    def lengths(self) -> list[int]:
        counts = []
        for first, rows in self.ranges:
            ids = np.arange(first, first + rows, dtype=np.int64)
            for seed, low, high in self.splits:
                ids = ids[_in_interval(ids, seed, low, high)]
            counts.append(len(ids))
        return counts

    def split(self, seed: int, low: float, high: float) -> _RowLayout:
        return _RowLayout(self.ranges, self.splits + ((seed, low, high),))


# --------------------------------------------------------------------------------- partition steps
# Functions of one pandas partition; the same function serves local and distributed sets.


def _tokenize_partition(part: pd.DataFrame) -> pd.DataFrame:
    # arrow's split keeps an empty token before leading and after trailing whitespace; Keras' does not
    offsets, tokens = _offsets_and_values(pc.ascii_split_whitespace(_arrow(part, TEXT)))
    return part.assign(**{TOKENS: _series(_lists_without_empty(offsets, tokens), part.index)})


def _normalize_partition(part: pd.DataFrame) -> pd.DataFrame:
    if TOKENS not in part.columns:
        return part.assign(**{TEXT: _series(_standardize(_arrow(part, TEXT)), part.index)})
    offsets, tokens = _offsets_and_values(_arrow(part, TOKENS))
    return part.assign(**{TOKENS: _series(_lists_without_empty(offsets, _standardize(tokens)), part.index)})


def _lists_without_empty(offsets: np.ndarray, tokens: pa.Array) -> pa.ListArray:
    """The token lists delimited by ``offsets``, without their empty tokens."""
    kept = pc.not_equal(tokens, "")
    kept_before = np.concatenate(([0], np.cumsum(kept.to_numpy(zero_copy_only=False))))
    return pa.ListArray.from_arrays(pa.array(kept_before[offsets], pa.int32()), tokens.filter(kept))


def _standardize(strings: pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    """Keras' ``lower_and_strip_punctuation``: ASCII letters lowercased, ASCII punctuation removed.

    It works on the UTF-8 bytes at once: in UTF-8 a byte below 0x80 is always an ASCII
    character (never part of a longer one), so removing and lowercasing such bytes is exact.
    """
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    strings = strings.cast(pa.large_string())
    _, offsets_buffer, data_buffer = strings.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int64)[strings.offset : strings.offset + len(strings) + 1]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    punctuation = _IS_PUNCTUATION[data]
    removed_before = np.searchsorted(np.flatnonzero(punctuation), offsets - offsets[0])
    return pa.LargeStringArray.from_buffers(len(strings), pa.py_buffer(offsets - offsets[0] - removed_before),
                                            pa.py_buffer(_ASCII_LOWER[data[~punctuation]]))


def _count_partition(part: pd.DataFrame) -> pa.Table:
    """Each distinct token of the partition with its count."""
    _, tokens = _offsets_and_values(_arrow(part, TOKENS))
    counted = pc.value_counts(tokens)
    return pa.table({"word": counted.field("values").cast(pa.large_string()), "count": counted.field("counts")})


def _sum_counts(tables: list[pa.Table]) -> pa.Table:
    summed = pa.concat_tables(tables).group_by("word").aggregate([("count", "sum")])
    return pa.table({"word": summed["word"], "count": summed["count_sum"]})


def _vocabulary_order(counts: pa.Table) -> pd.Series:
    """Counts by word, most frequent first; ties by word, greater first (Keras' lexsort, reversed)."""
    ordered = counts.take(pc.sort_indices(counts, sort_keys=[("count", "descending"), ("word", "descending")]))
    words = pd.Index(ordered["word"].to_pylist(), dtype=object)
    return pd.Series(ordered["count"].to_numpy(), index=words, name="count")


def _index_partition(part: pd.DataFrame, words: pa.Array, lookup: np.ndarray) -> pd.DataFrame:
    """Tokens -> indices: ``lookup[i]`` is the index of ``words[i]``; its last entry (OOV) serves unknown tokens."""
    offsets, tokens = _offsets_and_values(_arrow(part, TOKENS))
    positions = pc.fill_null(pc.index_in(tokens, value_set=words), -1).to_numpy(zero_copy_only=False)
    indices = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(lookup[positions]))
    return part.assign(**{INDICES: _series(indices, part.index)})


def _shape_partition(part: pd.DataFrame, length: int, trunc_mode: str, pad_element: int) -> pd.DataFrame:
    offsets, values = _offsets_and_values(_arrow(part, INDICES))
    sizes = np.diff(offsets)
    kept = np.minimum(sizes, length)
    starts = offsets[:-1] + (sizes - kept if trunc_mode == "pre" else 0)
    positions = np.arange(length)
    filled = positions < kept[:, None]
    matrix = np.full((len(sizes), length), pad_element, dtype=np.int64)
    matrix[filled] = values.to_numpy()[(starts[:, None] + positions)[filled]]
    sequences = pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), length)
    return part.assign(**{SEQUENCE: _series(sequences, part.index)})


def _count_longer(part: pd.DataFrame, length: int) -> int:
    offsets, _ = _offsets_and_values(_arrow(part, INDICES))
    return int((np.diff(offsets) > length).sum())


def _split_partition(part: pd.DataFrame, seed: int, low: float, high: float) -> pd.DataFrame:
    return part[_in_interval(part[ROW_ID].to_numpy(), seed, low, high)]


def _partition_arrays(part: pd.DataFrame, length: int, labeled: bool) -> tuple[np.ndarray, ...]:
    sequences = _arrow(part, SEQUENCE).combine_chunks()
    features = sequences.flatten().to_numpy().reshape(len(part), length)
    return (features, part[LABEL].to_numpy(np.int64)) if labeled else (features,)


# --------------------------------------------------------------------------------- making a set


def _read_documents(paths: list[str], labels: list[int], first_id: int, encoding: str) -> pd.DataFrame:
    """The standard frame of the files ``paths``, whose row ids start at ``first_id``."""
    texts = []
    for path in paths:
        data = Path(path).read_bytes()
        try:
            texts.append(data.decode(encoding))
        except UnicodeDecodeError as error:
            raise ValueError(
                f"TextSet.read: {path} cannot be decoded as {encoding} ({error.reason} at byte {error.start}); "
                "pass encoding= for the files' encoding"
            ) from None
    row_ids = np.arange(first_id, first_id + len(paths), dtype=np.int64)
    index = pd.Index(row_ids)
    return pd.DataFrame({TEXT: _series(pa.array(texts, pa.large_string()), index),
                         LABEL: np.asarray(labels, dtype=np.int64), ROW_ID: row_ids}, index=index)


def _source_columns(text_col: str, label_col: str | None) -> list[str]:
    if not isinstance(text_col, str) or not (label_col is None or isinstance(label_col, str)):
        raise TypeError(f"text_col and label_col must be column names (str), got {text_col!r} and {label_col!r}")
    if text_col == label_col:
        raise ValueError(f"text_col and label_col are the same column {text_col!r}")
    return [text_col] if label_col is None else [text_col, label_col]


def _source_values(part: pd.DataFrame, column: str) -> pa.ChunkedArray:
    """A source column as arrow (categoricals decoded); values of mixed types raise TypeError naming it."""
    try:
        values = _arrow(part, column)
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:
        raise TypeError(f"TextSet: column {column!r} holds values of mixed types ({error})") from None
    return values.cast(values.type.value_type) if pa.types.is_dictionary(values.type) else values


def _kind(values: pa.ChunkedArray) -> str:
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return "string"
    if pa.types.is_integer(values.type):
        return "integer"
    return "missing" if pa.types.is_null(values.type) else str(values.type)


def _inspect_partition(part: pd.DataFrame, text_col: str, label_col: str | None) -> dict:
    """What the checks of a new set need from one partition: rows, missing values, value kinds, labels."""
    report: dict[str, Any] = {"rows": len(part), "missing": {}, "kinds": {}, "classes": set(), "negative": None}
    for column in _source_columns(text_col, label_col):
        values = _source_values(part, column)
        if values.null_count:
            first = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            report["missing"][column] = (values.null_count, _python(part.index[first]))
        report["kinds"][column] = _kind(values) if len(part) > values.null_count else "missing"
        if column == label_col and report["kinds"][column] == "string":
            report["classes"] = set(pc.unique(values.drop_null()).to_pylist())
        elif column == label_col and report["kinds"][column] == "integer":
            negative = np.flatnonzero(values.fill_null(0).to_numpy() < 0)
            if len(negative):
                report["negative"] = (_python(part.index[negative[0]]), values[int(negative[0])].as_py())
    return report


def _python(value: Any) -> Any:
    """A numpy scalar as the Python value it holds (for messages: 11, not np.int64(11))."""
    return value.item() if isinstance(value, np.generic) else value


def _check_reports(reports: list[dict], text_col: str, label_col: str | None) -> tuple[list[int], list | None]:
    """Rows per partition and the classes of string labels; raises on the first problem found."""
    lengths = [report["rows"] for report in reports]
    if sum(lengths) == 0:
        raise ValueError("TextSet: the frame has no rows")
    for column in _source_columns(text_col, label_col):
        missing = [report["missing"][column] for report in reports if column in report["missing"]]
        if missing:
            raise ValueError(
                f"TextSet: column {column!r} has {sum(count for count, _ in missing)} missing value(s) "
                f"(the first at row index {missing[0][1]!r}); fill or drop them first"
            )
        kinds = {report["kinds"][column] for report in reports} - {"missing"}
        allowed = {"string"} if column == text_col else {"string", "integer"}
        if len(kinds) > 1 or not kinds <= allowed:
            expected = "text (strings)" if column == text_col else "integers or strings"
            raise TypeError(f"TextSet: column {column!r} must hold {expected}, found {sorted(kinds)}")
    negative = [report["negative"] for report in reports if report["negative"] is not None]
    if negative:
        raise ValueError(
            f"TextSet: label column {label_col!r} holds a negative label {negative[0][1]} (at row index "
            f"{negative[0][0]!r}); integer labels are class indices from 0"
        )
    classes = set().union(*(report["classes"] for report in reports))
    return lengths, sorted(classes) if classes else None


def _standard_partition(part: pd.DataFrame, text_col: str, label_col: str | None, classes: list | None,
                        offsets: list[int], partition_info: dict | None = None) -> pd.DataFrame:
    """A source partition as a TextSet frame: text, label indices, row ids from the partition's offset."""
    first = offsets[partition_info["number"]] if partition_info else 0
    columns = {TEXT: _series(_source_values(part, text_col).cast(pa.large_string()), part.index)}
    if label_col is not None:
        labels = _source_values(part, label_col)
        if classes is not None:
            labels = pc.index_in(labels.cast(pa.large_string()), value_set=pa.array(classes, pa.large_string()))
        columns[LABEL] = labels.cast(pa.int64()).to_numpy()
    columns[ROW_ID] = np.arange(first, first + len(part), dtype=np.int64)
    return pd.DataFrame(columns, index=part.index)


# --------------------------------------------------------------------------------- arrow and hashing


def _arrow(part: pd.DataFrame, column: str) -> pa.ChunkedArray:
    """A column as arrow, without copying when it is arrow-backed already."""
    return pa.Table.from_pandas(part[[column]], preserve_index=False).column(0)


def _series(values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    return pd.Series(pd.arrays.ArrowExtensionArray(values), index=index)


def _offsets_and_values(lists: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """A list column as (offsets from 0, one per row plus one) and the flat values they delimit."""
    combined = lists.combine_chunks()
    offsets = combined.offsets.to_numpy().astype(np.int64)
    values = combined.values.slice(offsets[0], offsets[-1] - offsets[0])
    return offsets - offsets[0], values


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """Steele et al.'s 64-bit finalizer: well-mixed bits from consecutive integers (wraps modulo 2**64)."""
    mixed = values + np.uint64(0x9E3779B97F4A7C15)
    mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return mixed ^ (mixed >> np.uint64(31))


def _in_interval(row_ids: np.ndarray, seed: int, low: float, high: float) -> np.ndarray:
    """Whether each row's uniform number, fixed by ``(seed, row id)`` alone, lies in ``[low, high)``."""
    key = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))
    uniform = (_splitmix64(row_ids.astype(np.uint64) ^ key) >> np.uint64(11)) * 2.0**-53
    return (uniform >= low) & (uniform < high)


# --------------------------------------------------------------------------------- word index files


def _checked_word_index(mapping: Any, source: str) -> dict[str, int]:
    """``mapping`` as a dict of words to indices >= 2, or an error naming ``source`` and the bad entry."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise ValueError(f"{source}: expected a non-empty mapping of words to indices, got {type(mapping).__name__}")
    for word, index in mapping.items():
        if not isinstance(word, str):
            raise ValueError(f"{source}: the word {word!r} is not a string")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < _FIRST_WORD_INDEX:
            raise ValueError(
                f"{source}: the word {word!r} has index {index!r}; word indices are integers from "
                f"{_FIRST_WORD_INDEX} ({PAD_INDEX} pads, {OOV_INDEX} is the unknown word)"
            )
    return {word: int(index) for word, index in mapping.items()}


def _read_word_index(path: str | os.PathLike) -> dict[str, int]:
    file = Path(path)
    if not file.is_file():
        raise MissingPathError(f"load_word_index: no such file: {str(path)!r}")
    try:
        mapping = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"load_word_index: {str(path)!r} is not a JSON word index ({error})") from None
    return _checked_word_index(mapping, f"load_word_index: {str(path)!r}")


# --------------------------------------------------------------------------------- pretrained embeddings


@dataclass(frozen=True)
class Embeddings:
    """Pretrained word vectors laid out for an embedding layer over a word index.

    Attributes:
        matrix: float32 ``(largest index + 1, dim)``; row ``i`` is the vector of the word of
            index ``i``. Row 0 (padding), row 1 (unknown word) and the rows of words absent from
            the file are zeros.
        coverage: the fraction of the word index's words found in the file.
        missing: the word index's words absent from the file, by index.
    """

    matrix: np.ndarray
    coverage: float
    missing: list[str]


def load_embeddings(path: str | os.PathLike, word_index: Mapping[str, int], dim: int | None = None) -> Embeddings:
    """The vectors of ``word_index``'s words from a GloVe text file (``word v1 v2 ...`` per line).

    Words match exactly (normalize the text as the vectors were made, e.g. lowercase for
    GloVe); a word listed twice keeps its first vector; blank lines are skipped.

    Args:
        path: the UTF-8 vector file.
        word_index: word -> index (from 2), e.g. a TextSet's ``word_index_``.
        dim: the vector size; None takes it from the first line.

    Raises:
        MissingPathError: no such file.
        ValueError: a line with another number of values or a value that is not a number
            (the file and line number are named), or a file without vectors.
    """
    word_index = _checked_word_index(word_index, "load_embeddings(word_index)")
    if dim is not None:
        check_positive_int("dim", dim)
    file = Path(path)
    if not file.is_file():
        raise MissingPathError(f"load_embeddings: no such file: {str(path)!r}")
    matrix: np.ndarray | None = None
    found: set[str] = set()
    with file.open(encoding="utf-8") as lines:
        number = 0
        try:
            for number, line in enumerate(lines, start=1):
                fields = line.split()
                if not fields:
                    continue
                if dim is None:
                    dim = len(fields) - 1
                if len(fields) - 1 != dim or dim == 0:
                    raise ValueError(
                        f"load_embeddings: {file} line {number} has {len(fields) - 1} values, expected {dim}"
                    )
                if matrix is None:
                    matrix = np.zeros((max(word_index.values()) + 1, dim), dtype=np.float32)
                word = fields[0]
                if word in word_index and word not in found:
                    try:
                        matrix[word_index[word]] = np.array(fields[1:], dtype=np.float32)
                    except ValueError:
                        raise ValueError(
                            f"load_embeddings: {file} line {number} holds a value that is not a number"
                        ) from None
                    found.add(word)
        except UnicodeDecodeError as error:
            raise ValueError(
                f"load_embeddings: {file} is not UTF-8 text (after line {number}: {error.reason})"
            ) from None
    if matrix is None:
        raise ValueError(f"load_embeddings: {file} holds no vectors")
    missing = [word for word, _ in sorted(word_index.items(), key=lambda item: item[1]) if word not in found]
    return Embeddings(matrix, len(found) / len(word_index), missing)
