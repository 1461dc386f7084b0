"""TextClassifier: word-index sequences to class logits (Analytics Zoo's TextClassifier).

The model reads what :class:`workbench.feature.TextSet` produces: int64 word indices, 0 for
padding at the end of each sequence and 1 for words outside the vocabulary. It is

    embedding -> encoder -> Linear(encoder_output_dim, 128) -> Dropout -> ReLU -> Linear(128, class_num)

as in Analytics Zoo, which ends in a softmax; here the model returns logits and the default
loss, ``cross_entropy``, applies the softmax. The encoder is one of:

- ``"cnn"``: a 1-D convolution of width 5 over the word vectors (zero-padded to keep the
  length), ReLU, then the maximum over the positions holding a word;
- ``"lstm"`` / ``"gru"``: a recurrent layer run over each sequence's words only (packed, so the
  padding is never read), then the maximum of its outputs over those words. Max pooling over
  every step, rather than the last state alone, finds a key phrase early in a long message
  after a few epochs; the recurrent encoders need the padding at the end of each sequence.

Padding never changes a prediction: its vectors are zeros whatever row 0 of the embedding
holds, and it is left out of the pooling.

The embedding starts random (``vocab_size``) or from pretrained vectors (``embedding``, e.g.
``workbench.feature.load_embeddings(...).matrix``), trained along or frozen.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from workbench.arguments import check_positive_int
from workbench.models.base import BuiltinModel

__all__ = ["TextClassifier", "ENCODERS"]

#: The encoders a TextClassifier can use.
ENCODERS = ("cnn", "lstm", "gru")
_KERNEL_SIZE = 5
_HIDDEN_UNITS = 128
_PAD_INDEX = 0  # as TextSet pads (workbench.feature.text.PAD_INDEX)


class TextClassifier(BuiltinModel):
    """Classifies word-index sequences: ``(batch, sequence_length)`` int64 -> ``(batch, class_num)`` logits.

    Args:
        class_num: the number of classes (at least 2).
        vocab_size: the size of a new, randomly initialised embedding: the largest word index
            plus one (``len(textset.word_index_) + 2`` for a TextSet vocabulary).
        embedding: a ``(vocab_size, dim)`` matrix of pretrained word vectors that initialises
            the embedding instead; give exactly one of ``vocab_size`` and ``embedding``. The
            config keeps its shape only (as ``vocab_size`` and ``embedding_dim``): a saved
            model's vectors are restored with its weights.
        embedding_dim: the word-vector size of a new embedding (the matrix's width otherwise).
        sequence_length: the length of the input sequences.
        encoder: ``"cnn"``, ``"lstm"`` or ``"gru"`` (see the module docstring).
        encoder_output_dim: the convolution's channels or the recurrent layer's hidden size.
        dropout: the dropout rate before the last layer.
        train_embedding: whether training updates the embedding (False freezes pretrained vectors).

    Raises:
        ValueError: both or neither of ``vocab_size`` and ``embedding``, an unknown encoder,
            an embedding that is not a 2-D matrix of finite numbers with at least 2 rows, or
            another bad argument (each is named). In ``forward``: input that is not a
            ``(batch, sequence_length)`` matrix of whole numbers between 0 and ``vocab_size - 1``,
            or, for ``"lstm"`` and ``"gru"``, a word after padding.

    Example::

        import workbench as wb
        from workbench.datasets.text import intents
        from workbench.feature import TextSet
        from workbench.models.text import TextClassifier

        wb.init()
        texts = TextSet.from_dataframe(intents(n_per_intent=80), label_col="intent")
        train, test = texts.tokenize().normalize().random_split([0.8, 0.2])
        train = train.word2idx().shape_sequence(40, trunc_mode="post")
        test = test.word2idx(existing_map=train.word_index_).shape_sequence(40, trunc_mode="post")
        model = TextClassifier(class_num=len(texts.classes_), vocab_size=len(train.word_index_) + 2,
                               embedding_dim=32, sequence_length=40, encoder="cnn", encoder_output_dim=64)
        estimator = model.estimator(lr=5e-3)
        estimator.fit(train.to_arrays(), epochs=5, batch_size=32, verbose=False)
        print(estimator.evaluate(test.to_arrays()))  # {'loss': ..., 'accuracy': ...}
    """

    default_loss: ClassVar[Any] = "cross_entropy"
    default_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    def __init__(self, class_num: int, vocab_size: int | None = None, embedding: Any = None,
                 embedding_dim: int = 100, sequence_length: int = 500, encoder: str = "cnn",
                 encoder_output_dim: int = 256, dropout: float = 0.2, train_embedding: bool = True) -> None:
        if (vocab_size is None) == (embedding is None):
            raise ValueError("TextClassifier: give exactly one of vocab_size (a new embedding) and embedding "
                             "(a matrix of pretrained vectors)")
        vectors = None if embedding is None else _embedding_matrix(embedding)
        if vectors is not None:
            vocab_size, embedding_dim = vectors.shape
        _check_arguments(class_num, vocab_size, embedding_dim, sequence_length, encoder, encoder_output_dim,
                         dropout, train_embedding)
        class_num, vocab_size, embedding_dim = int(class_num), int(vocab_size), int(embedding_dim)
        encoder_output_dim = int(encoder_output_dim)
        super().__init__(class_num=class_num, vocab_size=vocab_size, embedding=None, embedding_dim=embedding_dim,
                         sequence_length=int(sequence_length), encoder=encoder, encoder_output_dim=encoder_output_dim,
                         dropout=float(dropout), train_embedding=train_embedding)
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=_PAD_INDEX)
        if vectors is not None:
            with torch.no_grad():
                self.embedding.weight.copy_(torch.from_numpy(vectors))
        self.embedding.weight.requires_grad_(train_embedding)
        if encoder == "cnn":
            self.encoder = nn.Conv1d(embedding_dim, encoder_output_dim, _KERNEL_SIZE, padding="same")
        else:
            recurrent = nn.LSTM if encoder == "lstm" else nn.GRU
            self.encoder = recurrent(embedding_dim, encoder_output_dim, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(encoder_output_dim, _HIDDEN_UNITS), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(_HIDDEN_UNITS, class_num),
        )

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, class_num)`` of word-index sequences ``(batch, sequence_length)``."""
        indices = self._checked_indices(sequences)
        words = indices != _PAD_INDEX
        vectors = self.embedding(indices).masked_fill(~words[:, :, None], 0.0)  # whatever row 0 holds
        if self.config["encoder"] == "cnn":
            encoded = self._convolve(vectors, words)
        else:
            encoded = self._recur(vectors, words)
        return self.head(encoded)

    def _convolve(self, vectors: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """The maximum of the ReLU'd convolution over the positions of words (0 for a sequence of padding)."""
        features = torch.relu(self.encoder(vectors.transpose(1, 2)))
        return features.masked_fill(~words[:, None, :], 0.0).amax(dim=2)

    def _recur(self, vectors: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """The maximum of the recurrent layer's outputs over each sequence's words (padding skipped)."""
        lengths = words.sum(dim=1).clamp(min=1)  # a sequence of padding only is read as one pad
        packed = nn.utils.rnn.pack_padded_sequence(vectors, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(self.encoder(packed)[0], batch_first=True,
                                                      total_length=vectors.shape[1])
        read = torch.arange(vectors.shape[1], device=lengths.device) < lengths[:, None]
        return outputs.masked_fill(~read[:, :, None], float("-inf")).amax(dim=1)

    def _checked_indices(self, sequences: torch.Tensor) -> torch.Tensor:
        """``sequences`` as int64 word indices, or a ValueError saying what is wrong with them."""
        expected = (self.config["sequence_length"],)
        if sequences.ndim != 2 or tuple(sequences.shape[1:]) != expected:
            raise ValueError(f"TextClassifier expects sequences of shape (batch, {expected[0]}), "
                             f"got {tuple(sequences.shape)}")
        if sequences.is_floating_point():
            if not torch.equal(sequences, sequences.round()):
                raise ValueError("TextClassifier expects word indices (whole numbers), got fractional values")
        elif sequences.is_complex() or sequences.dtype == torch.bool:
            raise ValueError(f"TextClassifier expects integer word indices, got {sequences.dtype}")
        indices = sequences.long()
        vocab_size = self.config["vocab_size"]
        if indices.numel() and (indices.min() < 0 or indices.max() >= vocab_size):
            raise ValueError(f"TextClassifier: word indices must lie in [0, {vocab_size - 1}] (vocab_size "
                             f"{vocab_size}), got values from {int(indices.min())} to {int(indices.max())}")
        if self.config["encoder"] != "cnn":
            words = indices != _PAD_INDEX
            if (words[:, 1:] & ~words[:, :-1]).any():
                raise ValueError(f"TextClassifier(encoder={self.config['encoder']!r}) needs the padding (0) at the "
                                 "end of each sequence, as TextSet.shape_sequence puts it; found a word after a 0")
        return indices


def _embedding_matrix(embedding: Any) -> np.ndarray:
    """``embedding`` as a float32 ``(rows, dim)`` matrix, or a ValueError naming what is wrong."""
    try:
        matrix = np.asarray(embedding, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"TextClassifier: embedding must be a numeric matrix ({error})") from None
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 1:
        raise ValueError(
            f"TextClassifier: embedding must be a (vocab_size, dim) matrix with at least 2 rows (padding and "
            f"unknown word) and 1 column, got shape {matrix.shape}"
        )
    if not np.isfinite(matrix).all():
        raise ValueError("TextClassifier: embedding holds NaN or infinite values")
    return matrix


def _check_arguments(class_num: Any, vocab_size: Any, embedding_dim: Any, sequence_length: Any, encoder: Any,
                     encoder_output_dim: Any, dropout: Any, train_embedding: Any) -> None:
    """Raise a ValueError naming the first bad architecture argument."""
    for name, value in (("class_num", class_num), ("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                        ("sequence_length", sequence_length), ("encoder_output_dim", encoder_output_dim)):
        check_positive_int(name, value)
    if class_num < 2:
        raise ValueError(f"TextClassifier: class_num must be at least 2, got {class_num}")
    if vocab_size < 2:
        raise ValueError(f"TextClassifier: vocab_size must be at least 2 (padding and unknown word), got {vocab_size}")
    if encoder not in ENCODERS:
        raise ValueError(f"TextClassifier: unknown encoder {encoder!r}; known: {list(ENCODERS)}")
    is_number = isinstance(dropout, (int, float, np.integer, np.floating)) and not isinstance(dropout, bool)
    if not is_number or not 0 <= dropout < 1:
        raise ValueError(f"TextClassifier: dropout must be a number in [0, 1), got {dropout!r}")
    if not isinstance(train_embedding, bool):
        raise ValueError(f"TextClassifier: train_embedding must be True or False, got {train_embedding!r}")
