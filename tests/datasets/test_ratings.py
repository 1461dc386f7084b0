"""movielens_like ratings and the leave-one-out / negative-sampling protocol: shape, process, determinism, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.datasets.ratings import (
    AGE_GROUPS,
    GENDERS,
    GENRES,
    OCCUPATIONS,
    leave_one_out,
    movielens_like,
    negative_samples,
)


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    return movielens_like(seed=0)


def user_item_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(frame[["user", "item"]].itertuples(index=False, name=None))


def test_table_has_movielens_columns_and_sizes(ratings):
    assert list(ratings.columns) == ["user", "item", "rating", "timestamp", "age_group", "gender", "occupation",
                                     "genre", "year"]
    assert ratings.attrs == {"users": 500, "items": 200}
    assert len(ratings) == 500 * 20
    for column in ("user", "item", "rating", "timestamp", "year"):
        assert ratings[column].dtype == np.int64, column
    for column, values in (("age_group", AGE_GROUPS), ("gender", GENDERS), ("occupation", OCCUPATIONS),
                           ("genre", GENRES)):
        assert list(ratings[column].cat.categories) == list(values)
    assert ratings["user"].between(0, 499).all() and ratings["item"].between(0, 199).all()
    assert ratings["year"].between(1950, 2000).all()


def test_users_rate_distinct_items_in_time_order_with_fixed_attributes(ratings):
    per_user = ratings.groupby("user")
    assert (per_user["item"].nunique() == 20).all()
    assert per_user["timestamp"].apply(lambda times: times.is_monotonic_increasing).all()
    for column in ("age_group", "gender", "occupation"):
        assert (per_user[column].nunique() == 1).all(), column
    assert (ratings.groupby("item")["genre"].nunique() == 1).all()


def test_ratings_look_like_movielens(ratings):
    shares = ratings["rating"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1, 2, 3, 4, 5]
    assert 3.2 < ratings["rating"].mean() < 3.8  # MovieLens-1M: 3.58
    assert shares.max() < 0.5


def test_popularity_skew_concentrates_ratings_on_few_items():
    def top_decile_share(skew: float) -> float:
        counts = movielens_like(popularity_skew=skew, seed=0)["item"].value_counts()
        return counts.nlargest(20).sum() / counts.sum()

    flat, skewed = top_decile_share(0.0), top_decile_share(1.0)
    assert skewed > flat + 0.1, (flat, skewed)


def test_taste_decides_what_users_rate():
    """With taste, a user's items share genres more than random draws from the catalogue do."""
    def genre_concentration(taste_strength: float) -> float:
        ratings = movielens_like(taste_strength=taste_strength, popularity_skew=0.0, seed=0)
        return ratings.groupby("user")["genre"].agg(lambda genres: genres.value_counts(normalize=True).max()).mean()

    assert genre_concentration(4.0) > genre_concentration(0.0) + 0.1


def test_same_seed_same_table_other_seed_other_table(ratings):
    pd.testing.assert_frame_equal(movielens_like(seed=0), ratings)
    assert not movielens_like(seed=1)[["user", "item"]].equals(ratings[["user", "item"]])


def test_sizes_follow_the_arguments():
    small = movielens_like(users=30, items=40, ratings_per_user=5, factors=3)
    assert len(small) == 150 and small.attrs == {"users": 30, "items": 40}
    assert small["item"].max() < 40


@pytest.mark.parametrize("arguments, message", [
    ({"users": 0}, "users"),
    ({"items": 10, "ratings_per_user": 11}, "ratings_per_user=11 exceeds items=10"),
    ({"factors": 2.5}, "factors"),
    ({"popularity_skew": -1.0}, "popularity_skew"),
    ({"taste_strength": float("nan")}, "taste_strength"),
])
def test_bad_arguments_are_named(arguments, message):
    with pytest.raises(ValueError, match=message):
        movielens_like(**arguments)


def test_leave_one_out_holds_out_each_users_latest_rating(ratings):
    train, test = leave_one_out(ratings)
    assert len(test) == 500 and test["user"].is_unique
    assert len(train) + len(test) == len(ratings)
    latest = ratings.loc[ratings.groupby("user")["timestamp"].idxmax(), ["user", "item"]]
    pd.testing.assert_frame_equal(test[["user", "item"]], latest.reset_index(drop=True))
    assert (train.groupby("user")["timestamp"].max() < test.set_index("user")["timestamp"]).all()


def test_leave_one_out_drops_users_with_a_single_rating():
    ratings = pd.DataFrame({"user": [0, 0, 1], "item": [5, 6, 7], "timestamp": [2, 1, 3]})
    train, test = leave_one_out(ratings)
    assert train.to_dict("list") == {"user": [0], "item": [6], "timestamp": [1]}
    assert test.to_dict("list") == {"user": [0], "item": [5], "timestamp": [2]}


def test_negative_samples_follow_each_positive_in_blocks(ratings):
    train, test = leave_one_out(ratings)
    pairs = negative_samples(test, item_count=200, negatives=99, exclude=ratings, seed=3)
    assert list(pairs.columns) == ["user", "item", "label"] and len(pairs) == 500 * 100
    blocks = pairs["item"].to_numpy().reshape(-1, 100)
    np.testing.assert_array_equal(blocks[:, 0], test["item"])
    np.testing.assert_array_equal(pairs["user"].to_numpy().reshape(-1, 100), np.repeat(test[["user"]], 100, axis=1))
    np.testing.assert_array_equal(pairs["label"].to_numpy().reshape(-1, 100)[:, 0], 1.0)
    assert pairs["label"].sum() == 500
    assert all(len(set(block)) == 100 for block in blocks)  # distinct negatives
    assert not user_item_pairs(ratings) & user_item_pairs(pairs[pairs["label"] == 0])
    pd.testing.assert_frame_equal(pairs, negative_samples(test, 200, negatives=99, exclude=ratings, seed=3))
    assert not pairs.equals(negative_samples(test, 200, negatives=99, exclude=ratings, seed=4))


def test_negatives_exclude_the_positives_themselves_by_default():
    positives = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 2]})
    pairs = negative_samples(positives, item_count=4, negatives=2)
    assert pairs["label"].tolist() == [1, 0, 0] * 3
    negatives = pairs[pairs["label"] == 0]
    assert set(negatives.loc[negatives["user"] == 0, "item"]) == {2, 3}
    assert not {2} & set(negatives.loc[negatives["user"] == 1, "item"])


def test_negative_sampling_errors_name_the_problem():
    positives = pd.DataFrame({"user": [0, 0, 0], "item": [0, 1, 2]})
    with pytest.raises(ValueError, match="user 0 has rated all but 1 of the 4 items"):
        negative_samples(positives, item_count=4, negatives=2)
    with pytest.raises(ValueError, match="item ids outside 0..1"):
        negative_samples(positives, item_count=2)
    with pytest.raises(ValueError, match="negatives"):
        negative_samples(positives, item_count=10, negatives=0)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['item'\]"):
        negative_samples(positives[["user"]], item_count=10)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        leave_one_out(positives.to_numpy())
