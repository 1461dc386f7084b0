"""TextSet through its public API: hand-computed pipelines, Keras equivalence, local = distributed."""

from __future__ import annotations

import json

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.data.readers import MissingPathError
from workbench.feature import TextSet
from workbench.feature.text import OOV_INDEX, PAD_INDEX, load_embeddings

# Five documents whose tokens, counts and indices are worked out by hand below.
DOCUMENTS = [
    "The cat sat on the mat.",     # the cat sat on the mat
    "The dog ate my homework!!",   # the dog ate my homework
    "A cat, a dog... and a BIRD",  # a cat a dog and a bird
    "Dog?",                        # dog
    "... --- !!!",                 # (no token left)
]
DOCUMENT_TOKENS = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "ate", "my", "homework"],
                   ["a", "cat", "a", "dog", "and", "a", "bird"], ["dog"], []]
LABELS = ["pet", "school", "pet", "pet", "noise"]
# Counts: the 3, dog 3, a 3, cat 2, and 1 each for sat on my mat homework bird ate and.
# Equal counts rank the greater word first (Keras): the > dog > a; sat > on > my > ... > and.
WORD_INDEX = {"the": 2, "dog": 3, "a": 4, "cat": 5, "sat": 6, "on": 7, "my": 8, "mat": 9,
              "homework": 10, "bird": 11, "ate": 12, "and": 13}
# Their sequences of length 4, truncated at the start ("pre") and padded at the end.
PRE_4 = [[6, 7, 2, 9], [3, 12, 8, 10], [3, 13, 4, 11], [3, 0, 0, 0], [0, 0, 0, 0]]


def make_corpus(documents: int, seed: int) -> pd.DataFrame:
    """Random documents over a small vocabulary, with case, punctuation and whitespace to clean."""
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "Beta", "GAMMA", "delta,", "eps.", "zeta!", "eta", "theta", "iota", "kappa",
                      "don't", "e-mail", "U.S.A.", "café", "ÉCOLE", "x2", "42", "...", "--"])
    separators = np.array([" ", "  ", "\t", "\n"])
    rows = []
    for _ in range(documents):
        size = rng.integers(0, 14)
        tokens = words[np.minimum(rng.zipf(1.5, size), len(words)) - 1]
        rows.append("".join(t + s for t, s in zip(tokens, separators[rng.integers(0, 4, size)])))
    return pd.DataFrame({"text": rows, "topic": rng.choice(["x", "y", "z"], documents)})


def pipeline(texts: TextSet, length: int = 6, trunc_mode: str = "pre", **vocabulary) -> TextSet:
    return texts.tokenize().normalize().word2idx(**vocabulary).shape_sequence(length, trunc_mode)


def computed(arrays):
    return dask.compute(*arrays) if isinstance(arrays[0], da.Array) else arrays


def write_folder(root, files: dict[str, list[str]]) -> None:
    """``root/<category>/<n>.txt`` for each category's texts."""
    for category, texts in files.items():
        (root / category).mkdir(parents=True)
        for number, text in enumerate(texts):
            (root / category / f"{number:03d}.txt").write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- hand-computed


def test_tokens_vocabulary_and_sequences_by_hand():
    texts = TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS, "y": LABELS}), label_col="y")
    assert texts.classes_ == ["noise", "pet", "school"]
    tokens = texts.tokenize().normalize()
    assert [list(t) for t in tokens.frame["tokens"]] == DOCUMENT_TOKENS

    pre = tokens.word2idx().shape_sequence(4, "pre")
    assert pre.word_index_ == WORD_INDEX and list(pre.word_index_) == list(WORD_INDEX)
    assert pre.word_counts_.to_dict() == {"the": 3, "dog": 3, "a": 3, "cat": 2, **{w: 1 for w in list(WORD_INDEX)[4:]}}
    X, y = pre.to_arrays()
    np.testing.assert_array_equal(X, PRE_4)
    np.testing.assert_array_equal(y, [1, 2, 1, 1, 0])
    assert X.dtype == np.int64 and y.dtype == np.int64
    assert pre.truncated_count() == 3

    post, _ = tokens.word2idx().shape_sequence(4, "post", pad_element=-1).to_arrays()
    np.testing.assert_array_equal(post, [[2, 5, 6, 7], [2, 3, 12, 8], [4, 5, 4, 3], [3, -1, -1, -1], [-1] * 4])


def test_normalize_before_tokenize_gives_the_same_tokens():
    texts = TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS}))
    before = texts.normalize().tokenize().frame["tokens"]
    after = texts.tokenize().normalize().frame["tokens"]
    assert [list(t) for t in before] == [list(t) for t in after]


@pytest.mark.parametrize(("options", "first_words", "size"), [
    ({"remove_topN": 1}, {"dog": 2, "a": 3, "cat": 4, "sat": 5}, 11),
    ({"min_freq": 2}, {"the": 2, "dog": 3, "a": 4, "cat": 5}, 4),
    ({"max_words_num": 2}, {"the": 2, "dog": 3}, 2),
    ({"remove_topN": 1, "max_words_num": 2}, {"dog": 2, "a": 3}, 2),
    ({"remove_topN": 2, "min_freq": 3}, {"a": 2}, 1),
])
def test_vocabulary_options_and_unknown_words(options, first_words, size):
    texts = pipeline(TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS})), 4, "post", **options)
    assert {w: i for w, i in texts.word_index_.items() if i <= 5} == first_words
    assert sorted(texts.word_index_.values()) == list(range(2, 2 + size))
    assert texts.removed_words_ == ["the", "dog"][: options.get("remove_topN", 0)]
    X, y = texts.to_arrays()
    assert y is None
    index = {**{w: OOV_INDEX for w in WORD_INDEX}, **texts.word_index_}
    expected_rows = [([index[t] for t in doc] + [PAD_INDEX] * 4)[:4] for doc in DOCUMENT_TOKENS]
    np.testing.assert_array_equal(X, expected_rows)


# ----------------------------------------------------------------------------- Keras and distributed


@pytest.mark.parametrize("max_words_num", [None, 7])
def test_vocabulary_and_sequences_equal_keras_text_vectorization(max_words_num):
    import keras

    edges = ["  \tLeading, and TRAILING!  \n", "", "no\u00a0break\x0bvertical\x0cfeed\rreturn ÀÉ ß"]
    corpus = make_corpus(300, seed=1)["text"].tolist() + DOCUMENTS + edges
    layer = keras.layers.TextVectorization(
        max_tokens=None if max_words_num is None else max_words_num + 2, output_sequence_length=9,
        standardize="lower_and_strip_punctuation", split="whitespace")
    layer.adapt(corpus)
    texts = pipeline(TextSet.from_dataframe(pd.DataFrame({"text": corpus})), 9, "post", max_words_num=max_words_num)
    vocabulary = layer.get_vocabulary()
    assert vocabulary[:2] == ["", "[UNK]"]
    assert list(texts.word_index_) == vocabulary[2:]
    assert list(texts.word_index_.values()) == list(range(2, len(vocabulary)))
    np.testing.assert_array_equal(texts.to_arrays()[0], np.asarray(layer(corpus)))


def test_local_and_distributed_sets_are_identical(context):
    corpus = make_corpus(400, seed=2)
    local = TextSet.from_dataframe(corpus, label_col="topic")
    distributed = TextSet.from_dataframe(dd.from_pandas(corpus, npartitions=3), label_col="topic")
    assert distributed.is_distributed and not local.is_distributed
    assert len(distributed) == len(local) == 400 and distributed.classes_ == local.classes_ == ["x", "y", "z"]

    local_out, distributed_out = (pipeline(s, 5, max_words_num=10, remove_topN=1) for s in (local, distributed))
    assert distributed_out.word_index_ == local_out.word_index_
    pd.testing.assert_series_equal(distributed_out.word_counts_, local_out.word_counts_)
    X, y = distributed_out.to_arrays()
    assert X.chunks[0] == tuple(distributed_out.frame.map_partitions(len).compute())
    for got, expected in zip(computed((X, y)), local_out.to_arrays()):
        np.testing.assert_array_equal(got, expected)

    repartitioned = TextSet.from_dataframe(dd.from_pandas(corpus, npartitions=5), label_col="topic")
    splits = [s.random_split([0.6, 0.3, 0.1], seed=7) for s in (local_out, distributed_out, pipeline(repartitioned, 5))]
    for local_part, distributed_part, other_part in zip(*splits):
        ids = local_part.frame["row_id"].tolist()
        assert distributed_part.frame["row_id"].compute().tolist() == ids
        assert other_part.frame["row_id"].compute().tolist() == ids
        assert len(distributed_part) == len(ids) == len(other_part)
        for got, expected in zip(computed(distributed_part.to_arrays()), local_part.to_arrays()):
            np.testing.assert_array_equal(got, expected)
    sizes = [len(part) for part in splits[0]]
    assert sum(sizes) == 400 and 200 < sizes[0] < 280 and 80 < sizes[1] < 160
    assert sorted(sum((part.frame["row_id"].tolist() for part in splits[0]), [])) == list(range(400))
    assert [len(p) for p in local_out.random_split([0.6, 0.3, 0.1], seed=8)] != sizes  # the seed matters


# ----------------------------------------------------------------------------- reading


def test_read_folder_local_and_distributed(tmp_path, context):
    write_folder(tmp_path, {"sport": ["Goal!", "Match  day\n", "team"], "food": ["Pizza", "pasta time"]})
    local = TextSet.read(tmp_path)
    distributed = TextSet.read(tmp_path, npartitions=2)
    assert local.classes_ == distributed.classes_ == ["food", "sport"]
    assert local.frame["text"].tolist() == ["Pizza", "pasta time", "Goal!", "Match  day\n", "team"]
    assert distributed.frame.npartitions == 2 and len(distributed) == 5
    assert distributed.frame.compute()["text"].tolist() == local.frame["text"].tolist()
    for got, expected in zip(computed(pipeline(distributed, 3).to_arrays()), pipeline(local, 3).to_arrays()):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(pipeline(local, 3).to_arrays()[1], [0, 0, 1, 1, 1])


def test_read_folder_with_another_encoding(tmp_path):
    write_folder(tmp_path, {"a": []})
    (tmp_path / "a" / "latin.txt").write_bytes("Crème brûlée".encode("latin-1"))
    assert TextSet.read(tmp_path, encoding="latin-1").frame["text"].tolist() == ["Crème brûlée"]


@pytest.mark.parametrize("npartitions", [None, 2])
def test_read_csv_and_parquet_with_string_labels(tmp_path, context, npartitions):
    frame = pd.DataFrame({"id": range(5), "body": DOCUMENTS, "kind": LABELS})
    frame.to_csv(tmp_path / "docs.csv", index=False)
    frame.to_parquet(tmp_path / "docs.parquet")
    for texts in (TextSet.read_csv(tmp_path / "docs.csv", "body", "kind", npartitions=npartitions),
                  TextSet.read_parquet(tmp_path / "docs.parquet", "body", "kind", npartitions=npartitions)):
        assert texts.is_distributed == (npartitions is not None)
        assert texts.classes_ == ["noise", "pet", "school"]
        X, y = computed(pipeline(texts, 4).to_arrays())
        np.testing.assert_array_equal(y, [1, 2, 1, 1, 0])
        np.testing.assert_array_equal(X, PRE_4)


def test_integer_labels_are_used_as_given():
    texts = TextSet.from_dataframe(pd.DataFrame({"text": ["a", "b", "c"], "y": [2, 0, 2]}), label_col="y")
    assert texts.classes_ is None
    np.testing.assert_array_equal(pipeline(texts, 1).to_arrays()[1], [2, 0, 2])


# ----------------------------------------------------------------------------- vocabulary files, embeddings


def test_saved_word_index_serves_inference_on_new_text(tmp_path):
    trained = pipeline(TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS})), 5, "post")
    trained.save_word_index(tmp_path / "words.json")
    assert json.loads((tmp_path / "words.json").read_text(encoding="utf-8")) == WORD_INDEX

    new = TextSet.from_dataframe(pd.DataFrame({"text": ["The zebra ATE the cat!", "unicorns"]})).tokenize().normalize()
    loaded = new.load_word_index(tmp_path / "words.json")
    assert loaded.word_index_ == WORD_INDEX and new.word_index_ is None and loaded.word_counts_ is None
    remapped = trained.word2idx(existing_map={"cat": 2})
    assert remapped.word_index_ == {"cat": 2} and remapped.word_counts_ is None and trained.word_counts_ is not None
    expected = [[2, OOV_INDEX, 12, 2, 5], [OOV_INDEX, 0, 0, 0, 0]]
    np.testing.assert_array_equal(loaded.word2idx().shape_sequence(5, "post").to_arrays()[0], expected)
    given = new.word2idx(existing_map=WORD_INDEX).shape_sequence(5, "post")
    np.testing.assert_array_equal(given.to_arrays()[0], expected)


def test_glove_embeddings_rows_and_coverage(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2 0.3\ncat 1 2 3\nzebra 4 5 6\n\ndog -1 -2 -3.5\ncat 9 9 9\n", encoding="utf-8")
    loaded = load_embeddings(glove, {"the": 2, "dog": 3, "bird": 4, "cat": 5})
    assert loaded.matrix.dtype == np.float32 and loaded.matrix.shape == (6, 3)
    np.testing.assert_array_equal(loaded.matrix, np.array(
        [[0, 0, 0], [0, 0, 0], [0.1, 0.2, 0.3], [-1, -2, -3.5], [0, 0, 0], [1, 2, 3]], dtype=np.float32))
    assert loaded.coverage == 0.75 and loaded.missing == ["bird"]

    glove.write_text("the 0.1 0.2 0.3\ncat 1 2 3\ndog 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"glove\.txt line 3 has 2 values, expected 3"):
        load_embeddings(glove, {"the": 2})
    with pytest.raises(ValueError, match=r"glove\.txt line 1 has 3 values, expected 4"):
        load_embeddings(glove, {"the": 2}, dim=4)
    glove.write_text("the 0.1 x 0.3\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"glove\.txt line 1 holds a value that is not a number"):
        load_embeddings(glove, {"the": 2})


# ----------------------------------------------------------------------------- bad input


def test_folder_errors(tmp_path, context):
    with pytest.raises(MissingPathError, match="nowhere"):
        TextSet.read(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no category sub-folders"):
        TextSet.read(tmp_path)
    write_folder(tmp_path, {"a": ["fine"], "b": []})
    with pytest.raises(ValueError, match=r"category folder '.*/b' holds no \.txt file"):
        TextSet.read(tmp_path)
    (tmp_path / "b" / "bad.txt").write_bytes(b"ok \xff\xfe broken")
    with pytest.raises(ValueError, match=r"bad\.txt cannot be decoded as utf-8"):
        TextSet.read(tmp_path)
    lazy = TextSet.read(tmp_path, npartitions=2).tokenize()  # distributed: read (and failing) in the tasks
    with pytest.raises(ValueError, match=r"bad\.txt cannot be decoded as utf-8"):
        lazy.word2idx()
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        TextSet.read(tmp_path, encoding="klingon")


def test_column_errors(tmp_path):
    frame = pd.DataFrame({"text": ["a b", None, "c", np.nan], "y": [0, 1, 1, 0]}, index=[10, 11, 12, 13])
    with pytest.raises(ValueError, match=r"column\(s\) \['body'\] not found; available: \['text', 'y'\]"):
        TextSet.from_dataframe(frame, text_col="body")
    with pytest.raises(ValueError, match=r"\['label'\] not found; available"):
        TextSet.from_dataframe(frame, label_col="label")
    with pytest.raises(ValueError, match=r"column 'text' has 2 missing value\(s\) \(the first at row index 11\)"):
        TextSet.from_dataframe(frame, label_col="y")
    frame.to_csv(tmp_path / "docs.csv", index=False)
    with pytest.raises(ValueError, match=r"\['kind'\] not found in .*docs\.csv.*available: \['text', 'y'\]"):
        TextSet.read_csv(tmp_path / "docs.csv", label_col="kind")
    labels = pd.DataFrame({"text": ["a", "b", "c"], "y": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match=r"column 'y' has 1 missing value\(s\) \(the first at row index 1\)"):
        TextSet.from_dataframe(labels, label_col="y")
    with pytest.raises(TypeError, match="column 'y' must hold integers or strings, found \\['double'\\]"):
        TextSet.from_dataframe(labels.fillna(0.0), label_col="y")
    with pytest.raises(ValueError, match=r"negative label -1 \(at row index 2\)"):
        TextSet.from_dataframe(labels.assign(y=[0, 1, -1]), label_col="y")
    with pytest.raises(TypeError, match=r"column 'text' must hold text \(strings\), found \['integer'\]"):
        TextSet.from_dataframe(pd.DataFrame({"text": [1, 2]}))
    with pytest.raises(TypeError, match="pandas or dask DataFrame, got list"):
        TextSet.from_dataframe(["a b"])
    with pytest.raises(ValueError, match="no rows"):
        TextSet.from_dataframe(pd.DataFrame({"text": pd.Series([], dtype=str)}))


def test_missing_text_in_a_distributed_frame_is_counted(context):
    frame = pd.DataFrame({"text": ["a", "b", None, "c", None, "d"]})
    with pytest.raises(ValueError, match=r"column 'text' has 2 missing value\(s\) \(the first at row index 2\)"):
        TextSet.from_dataframe(dd.from_pandas(frame, npartitions=3))


def test_steps_out_of_order_and_bad_options(tmp_path):
    texts = TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS}))
    with pytest.raises(ValueError, match=r"to_arrays\(\) needs tokenize\(\) and word2idx\(\) and shape_sequence"):
        texts.to_arrays()
    with pytest.raises(ValueError, match=r"to_arrays\(\) needs shape_sequence\(length\) first"):
        texts.tokenize().word2idx().to_arrays()
    with pytest.raises(ValueError, match=r"word2idx\(\) needs tokenize\(\) first"):
        texts.word2idx()
    with pytest.raises(ValueError, match="already tokenized"):
        texts.tokenize().tokenize()
    mapped = texts.tokenize().word2idx()
    with pytest.raises(ValueError, match=r"normalize\(\) must come before word2idx\(\)"):
        mapped.normalize()
    with pytest.raises(ValueError, match="trunc_mode must be one of \\('pre', 'post'\\), got 'middle'"):
        mapped.shape_sequence(3, trunc_mode="middle")
    with pytest.raises(ValueError, match="length must be a positive integer, got 0"):
        mapped.shape_sequence(0)
    with pytest.raises(ValueError, match="leave no word of the 12 distinct words"):
        texts.tokenize().normalize().word2idx(min_freq=4)
    with pytest.raises(ValueError, match="remove_topN must be an integer >= 0, got -1"):
        texts.tokenize().word2idx(remove_topN=-1)
    with pytest.raises(ValueError, match="shape a vocabulary being fitted"):
        texts.tokenize().word2idx(existing_map={"cat": 2}, max_words_num=5)
    with pytest.raises(ValueError, match="the word 'cat' has index 1; word indices are integers from 2"):
        texts.tokenize().word2idx(existing_map={"cat": 1})
    for weights in ([], [0.5, -0.5], [1, float("nan")], "ab", [[0.5, 0.5]]):
        with pytest.raises(ValueError, match="weights must be a non-empty sequence of positive finite numbers"):
            texts.random_split(weights)
    with pytest.raises(ValueError, match="call word2idx"):
        texts.save_word_index(tmp_path / "words.json")


def test_damaged_word_index_files_are_named(tmp_path):
    texts = TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS}))
    with pytest.raises(MissingPathError, match="absent.json"):
        texts.load_word_index(tmp_path / "absent.json")
    damaged = tmp_path / "damaged.json"
    for content, problem in [('{"the": 2, "cat"', "is not a JSON word index"),
                             ('["the", "cat"]', "expected a non-empty mapping"),
                             ('{"the": "two"}', "the word 'the' has index 'two'"), ('{"the": 2.5}', "has index 2.5")]:
        damaged.write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match=f"damaged.json.*{problem}"):
            texts.load_word_index(damaged)


def test_transforms_leave_the_original_set_unchanged():
    texts = TextSet.from_dataframe(pd.DataFrame({"text": DOCUMENTS}))
    done = pipeline(texts, 3)
    assert list(texts.frame.columns) == ["text", "row_id"] and texts.word_index_ is None
    assert list(done.frame.columns) == ["text", "row_id", "tokens", "indices", "sequence"]
    assert repr(done) == "TextSet(5 documents, local, steps done: tokenize(), word2idx(), shape_sequence(length))"


# ----------------------------------------------------------------------------- end to end


TOPICS = {
    "sport": ["goal", "match", "team", "coach", "score", "league"],
    "food": ["pizza", "pasta", "recipe", "taste", "oven", "spice"],
    "tech": ["code", "chip", "laptop", "cloud", "software", "server"],
}
FILLER = ["the", "a", "of", "today", "really", "new", "big", "and", "with", "we", "some", "about"]


class MeanEmbeddingClassifier(torch.nn.Module):
    """Embedding, mean over the non-padding positions, then a linear layer."""

    def __init__(self, vocabulary: int, classes: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocabulary, 12, padding_idx=PAD_INDEX)
        self.output = torch.nn.Linear(12, classes)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        present = (indices != PAD_INDEX).unsqueeze(-1).float()
        return self.output((self.embedding(indices) * present).sum(1) / present.sum(1).clamp(min=1.0))


def test_folder_of_text_files_to_a_trained_classifier(tmp_path, context):
    rng = np.random.default_rng(5)

    def document(topic: str) -> str:
        words = list(rng.choice(TOPICS[topic], 3)) + list(rng.choice(FILLER, 9))
        rng.shuffle(words)
        return " ".join(w.upper() + "!" if rng.random() < 0.2 else w for w in words)

    write_folder(tmp_path, {topic: [document(topic) for _ in range(60)] for topic in TOPICS})
    train, validation = TextSet.read(tmp_path, npartitions=3).tokenize().normalize().random_split([0.75, 0.25], seed=1)
    train = train.word2idx().shape_sequence(12)
    validation = validation.word2idx(existing_map=train.word_index_).shape_sequence(12)
    vocabulary = max(train.word_index_.values()) + 1

    estimator = wb.Estimator.from_torch(lambda: MeanEmbeddingClassifier(vocabulary, 3), optimizer="adam",
                                        optimizer_kwargs={"lr": 0.05}, loss="cross_entropy", metrics=["accuracy"])
    estimator.fit(train.to_arrays(), epochs=12, batch_size=16, verbose=False)
    assert estimator.evaluate(validation.to_arrays())["accuracy"] >= 0.9
