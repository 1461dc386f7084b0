"""Recommenders: Neural Collaborative Filtering and Wide & Deep, and their top-k recommendations.

Analytics Zoo's two recommendation models, as built-in models (see :mod:`workbench.models.base`):

- :class:`NCF` (NeuralCF, He et al. 2017) scores a (user, item) pair from learned user and item
  embeddings: a multilayer perceptron over their concatenation plus, optionally, their
  element-wise product (generalised matrix factorisation);
- :class:`WideAndDeep` (Cheng et al. 2016) adds a linear model over one-hot and crossed
  categorical columns (*wide*, memorisation) to a multilayer perceptron over one-hot columns,
  embeddings and continuous columns (*deep*, generalisation).

The Estimator feeds a model one array, so each model's :meth:`encode` turns a table (one row
per user-item pair) into that array. Both models end in one of three heads:

=====================  ============  =================  ================================================
arguments              output        default loss       labels
=====================  ============  =================  ================================================
``implicit=True``      one logit     bce_with_logits    1 for an interaction, 0 for a sampled negative
``class_num=K``        ``K`` logits  cross_entropy      classes 0..K-1 (``rating - 1`` for ratings 1-5)
neither                one value     mse                the rating itself (regression)
=====================  ============  =================  ================================================

:func:`recommend_for_user` and :func:`recommend_for_item` (Analytics Zoo's
``recommendForUser`` / ``recommendForItem``) score every candidate pair and keep the ``k`` best
per user or item, by the model's :meth:`ranking_scores`: the interaction probability, the
expected class (classes taken as ordered levels, as ratings are) or the predicted rating.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from workbench.arguments import check_positive_int
from workbench.models.base import BuiltinModel
from workbench.train.backends.torch import to_tensor

__all__ = ["NCF", "WideAndDeep", "recommend_for_user", "recommend_for_item"]

#: Loss and metrics of each head.
_HEADS = {
    "implicit": ("bce_with_logits", ("accuracy",)),
    "classes": ("cross_entropy", ("accuracy",)),
    "regression": ("mse", ("rmse", "mae")),
}
#: Ids and hash buckets travel in float32 inputs (WideAndDeep), exact up to this count.
_MAX_FLOAT32_COUNT = 2**24
#: The multiplier and modulus of the hash that crosses columns.
_CROSS_MULTIPLIER, _CROSS_MODULUS = 1_000_003, 2_147_483_647


class _Recommender:
    """What NCF and WideAndDeep share: their head, their ranking score and their catalogue.

    A mixin (not a :class:`BuiltinModel` itself, so it is not a model a saved config can name).
    """

    #: Catalogue sizes, where the model knows them (NCF does): the default recommendation candidates.
    user_count: int | None = None
    item_count: int | None = None

    def _set_head(self, class_num: int | None, implicit: bool) -> int:
        """Choose the head; returns the output width."""
        if not isinstance(implicit, bool):
            raise TypeError(f"implicit must be True or False, got {implicit!r}")
        if class_num is not None:
            check_positive_int("class_num", class_num)
            if class_num < 2:
                raise ValueError(f"class_num must be at least 2, got {class_num}")
            if implicit:
                raise ValueError("give class_num (rating classes) or implicit=True (interactions), not both")
        self.head = "implicit" if implicit else "regression" if class_num is None else "classes"
        return class_num or 1

    @property
    def default_loss(self) -> str:
        """The loss of the head: bce_with_logits, cross_entropy or mse."""
        return _HEADS[self.head][0]

    @property
    def default_metrics(self) -> tuple[str, ...]:
        """The metrics of the head: accuracy, or rmse and mae for a regression."""
        return _HEADS[self.head][1]

    def ranking_scores(self, output: np.ndarray) -> np.ndarray:
        """One score per row of model output, higher for a better recommendation.

        The interaction probability (implicit), the expected class under the softmax (classes)
        or the output itself (regression).
        """
        output = np.asarray(output, dtype=np.float64)
        if self.head == "classes":
            probabilities = np.exp(output - output.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            return probabilities @ np.arange(output.shape[1])
        output = output.reshape(len(output))
        return 1.0 / (1.0 + np.exp(-output)) if self.head == "implicit" else output

    def _finish(self, output: torch.Tensor) -> torch.Tensor:
        """The head's output: one column is returned as a vector."""
        return output.squeeze(1) if self.head != "classes" else output


class NCF(_Recommender, BuiltinModel):
    """Neural Collaborative Filtering: ``(batch, 2)`` (user id, item id) pairs -> scores.

    The MLP tower embeds the user (``user_embed`` values) and the item (``item_embed``) and
    runs their concatenation through ``hidden_layers`` (Linear + ReLU each); with
    ``include_mf``, a generalised matrix factorisation multiplies separate user and item
    embeddings (``mf_embed`` values) element-wise. A linear layer over both gives the output
    (see the module docstring for the heads). Ids are ``0..user_count-1`` and
    ``0..item_count-1``; :meth:`encode` takes them from a table's ``user`` and ``item`` columns.

    Args:
        user_count, item_count: the numbers of users and items.
        class_num: rating classes (cross-entropy head); None for implicit feedback or regression.
        implicit: one logit of "the user interacted with the item" (bce_with_logits head).
        user_embed, item_embed: the MLP tower's embedding sizes.
        hidden_layers: the MLP tower's layer widths (may be empty).
        include_mf: whether the matrix factorisation part is there.
        mf_embed: its embedding size.

    Raises:
        ValueError: a bad argument (named; TypeError for a wrong type). In ``forward``: input
            that is not ``(batch, 2)``, fractional ids, or ids out of range.

    Example::

        import workbench as wb
        from workbench.datasets.ratings import leave_one_out, movielens_like, negative_samples
        from workbench.models.ranking import hit_ratio_at_k
        from workbench.models.recommendation import NCF, recommend_for_user

        wb.init()
        ratings = movielens_like(users=300)
        items = ratings.attrs["items"]
        train, test = leave_one_out(ratings)
        train_pairs = negative_samples(train, items, negatives=4, exclude=ratings)
        test_pairs = negative_samples(test, items, negatives=99, exclude=ratings)
        model = NCF(user_count=ratings.attrs["users"], item_count=items, implicit=True)
        estimator = model.estimator(lr=0.02)
        estimator.fit((model.encode(train_pairs), train_pairs["label"].to_numpy()), epochs=5, batch_size=512,
                      verbose=False)
        scores = estimator.predict(model.encode(test_pairs)).compute().reshape(-1, 100)
        print(hit_ratio_at_k(scores[:, 0], scores[:, 1:], k=10))  # about 0.57; ranking by popularity: 0.18
        print(recommend_for_user(estimator, users=[0, 1], k=5, exclude=train))
    """

    def __init__(self, user_count: int, item_count: int, class_num: int | None = None, implicit: bool = False,
                 user_embed: int = 20, item_embed: int = 20, hidden_layers: Sequence[int] = (40, 20, 10),
                 include_mf: bool = True, mf_embed: int = 20) -> None:
        for name, value in (("user_count", user_count), ("item_count", item_count), ("user_embed", user_embed),
                            ("item_embed", item_embed), ("mf_embed", mf_embed)):
            check_positive_int(name, value)
        hidden_layers = _layer_widths(hidden_layers)
        if not isinstance(include_mf, bool):
            raise TypeError(f"include_mf must be True or False, got {include_mf!r}")
        super().__init__(user_count=int(user_count), item_count=int(item_count), class_num=class_num,
                         implicit=implicit, user_embed=int(user_embed), item_embed=int(item_embed),
                         hidden_layers=hidden_layers, include_mf=include_mf, mf_embed=int(mf_embed))
        width = self._set_head(class_num, implicit)
        self.user_count, self.item_count = int(user_count), int(item_count)
        self.mlp_user = nn.Embedding(user_count, user_embed)
        self.mlp_item = nn.Embedding(item_count, item_embed)
        self.mlp = _perceptron(user_embed + item_embed, hidden_layers)
        tower_width = hidden_layers[-1] if hidden_layers else user_embed + item_embed
        if include_mf:
            self.mf_user = nn.Embedding(user_count, mf_embed)
            self.mf_item = nn.Embedding(item_count, mf_embed)
        self.output = nn.Linear(tower_width + (mf_embed if include_mf else 0), width)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """Scores of ``(batch, 2)`` (user id, item id) pairs: ``(batch,)``, or ``(batch, class_num)``."""
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"NCF takes a (batch, 2) array of (user id, item id) pairs, "
                             f"got shape {tuple(pairs.shape)}")
        ids = _checked_ids(pairs, [("user", self.user_count), ("item", self.item_count)], "NCF")
        users, items = ids[:, 0], ids[:, 1]
        parts = [self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=1))]
        if self.config["include_mf"]:
            parts.append(self.mf_user(users) * self.mf_item(items))
        return self._finish(self.output(torch.cat(parts, dim=1)))

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The model input of a table's ``user`` and ``item`` columns: ``(rows, 2)`` int64 ids."""
        codes = [_codes(frame, name, count, "NCF") for name, count in (("user", self.user_count),
                                                                        ("item", self.item_count))]
        return np.stack(codes, axis=1)


class WideAndDeep(_Recommender, BuiltinModel):
    """Wide & Deep: a linear model over sparse columns plus an MLP over dense ones, summed.

    The column spec names a table's columns; categorical columns hold integer codes
    ``0..cardinality-1`` or are pandas categoricals (their codes are used):

    - ``wide_columns``: ``{name: cardinality}``, one-hot columns of the linear (wide) part;
    - ``crossed_columns``: ``[([name, name, ...], buckets), ...]``, crosses of categorical
      (or integer) columns, hashed into ``buckets`` values, also in the wide part;
    - ``indicator_columns``: ``{name: cardinality}``, one-hot columns of the deep part;
    - ``embedding_columns``: ``{name: (cardinality, size)}``, learned embeddings in the deep part
      (e.g. the user and item ids);
    - ``continuous_columns``: ``[name, ...]``, numbers fed to the deep part as they are (scale them).

    The deep part runs its inputs through ``hidden_layers`` (Linear + ReLU each) and a linear
    layer; the output (see the module docstring for the heads) is the sum of both parts. Leaving
    out the columns of one part gives a wide-only or deep-only model. :meth:`encode` turns a table
    into the model input, one float32 column per entry above in that order (``input_columns``
    names them; a column named in several parts appears once per part).

    Args:
        wide_columns, crossed_columns, indicator_columns, embedding_columns, continuous_columns:
            the column spec above (each may be omitted; at least one column is needed).
        hidden_layers: the deep part's layer widths (may be empty).
        class_num: rating classes (cross-entropy head); None for implicit feedback or regression.
        implicit: one logit of "the user interacted with the item" (bce_with_logits head).

    Raises:
        ValueError: a bad spec or argument (named). In ``forward``: input of the wrong width,
            or codes that are fractional or out of range (the column is named).

    Example::

        import workbench as wb
        from workbench.datasets.ratings import AGE_GROUPS, GENDERS, GENRES, OCCUPATIONS, movielens_like
        from workbench.models.recommendation import WideAndDeep, recommend_for_user

        wb.init()
        ratings = movielens_like(users=300)
        ratings["year_scaled"] = (ratings["year"] - 1990) / 10
        model = WideAndDeep(
            wide_columns={"gender": len(GENDERS), "age_group": len(AGE_GROUPS), "genre": len(GENRES)},
            crossed_columns=[(["occupation", "genre"], 500), (["age_group", "gender", "genre"], 500)],
            indicator_columns={"genre": len(GENRES), "occupation": len(OCCUPATIONS)},
            embedding_columns={"user": (ratings.attrs["users"], 16), "item": (ratings.attrs["items"], 16)},
            continuous_columns=["year_scaled"], class_num=5)
        train = ratings.sample(frac=0.8, random_state=0)
        test = ratings.drop(train.index)
        estimator = model.estimator(lr=0.01)
        estimator.fit((model.encode(train), train["rating"].to_numpy() - 1), epochs=5, batch_size=256,
                      verbose=False)
        print(estimator.evaluate((model.encode(test), test["rating"].to_numpy() - 1)))
        users = ratings.groupby("user")[["gender", "age_group", "occupation"]].first()
        items = ratings.groupby("item")[["genre", "year_scaled"]].first()
        print(recommend_for_user(estimator, users=[0, 1], k=5, items=items.index,
                                 user_features=users, item_features=items))
    """

    def __init__(self, wide_columns: Mapping[str, int] | None = None,
                 crossed_columns: Sequence[tuple[Sequence[str], int]] | None = None,
                 indicator_columns: Mapping[str, int] | None = None,
                 embedding_columns: Mapping[str, tuple[int, int]] | None = None,
                 continuous_columns: Sequence[str] | None = None, hidden_layers: Sequence[int] = (40, 20, 10),
                 class_num: int | None = None, implicit: bool = False) -> None:
        wide = _cardinalities(wide_columns, "wide_columns")
        crossed = _crosses(crossed_columns)
        indicators = _cardinalities(indicator_columns, "indicator_columns")
        embeddings = _embedding_specs(embedding_columns)
        continuous = _names(continuous_columns, "continuous_columns")
        hidden_layers = _layer_widths(hidden_layers)
        if not (wide or crossed or indicators or embeddings or continuous):
            raise ValueError("WideAndDeep needs at least one column in its spec")
        super().__init__(wide_columns=wide, crossed_columns=crossed, indicator_columns=indicators,
                         embedding_columns=embeddings, continuous_columns=continuous, hidden_layers=hidden_layers,
                         class_num=class_num, implicit=implicit)
        width = self._set_head(class_num, implicit)
        # the categorical input columns, in input order: (name, count) of each
        self._wide_inputs = list(wide.items()) + [("-".join(names), buckets) for names, buckets in crossed]
        self._indicator_inputs = list(indicators.items())
        self._embedding_inputs = [(name, count) for name, (count, _) in embeddings.items()]
        self.input_columns = [name for name, _ in self._categorical_inputs] + continuous
        if self._wide_inputs:
            counts = torch.tensor([count for _, count in self._wide_inputs])
            self.register_buffer("wide_offsets", torch.cumsum(counts, 0) - counts, persistent=False)
            self.wide = nn.Embedding(int(counts.sum()), width)  # one weight row per one-hot value
            nn.init.zeros_(self.wide.weight)
            self.wide_bias = nn.Parameter(torch.zeros(width))
        deep_width = sum(indicators.values()) + sum(size for _, size in embeddings.values()) + len(continuous)
        self.has_deep = deep_width > 0
        if self.has_deep:
            self.embeddings = nn.ModuleList(nn.Embedding(count, size) for count, size in embeddings.values())
            self.deep = nn.Sequential(_perceptron(deep_width, hidden_layers),
                                      nn.Linear(hidden_layers[-1] if hidden_layers else deep_width, width))

    @property
    def _categorical_inputs(self) -> list[tuple[str, int]]:
        return self._wide_inputs + self._indicator_inputs + self._embedding_inputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Scores of ``(batch, len(input_columns))`` inputs: ``(batch,)``, or ``(batch, class_num)``."""
        if inputs.ndim != 2 or inputs.shape[1] != len(self.input_columns):
            raise ValueError(f"WideAndDeep takes a (batch, {len(self.input_columns)}) array with the columns "
                             f"{self.input_columns}, got shape {tuple(inputs.shape)}")
        categorical = len(self._categorical_inputs)
        codes = _checked_ids(inputs[:, :categorical], self._categorical_inputs, "WideAndDeep")
        wide_codes, deep_codes = codes[:, :len(self._wide_inputs)], codes[:, len(self._wide_inputs):]
        output = 0
        if self._wide_inputs:
            output = self.wide(wide_codes + self.wide_offsets).sum(dim=1) + self.wide_bias
        if self.has_deep:
            indicators = len(self._indicator_inputs)
            parts = [nn.functional.one_hot(deep_codes[:, i], count).float()
                     for i, (_, count) in enumerate(self._indicator_inputs)]
            parts += [embedding(deep_codes[:, indicators + i]) for i, embedding in enumerate(self.embeddings)]
            parts.append(inputs[:, categorical:].float())
            output = output + self.deep(torch.cat(parts, dim=1))
        return self._finish(output)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The model input of a table: ``(rows, len(input_columns))`` float32, columns as the spec says.

        Raises:
            ValueError: a missing column, missing values, or codes out of range (named).
            TypeError: a categorical column that holds neither integers nor categories.
        """
        columns = [_codes(frame, name, count, "WideAndDeep") for name, count in self.config["wide_columns"].items()]
        columns += [_cross(frame, names, buckets) for names, buckets in self.config["crossed_columns"]]
        columns += [_codes(frame, name, count, "WideAndDeep")
                    for name, count in self._indicator_inputs + self._embedding_inputs]
        columns += [_numbers(frame, name) for name in self.config["continuous_columns"]]
        return np.stack(columns, axis=1).astype(np.float32)


# -- recommendations ---------------------------------------------------------------------------


def recommend_for_user(model: Any, users: Sequence[int], k: int, items: Sequence[int] | None = None, *,
                       user_features: pd.DataFrame | None = None, item_features: pd.DataFrame | None = None,
                       exclude: pd.DataFrame | None = None, batch_size: int = 4096) -> pd.DataFrame:
    """The ``k`` best-scored items for each user (Analytics Zoo's ``recommendForUser``).

    Every (user, candidate item) pair is scored by the model (on the cluster for an
    Estimator, in this process for a model) and ranked by the model's ``ranking_scores``.

    Args:
        model: an :class:`NCF` or :class:`WideAndDeep`, or an Estimator training one.
        users: the user ids to recommend to.
        k: items per user (fewer when a user has fewer candidates).
        items: the candidate item ids (default: every item of an NCF; required for WideAndDeep).
        user_features, item_features: tables indexed by user / item id whose columns are joined
            to the pairs before :meth:`encode` (the columns a WideAndDeep spec names).
        exclude: a table of ``user`` and ``item`` pairs never recommended (e.g. the training ratings).
        batch_size: pairs scored at once.

    Returns:
        Columns ``user``, ``item``, ``score`` and ``rank`` (1 = best), sorted by user then rank;
        equal scores are ranked by item id.
    """
    return _top_k(model, "user", users, "item", items, k, user_features, item_features, exclude, batch_size)


def recommend_for_item(model: Any, items: Sequence[int], k: int, users: Sequence[int] | None = None, *,
                       user_features: pd.DataFrame | None = None, item_features: pd.DataFrame | None = None,
                       exclude: pd.DataFrame | None = None, batch_size: int = 4096) -> pd.DataFrame:
    """The ``k`` best-scored users for each item (Analytics Zoo's ``recommendForItem``).

    Args:
        model, user_features, item_features, exclude, batch_size: as for :func:`recommend_for_user`.
        items: the item ids to find users for.
        k: users per item (fewer when an item has fewer candidates).
        users: the candidate user ids (default: every user of an NCF; required for WideAndDeep).

    Returns:
        Columns ``item``, ``user``, ``score`` and ``rank`` (1 = best), sorted by item then rank;
        equal scores are ranked by user id.
    """
    return _top_k(model, "item", items, "user", users, k, user_features, item_features, exclude, batch_size)


def _top_k(model: Any, key: str, keys: Sequence[int], other: str, candidates: Sequence[int] | None, k: int,
           user_features: pd.DataFrame | None, item_features: pd.DataFrame | None, exclude: pd.DataFrame | None,
           batch_size: int) -> pd.DataFrame:
    """The ``k`` best ``other`` ids for each ``key`` id ("user" or "item") among the candidates."""
    recommender = _recommender(model)
    check_positive_int("k", k)
    check_positive_int("batch_size", batch_size)
    keys = _id_list(keys, f"{key}s")
    if candidates is None:
        count = getattr(recommender, f"{other}_count")
        if count is None:
            raise ValueError(f"{type(recommender).__name__} does not know its {other}s: pass the candidate {other}s")
        candidates = range(count)
    candidates = _id_list(candidates, f"{other}s")
    pairs = pd.DataFrame({key: np.repeat(keys, len(candidates)), other: np.tile(candidates, len(keys))})
    if exclude is not None:
        pairs = _without(pairs, exclude)
    if pairs.empty:
        raise ValueError(f"no candidate {other} is left for the {key}s once exclude is applied")
    inputs = recommender.encode(_with_features(_with_features(pairs, user_features, "user"), item_features, "item"))
    pairs["score"] = recommender.ranking_scores(_outputs(model, recommender, inputs, batch_size))
    ranked = pairs.sort_values([key, "score", other], ascending=[True, False, True], kind="stable")
    ranked = ranked.groupby(key).head(k).copy()
    ranked["rank"] = ranked.groupby(key).cumcount() + 1
    return ranked.reset_index(drop=True)


def _recommender(model: Any) -> _Recommender:
    """The NCF or WideAndDeep behind ``model`` (itself, or an Estimator's model)."""
    from workbench.train.estimator import Estimator

    module = model.model_ if isinstance(model, Estimator) else model
    if not isinstance(module, _Recommender):
        raise TypeError(f"expected an NCF or WideAndDeep model, or an Estimator of one, got {type(module).__name__}")
    return module


def _outputs(model: Any, recommender: _Recommender, inputs: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's outputs for ``inputs``: on the cluster for an Estimator, here for a model."""
    if recommender is not model:
        return model.predict(inputs, batch_size=batch_size).compute()
    was_training = recommender.training
    recommender.eval()
    try:
        with torch.no_grad():
            outputs = [recommender(to_tensor(inputs[start:start + batch_size])).numpy()
                       for start in range(0, len(inputs), batch_size)]
    finally:
        recommender.train(was_training)
    return np.concatenate(outputs)


def _id_list(ids: Any, name: str) -> np.ndarray:
    """Distinct ids (in order of first appearance) as int64, or a ValueError."""
    values = np.asarray(ids).reshape(-1) if not np.isscalar(ids) else np.asarray([ids])
    if values.dtype.kind not in "iu" or not len(values):
        raise ValueError(f"{name} must be a non-empty sequence of integer ids, got {ids!r:.100}")
    return pd.unique(values.astype(np.int64))


def _without(pairs: pd.DataFrame, exclude: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` less those (user, item) pairs that ``exclude`` holds."""
    missing = {"user", "item"} - set(getattr(exclude, "columns", ()))
    if missing:
        raise ValueError(f"exclude must be a table with user and item columns, it lacks {sorted(missing)}")
    excluded = pd.MultiIndex.from_frame(exclude[["user", "item"]].astype(np.int64))
    kept = ~pd.MultiIndex.from_frame(pairs[["user", "item"]]).isin(excluded)
    return pairs[kept].reset_index(drop=True)


def _with_features(pairs: pd.DataFrame, features: pd.DataFrame | None, key: str) -> pd.DataFrame:
    """``pairs`` with the columns of ``features`` (indexed by ``key`` id) joined on ``key``."""
    if features is None:
        return pairs
    if not isinstance(features, pd.DataFrame) or not features.index.is_unique:
        raise ValueError(f"{key}_features must be a DataFrame indexed by distinct {key} ids")
    unknown = np.setdiff1d(pairs[key].unique(), features.index)
    if len(unknown):
        raise ValueError(f"{key}_features has no row for the {key}s {unknown[:10].tolist()}")
    return pairs.join(features.drop(columns=["user", "item"], errors="ignore"), on=key)


# -- input checks and encoding ----------------------------------------------------------------


def _checked_ids(values: torch.Tensor, columns: Sequence[tuple[str, int]], model: str) -> torch.Tensor:
    """``values`` as int64 ids, column ``j`` within ``0..columns[j][1]-1``, or a ValueError naming the column."""
    if values.is_floating_point():
        if not torch.equal(values, values.round()):
            raise ValueError(f"{model} takes whole-number ids and codes, got fractional values")
    elif values.is_complex() or values.dtype == torch.bool:
        raise ValueError(f"{model} takes integer ids and codes, got {values.dtype}")
    ids = values.long()
    if len(ids):
        counts = torch.tensor([count for _, count in columns])
        bad = (ids < 0) | (ids >= counts)
        if bad.any():
            column = int(bad.any(dim=0).nonzero()[0])
            name, count = columns[column]
            found = ids[bad[:, column], column][0]
            raise ValueError(f"{model}: {name} must lie in 0..{count - 1}, got {int(found)}")
    return ids


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    if name not in frame.columns:
        raise ValueError(f"the table has no column {name!r}; it has {list(frame.columns)}")
    return frame[name]


def _integers(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column's integer codes (a categorical's codes), as int64."""
    series = _column(frame, name)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        if (codes < 0).any():
            raise ValueError(f"column {name!r} has missing values")
        return codes.astype(np.int64)
    if series.isna().any():
        raise ValueError(f"column {name!r} has missing values")
    values = series.to_numpy()
    if values.dtype.kind == "f" and np.array_equal(values, np.round(values)):
        return values.astype(np.int64)
    if values.dtype.kind not in "iub":
        raise TypeError(f"column {name!r} must hold integer codes or be categorical, got dtype {series.dtype}")
    return values.astype(np.int64)


def _codes(frame: pd.DataFrame, name: str, count: int, model: str) -> np.ndarray:
    """A categorical column's codes, checked to lie in ``0..count-1``."""
    codes = _integers(frame, name)
    if len(codes) and (codes.min() < 0 or codes.max() >= count):
        bad = codes[(codes < 0) | (codes >= count)][0]
        raise ValueError(f"{model}: column {name!r} must hold codes in 0..{count - 1}, got {bad}")
    return codes


def _cross(frame: pd.DataFrame, names: Sequence[str], buckets: int) -> np.ndarray:
    """The hash bucket of each row's combination of values in the columns ``names``."""
    hashed = np.zeros(len(frame), dtype=np.int64)
    for name in names:
        hashed = (hashed * _CROSS_MULTIPLIER + _integers(frame, name)) % _CROSS_MODULUS
    return hashed % buckets


def _numbers(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A continuous column as float64, checked finite."""
    series = _column(frame, name)
    if series.dtype.kind not in "iubf":
        raise TypeError(f"continuous column {name!r} must be numeric, got dtype {series.dtype}")
    values = series.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"continuous column {name!r} has missing or infinite values")
    return values


# -- architecture arguments -------------------------------------------------------------------


def _perceptron(width: int, hidden_layers: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU for each hidden width, from ``width`` inputs (no layers: the identity)."""
    layers: list[nn.Module] = []
    for hidden in hidden_layers:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers)


def _layer_widths(hidden_layers: Sequence[int]) -> list[int]:
    if isinstance(hidden_layers, (str, bytes)) or not isinstance(hidden_layers, Sequence):
        raise TypeError(f"hidden_layers must be a sequence of layer widths, got {hidden_layers!r}")
    for width in hidden_layers:
        check_positive_int("every hidden layer width", width)
    return [int(width) for width in hidden_layers]


def _names(names: Sequence[str] | None, argument: str) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"{argument} must be a list of column names, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{argument} names a column twice: {list(names)}")
    return list(names)


def _count(value: Any, what: str) -> int:
    check_positive_int(what, value)
    if value > _MAX_FLOAT32_COUNT:
        raise ValueError(f"{what} must be at most {_MAX_FLOAT32_COUNT} (codes travel as float32), got {value}")
    return int(value)


def _cardinalities(columns: Mapping[str, int] | None, argument: str) -> dict[str, int]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise TypeError(f"{argument} must map column names to cardinalities, got {columns!r}")
    _names(list(columns), argument)
    return {name: _count(count, f"the cardinality of {argument}[{name!r}]") for name, count in columns.items()}


def _crosses(columns: Sequence[tuple[Sequence[str], int]] | None) -> list[list]:
    crosses = []
    for cross in columns or []:
        if isinstance(cross, (str, bytes)) or not isinstance(cross, Sequence) or len(cross) != 2:
            raise TypeError(f"each crossed column must be ([column, column, ...], buckets), got {cross!r}")
        names, buckets = cross
        names = _names(names, "a crossed column")
        if len(names) < 2:
            raise ValueError(f"a crossed column crosses at least two columns, got {names}")
        crosses.append([names, _count(buckets, f"the buckets of the cross {names}")])
    return crosses


def _embedding_specs(columns: Mapping[str, tuple[int, int]] | None) -> dict[str, list[int]]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping):
        raise TypeError(f"embedding_columns must map column names to (cardinality, size), got {columns!r}")
    _names(list(columns), "embedding_columns")
    specs = {}
    for name, spec in columns.items():
        if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence) or len(spec) != 2:
            raise TypeError(f"embedding_columns[{name!r}] must be (cardinality, size), got {spec!r}")
        specs[name] = [_count(spec[0], f"the cardinality of embedding_columns[{name!r}]"),
                       _count(spec[1], f"the size of embedding_columns[{name!r}]")]
    return specs
