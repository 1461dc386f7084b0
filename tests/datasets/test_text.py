"""The generated customer-service corpus: shape, determinism, the documented generative process."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from workbench.datasets.text import INTENTS, intents


def words_of(frame: pd.DataFrame) -> pd.Series:
    """Each message's lowercase words, punctuation stripped (one list per row)."""
    return frame["text"].str.lower().map(lambda text: re.findall(r"[a-z0-9$.]+", text.rstrip(".?!")))


def test_columns_classes_and_sizes():
    corpus = intents(n_per_intent=25)
    assert list(corpus.columns) == ["text", "intent"]
    assert len(INTENTS) == 8 and len(set(INTENTS)) == 8
    assert corpus["intent"].value_counts().to_dict() == dict.fromkeys(INTENTS, 25)
    assert corpus.index.equals(pd.RangeIndex(200))
    assert all(isinstance(text, str) and text for text in corpus["text"])
    assert corpus["intent"].iloc[:20].nunique() > 3  # rows are shuffled, not grouped by intent


def test_same_seed_same_corpus_other_seed_other_corpus():
    pd.testing.assert_frame_equal(intents(n_per_intent=20, seed=4), intents(n_per_intent=20, seed=4))
    assert not intents(n_per_intent=20, seed=4)["text"].equals(intents(n_per_intent=20, seed=5)["text"])


def test_messages_vary_in_length_and_share_words_across_intents():
    corpus = intents(n_per_intent=100)
    lengths = words_of(corpus).map(len)
    assert lengths.min() >= 4 and lengths.max() <= 45 and lengths.std() > 4
    intents_per_word = words_of(corpus).explode().to_frame("word").assign(intent=corpus["intent"]) \
        .groupby("word")["intent"].nunique()
    shared_fillers = ["account", "order", "please", "help"]
    key_words = ["charged", "refund", "cancel", "arrived", "address", "password", "app", "card"]
    for word in shared_fillers + key_words:
        assert intents_per_word[word] >= 4, word


def test_noise_is_the_typo_rate():
    clean_vocabulary = set(words_of(intents(n_per_intent=100, noise=0.0)).explode())
    noisy = words_of(intents(n_per_intent=100, noise=0.3, seed=1)).explode()
    unseen_letter_words = noisy[noisy.str.fullmatch("[a-z]{3,}") & ~noisy.isin(clean_vocabulary)]
    long_words = noisy.str.len() >= 3
    # About 30% of the words of 3+ letters get a typo; a few typos make another real word.
    assert 0.2 < len(unseen_letter_words) / long_words.sum() < 0.35
    clean_again = words_of(intents(n_per_intent=100, noise=0.0, seed=1)).explode()
    assert clean_again[clean_again.str.fullmatch("[a-z]+")].isin(clean_vocabulary).all()


@pytest.mark.parametrize("arguments, message", [
    ({"n_per_intent": 0}, "n_per_intent must be a positive integer"),
    ({"n_per_intent": 2.5}, "n_per_intent must be a positive integer"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"noise": 1.5}, "noise must be a number between 0 and 1"),
    ({"noise": "low"}, "noise must be a number between 0 and 1"),
])
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        intents(**arguments)
