"""MovieLens-like ratings, generated offline, and the implicit-feedback protocol of the NCF paper.

:func:`movielens_like` makes a ratings table shaped like MovieLens-1M (user, item, rating 1-5,
timestamp, user age group, gender and occupation, item genre and year) from a small latent
factor model, so recommendation models can be trained and checked without downloading anything.
Who rates what depends on popularity *and* taste, and the rating on taste, so a model that
learns users' tastes beats ranking by popularity, as on the real data.

Two helpers turn ratings into the implicit-feedback task of Neural Collaborative Filtering (He
et al., 2017): :func:`leave_one_out` holds out every user's latest rating as the test item, and
:func:`negative_samples` pairs every rated item (label 1) with items the user never rated
(label 0), for training (a few per positive) and for ranking evaluation (99 per held-out item,
scored with :func:`workbench.models.ranking.hit_ratio_at_k` and ``ndcg_at_k``)::

    ratings = movielens_like()
    train, test = leave_one_out(ratings)
    train_pairs = negative_samples(train, item_count=ratings.attrs["items"], negatives=4, exclude=ratings)
    test_pairs = negative_samples(test, item_count=ratings.attrs["items"], negatives=99, exclude=ratings)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from workbench.arguments import check_positive_int

__all__ = ["movielens_like", "leave_one_out", "negative_samples", "AGE_GROUPS", "GENDERS", "OCCUPATIONS",
           "GENRES"]

#: MovieLens-1M's user attributes and item genres (the values of the categorical columns).
AGE_GROUPS = ("Under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
GENDERS = ("F", "M")
OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)
GENRES = ("Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Horror", "Romance",
          "Sci-Fi")

#: Shares of the age groups and genders among MovieLens-1M's users.
_AGE_SHARES = (0.04, 0.18, 0.35, 0.20, 0.09, 0.08, 0.06)
_MALE_SHARE = 0.72
#: First rating time (2000-04-25, as MovieLens-1M) and the mean gap between one user's ratings, in seconds.
_START, _MEAN_GAP = 956_700_000, 3 * 86_400


def movielens_like(users: int = 500, items: int = 200, ratings_per_user: int = 20, factors: int = 4,
                   popularity_skew: float = 0.5, taste_strength: float = 4.0, seed: int = 0) -> pd.DataFrame:
    """A ratings table generated from latent factors, shaped like MovieLens-1M.

    How it is made (all draws from ``numpy.random.default_rng(seed)``):

    1. Users get an age group, a gender and an occupation (MovieLens-1M's shares for the first
       two, uniform for the third). A user's taste vector (``factors`` values) is the sum of a
       vector per age group, per gender and per occupation plus a personal part of the same size
       (all standard normal), so the attributes say something about tastes; the vectors are
       centred over the users, so no item suits everybody. Items get a genre (uniform) and a
       taste vector: a vector per genre plus a personal part, scaled to length 1; their year is
       drawn in 1950-2000, skewed to recent years.
    2. Exposure: items are ranked in a random order and item ``i`` of rank ``r`` gets the
       Zipf-like popularity ``1 / r ** popularity_skew``. Each user rates ``ratings_per_user``
       distinct items, drawn with probability proportional to
       ``popularity * exp(taste_strength * affinity)``, where ``affinity`` is the dot product of
       the user's and the item's taste vectors, standardised over all pairs.
    3. Rating: ``3.7 + user bias + item bias + affinity + noise``, rounded and clipped to 1..5,
       with the affinity centred over the rated pairs (users rate what they like, so it is high
       there); biases are normal (sd 0.3 and 0.5, older items a little better rated), the noise
       sd 0.5. The mean rating is about 3.6, as on MovieLens-1M.
    4. Time: each user starts on a random day within the first year and rates the drawn
       items in random order, with exponential gaps (mean three days) between ratings.

    Args:
        users, items: how many; ids are ``0..users-1`` and ``0..items-1``.
        ratings_per_user: distinct items each user rates (at most ``items``).
        factors: length of the taste vectors.
        popularity_skew: the Zipf exponent of item exposure (0: every item equally exposed).
        taste_strength: how much taste, besides popularity, decides what a user rates.
        seed: the seed of every draw.

    Returns:
        One row per rating, sorted by user then timestamp, columns ``user``, ``item`` (int64),
        ``rating`` (int64 1-5), ``timestamp`` (int64, Unix seconds), ``age_group``, ``gender``,
        ``occupation``, ``genre`` (pandas categoricals over :data:`AGE_GROUPS`, :data:`GENDERS`,
        :data:`OCCUPATIONS`, :data:`GENRES`) and ``year`` (int64). ``attrs`` holds the
        ``users`` and ``items`` counts (an item may have no ratings).
    """
    for name, value in (("users", users), ("items", items), ("ratings_per_user", ratings_per_user),
                        ("factors", factors)):
        check_positive_int(name, value)
    if ratings_per_user > items:
        raise ValueError(f"ratings_per_user={ratings_per_user} exceeds items={items}: a user rates distinct items")
    for name, value in (("popularity_skew", popularity_skew), ("taste_strength", taste_strength)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    rng = np.random.default_rng(seed)

    def taste(groups: int) -> np.ndarray:
        return rng.normal(0.0, 1.0, (groups, factors))

    age = rng.choice(len(AGE_GROUPS), users, p=_AGE_SHARES)
    gender = (rng.random(users) < _MALE_SHARE).astype(np.int64)
    occupation = rng.integers(0, len(OCCUPATIONS), users)
    user_taste = taste(len(AGE_GROUPS))[age] + taste(len(GENDERS))[gender] + taste(len(OCCUPATIONS))[occupation]
    user_taste += taste(users)
    user_taste -= user_taste.mean(axis=0)  # no taste shared by all users: popularity comes from exposure only
    genre = rng.integers(0, len(GENRES), items)
    item_taste = taste(len(GENRES))[genre] + taste(items)
    item_taste /= np.linalg.norm(item_taste, axis=1, keepdims=True)
    year = 1950 + np.floor(50 * rng.beta(3.0, 1.0, items)).astype(np.int64)

    affinity = user_taste @ item_taste.T
    affinity = (affinity - affinity.mean()) / affinity.std()
    popularity = 1.0 / (rng.permutation(items) + 1.0) ** popularity_skew
    # Gumbel top-k: distinct items drawn with probability proportional to exp(score)
    score = np.log(popularity) + taste_strength * affinity + rng.gumbel(size=(users, items))
    rated = np.argsort(-score, axis=1)[:, :ratings_per_user]
    rng.permuted(rated, axis=1, out=rated)  # the order in which the user rates them

    user = np.repeat(np.arange(users), ratings_per_user)
    item = rated.reshape(-1)
    user_bias = rng.normal(0.0, 0.3, users)
    item_bias = rng.normal(0.0, 0.5, items) + 0.2 * (1975 - year) / 25
    noise = rng.normal(0.0, 0.5, user.size)
    taste_part = affinity[user, item] - affinity[user, item].mean()
    rating = np.clip(np.rint(3.7 + user_bias[user] + item_bias[item] + taste_part + noise), 1, 5)
    first = _START + rng.integers(0, 365, users) * 86_400
    gaps = rng.exponential(_MEAN_GAP, (users, ratings_per_user)).astype(np.int64) + 1
    timestamp = first[:, None] + np.cumsum(gaps, axis=1)

    frame = pd.DataFrame({
        "user": user, "item": item.astype(np.int64), "rating": rating.astype(np.int64),
        "timestamp": timestamp.reshape(-1),
        "age_group": pd.Categorical.from_codes(age[user], AGE_GROUPS),
        "gender": pd.Categorical.from_codes(gender[user], GENDERS),
        "occupation": pd.Categorical.from_codes(occupation[user], OCCUPATIONS),
        "genre": pd.Categorical.from_codes(genre[item], GENRES),
        "year": year[item],
    })
    frame.attrs.update(users=users, items=items)
    return frame


def leave_one_out(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): every user's latest rating is the test row, the others train.

    A user's latest rating is the one with the largest ``timestamp`` (the last row among
    equal timestamps). Users with a single rating have no training row and are left out of
    both, as the ranking protocol needs the user to be known.

    Args:
        ratings: a table with ``user``, ``item`` and ``timestamp`` columns.

    Returns:
        Two tables with the columns of ``ratings``, each sorted by user then timestamp.
    """
    _check_columns(ratings, ("user", "item", "timestamp"), "ratings")
    ordered = ratings.sort_values(["user", "timestamp"], kind="stable")
    counts = ordered.groupby("user")["user"].transform("size")
    ordered = ordered[counts > 1]
    is_last = ~ordered["user"].duplicated(keep="last")
    return ordered[~is_last].reset_index(drop=True), ordered[is_last].reset_index(drop=True)


def negative_samples(positives: pd.DataFrame, item_count: int, negatives: int = 4,
                     exclude: pd.DataFrame | None = None, seed: int = 0) -> pd.DataFrame:
    """Each positive (user, item) pair followed by ``negatives`` items the user did not rate.

    For every row of ``positives``, ``negatives`` distinct items are drawn uniformly among the
    items ``0..item_count-1`` that the user has no row for in ``exclude``. The result is in
    blocks of ``1 + negatives`` rows: the positive pair (``label`` 1), then its negatives
    (``label`` 0), so the scores of a ranking evaluation reshape to ``(-1, 1 + negatives)``
    with the positive in column 0.

    Args:
        positives: a table with ``user`` and ``item`` columns (other columns are dropped).
        item_count: the size of the item catalogue.
        negatives: negatives per positive pair (4 for training and 99 for evaluation in the
            NCF paper).
        exclude: the interactions that are never negatives (default: ``positives``); pass all
            ratings, training and test, so no held-out item becomes a negative.
        seed: the seed of the draws.

    Returns:
        A table with ``user``, ``item`` (int64) and ``label`` (float32: 1.0 or 0.0) columns.
    """
    _check_columns(positives, ("user", "item"), "positives")
    check_positive_int("item_count", item_count)
    check_positive_int("negatives", negatives)
    exclude = positives if exclude is None else exclude
    _check_columns(exclude, ("user", "item"), "exclude")
    for name, table in (("positives", positives), ("exclude", exclude)):
        items = table["item"].to_numpy()
        if len(items) and (items.min() < 0 or items.max() >= item_count):
            raise ValueError(f"{name} has item ids outside 0..{item_count - 1} (item_count={item_count})")
    rated = exclude.groupby("user")["item"].unique()
    rng = np.random.default_rng(seed)
    blocks = np.empty((len(positives), 1 + negatives), dtype=np.int64)
    blocks[:, 0] = positives["item"].to_numpy()
    users = positives["user"].to_numpy()
    for user, rows in pd.Series(users).groupby(users).indices.items():
        candidates = np.setdiff1d(np.arange(item_count), rated.get(user, []))
        if len(candidates) < negatives:
            raise ValueError(f"user {user} has rated all but {len(candidates)} of the {item_count} items; "
                             f"{negatives} negatives cannot be drawn")
        # the first `negatives` of a random order of the candidates, independently for each positive
        order = np.argsort(rng.random((len(rows), len(candidates))), axis=1)[:, :negatives]
        blocks[rows, 1:] = candidates[order]
    labels = np.zeros_like(blocks, dtype=np.float32)
    labels[:, 0] = 1.0
    return pd.DataFrame({"user": np.repeat(users.astype(np.int64), 1 + negatives),
                         "item": blocks.reshape(-1), "label": labels.reshape(-1)})


def _check_columns(table: pd.DataFrame, columns: tuple[str, ...], name: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, not {type(table).__name__}")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; it has {list(table.columns)}")
