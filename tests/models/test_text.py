"""TextClassifier on the intents corpus: accuracy after a distributed fit, reloading, embeddings, errors."""

from __future__ import annotations

import json

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.datasets.text import INTENTS, intents
from workbench.feature import TextSet, load_embeddings
from workbench.models.text import ENCODERS, TextClassifier

SEQUENCE_LENGTH = 40
SMALL = {"embedding_dim": 32, "sequence_length": SEQUENCE_LENGTH, "encoder_output_dim": 64}


@pytest.fixture(scope="module")
def corpus() -> pd.DataFrame:
    return intents(n_per_intent=150, seed=0)


@pytest.fixture
def intent_sets(context, corpus) -> tuple[TextSet, TextSet]:
    """Training and held-out messages (80/20), distributed over 4 partitions, as word-index sequences."""
    texts = TextSet.from_dataframe(dd.from_pandas(corpus, npartitions=4), label_col="intent")
    assert texts.classes_ == sorted(INTENTS)
    train, test = texts.tokenize().normalize().random_split([0.8, 0.2], seed=0)
    train = train.word2idx().shape_sequence(SEQUENCE_LENGTH, trunc_mode="post")
    test = test.word2idx(existing_map=train.word_index_).shape_sequence(SEQUENCE_LENGTH, trunc_mode="post")
    return train, test


def classifier(train: TextSet, **options) -> TextClassifier:
    return TextClassifier(class_num=len(INTENTS), vocab_size=len(train.word_index_) + 2, **{**SMALL, **options})


def local_logits(model: torch.nn.Module, sequences: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(sequences)).numpy()


@pytest.mark.parametrize("encoder", ["cnn", "lstm"])
def test_reaches_90_percent_on_held_out_messages(intent_sets, encoder):
    train, test = intent_sets
    estimator = classifier(train, encoder=encoder).estimator(lr=5e-3)
    estimator.fit(train.to_arrays(), epochs=5, batch_size=32, verbose=False)
    assert len(estimator.workers_) == 2
    scores = estimator.evaluate(test.to_arrays())
    assert scores["accuracy"] >= 0.9, scores  # measured 0.97-1.0; chance is 0.125


def test_saved_classifier_reloads_without_trust_code(intent_sets, tmp_path):
    train, test = intent_sets
    model = classifier(train, encoder="gru")
    estimator = model.estimator(lr=5e-3)
    estimator.fit(train.to_arrays(), epochs=2, batch_size=32, verbose=False)
    estimator.save(tmp_path / "intents")
    assert json.loads((tmp_path / "intents" / "builtin_model.json").read_text()) == {
        "class": "TextClassifier", "config": model.config}

    loaded = wb.Estimator.load(tmp_path / "intents")
    assert isinstance(loaded.model_, TextClassifier) and loaded.model_.config == model.config
    sequences, labels = (array.compute() for array in test.to_arrays())
    predicted = loaded.predict(sequences).compute()
    np.testing.assert_allclose(predicted, estimator.predict(sequences).compute(), rtol=1e-5, atol=1e-6)
    accuracy = loaded.evaluate((sequences, labels))["accuracy"]
    assert accuracy == pytest.approx(np.mean(predicted.argmax(axis=1) == labels))


@pytest.mark.parametrize("train_embedding", [False, True])
def test_embedding_matrix_initialises_the_model(intent_sets, tmp_path, train_embedding):
    train, test = intent_sets
    rng = np.random.default_rng(0)
    words = list(train.word_index_)[::2]  # half of the vocabulary has a pretrained vector
    vectors_file = tmp_path / "vectors.txt"
    vectors_file.write_text("".join(f"{word} {' '.join(f'{v:.4f}' for v in rng.normal(size=16))}\n" for word in words))
    pretrained = load_embeddings(vectors_file, train.word_index_)

    model = TextClassifier(class_num=len(INTENTS), embedding=pretrained.matrix, sequence_length=SEQUENCE_LENGTH,
                           encoder="cnn", encoder_output_dim=64, train_embedding=train_embedding)
    assert model.config["vocab_size"] == len(train.word_index_) + 2 and model.config["embedding_dim"] == 16
    assert model.config["embedding"] is None  # the config keeps the shape; the vectors travel as weights
    np.testing.assert_array_equal(model.embedding.weight.detach().numpy(), pretrained.matrix)

    estimator = model.estimator(lr=5e-3)
    estimator.fit(train.to_arrays(), epochs=2, batch_size=32, verbose=False)
    trained = estimator.model_.embedding.weight.detach().numpy().copy()
    assert np.array_equal(trained, pretrained.matrix) == (not train_embedding)
    sequences = test.to_arrays()[0].compute()
    np.testing.assert_allclose(estimator.predict(sequences).compute(), local_logits(estimator.model_, sequences),
                               rtol=1e-5, atol=1e-6)  # the workers used the same vectors

    estimator.save(tmp_path / "pretrained")
    loaded = wb.Estimator.load(tmp_path / "pretrained").model_
    np.testing.assert_array_equal(loaded.embedding.weight.detach().numpy(), trained)
    assert loaded.embedding.weight.requires_grad == train_embedding


def test_fit_names_sequences_of_the_wrong_length(intent_sets):
    train, _ = intent_sets
    sequences, labels = train.to_arrays()
    estimator = classifier(train, sequence_length=SEQUENCE_LENGTH + 1).estimator()
    with pytest.raises(ValueError, match=r"sequences of shape \(batch, 41\), got \(\d+, 40\)"):
        estimator.fit((sequences, labels), epochs=1, verbose=False)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_padding_does_not_change_the_logits(encoder):
    torch.manual_seed(0)
    long = TextClassifier(4, vocab_size=20, embedding_dim=8, sequence_length=10, encoder=encoder, encoder_output_dim=6)
    short = TextClassifier(4, vocab_size=20, embedding_dim=8, sequence_length=6, encoder=encoder, encoder_output_dim=6)
    short.load_state_dict(long.state_dict())
    with torch.no_grad():  # whatever the padding row holds
        long.embedding.weight[0] = 5.0
        short.embedding.weight[0] = -3.0
    padded = np.array([[5, 6, 7, 1, 0, 0, 0, 0, 0, 0], [0] * 10, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
    logits = local_logits(long, padded)
    np.testing.assert_allclose(logits[:2], local_logits(short, padded[:2, :6]), atol=1e-6)
    assert np.isfinite(logits).all() and not np.allclose(logits[0], logits[1])
    np.testing.assert_array_equal(local_logits(long, padded.astype(np.float32)), logits)  # whole-number floats


@pytest.mark.parametrize("arguments, message", [
    ({}, "exactly one of vocab_size .* and embedding"),
    ({"vocab_size": 10, "embedding": np.zeros((10, 4))}, "exactly one of vocab_size .* and embedding"),
    ({"vocab_size": 10, "encoder": "transformer"}, r"unknown encoder 'transformer'; known: \['cnn', 'lstm', 'gru'\]"),
    ({"embedding": np.zeros(10)}, r"embedding must be a \(vocab_size, dim\) matrix .* got shape \(10,\)"),
    ({"embedding": np.zeros((2, 3, 4))}, r"embedding must be a \(vocab_size, dim\) matrix .* got shape \(2, 3, 4\)"),
    ({"embedding": np.zeros((1, 4))}, r"at least 2 rows .* got shape \(1, 4\)"),
    ({"embedding": np.full((5, 4), np.nan)}, "embedding holds NaN"),
    ({"embedding": [["a", "b"], ["c", "d"]]}, "embedding must be a numeric matrix"),
    ({"class_num": 1, "vocab_size": 10}, "class_num must be at least 2"),
    ({"vocab_size": 1}, "vocab_size must be at least 2"),
    ({"vocab_size": 10, "embedding_dim": 0}, "embedding_dim must be a positive integer"),
    ({"vocab_size": 10, "dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"vocab_size": 10, "train_embedding": "no"}, "train_embedding must be True or False"),
])
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        TextClassifier(**{"class_num": 3, **arguments})


@pytest.mark.parametrize("encoder, sequences, message", [
    ("cnn", np.ones((2, 5)), r"sequences of shape \(batch, 4\), got \(2, 5\)"),
    ("cnn", np.ones(4), r"sequences of shape \(batch, 4\), got \(4,\)"),
    ("cnn", np.array([[1.5, 2, 0, 0]]), "whole numbers"),
    ("cnn", np.array([[2, 10, 0, 0]]), r"word indices must lie in \[0, 9\] .* from 0 to 10"),
    ("cnn", np.array([[-1, 2, 0, 0]]), r"word indices must lie in \[0, 9\]"),
    ("lstm", np.array([[0, 0, 2, 3]]), "needs the padding \\(0\\) at the end"),
])
def test_bad_sequences_are_named(encoder, sequences, message):
    model = TextClassifier(3, vocab_size=10, sequence_length=4, encoder=encoder)
    with pytest.raises(ValueError, match=message):
        model(torch.from_numpy(sequences))


def test_config_is_json_whatever_the_integer_type():
    model = TextClassifier(np.int64(3), vocab_size=np.int32(10), sequence_length=np.int64(4), dropout=np.float32(0.5))
    assert json.loads(json.dumps(model.config)) == model.config
    assert repr(model).startswith("TextClassifier(class_num=3, vocab_size=10, embedding=None, embedding_dim=100")
