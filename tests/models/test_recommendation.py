"""NCF and WideAndDeep on MovieLens-like ratings: quality after a distributed fit, reloading, top-k, metrics, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import workbench as wb
from workbench.datasets.ratings import (
    AGE_GROUPS,
    GENDERS,
    GENRES,
    OCCUPATIONS,
    leave_one_out,
    movielens_like,
    negative_samples,
)
from workbench.models.ranking import hit_ratio_at_k, ndcg_at_k
from workbench.models.recommendation import NCF, WideAndDeep, recommend_for_item, recommend_for_user

EVALUATION_NEGATIVES = 99


@pytest.fixture(scope="module")
def ratings() -> pd.DataFrame:
    ratings = movielens_like(seed=0)
    ratings["year_scaled"] = (ratings["year"] - 1990) / 10
    return ratings


@pytest.fixture(scope="module")
def implicit_task(ratings) -> dict:
    """The NCF paper's protocol: latest rating held out, 4 training negatives per positive, 99 to rank against."""
    train, test = leave_one_out(ratings)
    items = ratings.attrs["items"]
    return {"train": train,
            "train_pairs": negative_samples(train, items, negatives=4, exclude=ratings, seed=0),
            "test_pairs": negative_samples(test, items, negatives=EVALUATION_NEGATIVES, exclude=ratings, seed=1)}


def ncf(ratings: pd.DataFrame, **options) -> NCF:
    return NCF(user_count=ratings.attrs["users"], item_count=ratings.attrs["items"], **options)


def wide_and_deep(ratings: pd.DataFrame, **options) -> WideAndDeep:
    return WideAndDeep(
        wide_columns={"gender": len(GENDERS), "age_group": len(AGE_GROUPS), "genre": len(GENRES)},
        crossed_columns=[(["occupation", "genre"], 500), (["age_group", "gender", "genre"], 500)],
        indicator_columns={"genre": len(GENRES), "occupation": len(OCCUPATIONS)},
        embedding_columns={"user": (ratings.attrs["users"], 16), "item": (ratings.attrs["items"], 16)},
        continuous_columns=["year_scaled"], **options)


def ranked(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(held-out item scores, negative scores) of scores laid out as negative_samples' blocks."""
    blocks = np.asarray(scores).reshape(-1, 1 + EVALUATION_NEGATIVES)
    return blocks[:, 0], blocks[:, 1:]


def fitted_ncf(ratings, implicit_task, epochs: int) -> wb.Estimator:
    model = ncf(ratings, implicit=True)
    pairs = implicit_task["train_pairs"]
    estimator = model.estimator(lr=0.02)
    estimator.fit((model.encode(pairs), pairs["label"].to_numpy()), epochs=epochs, batch_size=512, verbose=False)
    return estimator


def user_item_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    return set(frame[["user", "item"]].itertuples(index=False, name=None))


def rating_classes(frame: pd.DataFrame) -> np.ndarray:
    return frame["rating"].to_numpy() - 1


# -- quality ------------------------------------------------------------------------------------


def test_ncf_hit_ratio_is_twice_popularitys(context, ratings, implicit_task):
    estimator = fitted_ncf(ratings, implicit_task, epochs=5)
    assert len(estimator.workers_) == 2
    test_pairs = implicit_task["test_pairs"]
    scores = estimator.predict(estimator.model_.encode(test_pairs)).compute()
    popularity = np.bincount(implicit_task["train"]["item"], minlength=ratings.attrs["items"])
    baseline = hit_ratio_at_k(*ranked(popularity[test_pairs["item"]]), k=10)
    hit_ratio = hit_ratio_at_k(*ranked(scores), k=10)
    # measured: NCF 0.65-0.66, popularity 0.177 (random ranking: 0.1)
    assert hit_ratio >= 2 * baseline, (hit_ratio, baseline)
    assert ndcg_at_k(*ranked(scores), k=10) >= 2 * ndcg_at_k(*ranked(popularity[test_pairs["item"]]), k=10)


def test_wide_and_deep_predicts_ratings_better_than_the_majority_class(context, ratings):
    train = ratings.sample(frac=0.8, random_state=0)
    test = ratings.drop(train.index)
    model = wide_and_deep(ratings, class_num=5)
    estimator = model.estimator(lr=0.01)
    estimator.fit((model.encode(train), rating_classes(train)), epochs=5, batch_size=256, verbose=False)
    accuracy = estimator.evaluate((model.encode(test), rating_classes(test)))["accuracy"]
    majority = np.mean(rating_classes(test) == np.bincount(rating_classes(train)).argmax())
    assert accuracy >= majority + 0.1, (accuracy, majority)  # measured 0.53 against 0.34
    expected = model.ranking_scores(estimator.predict(model.encode(test)).compute()) + 1
    constant = np.full(len(test), train["rating"].mean())
    rmse = {name: np.sqrt(np.mean((guess - test["rating"]) ** 2)) for name, guess in
            (("model", expected), ("constant", constant))}
    assert rmse["model"] <= 0.85 * rmse["constant"], rmse  # measured 0.70 against 1.0


# -- persistence ---------------------------------------------------------------------------------


def assert_reloads_with_same_predictions(estimator: wb.Estimator, inputs: np.ndarray, directory) -> None:
    estimator.save(directory)
    assert (directory / "builtin_model.json").exists()
    restored = wb.Estimator.load(directory)
    assert type(restored.model_) is type(estimator.model_)
    assert restored.model_.config == estimator.model_.config
    np.testing.assert_array_equal(restored.predict(inputs).compute(), estimator.predict(inputs).compute())


def test_ncf_reloads_from_its_config(context, ratings, implicit_task, tmp_path):
    estimator = fitted_ncf(ratings, implicit_task, epochs=1)
    assert_reloads_with_same_predictions(estimator, estimator.model_.encode(implicit_task["test_pairs"]), tmp_path)


def test_wide_and_deep_reloads_from_its_config(context, ratings, tmp_path):
    model = wide_and_deep(ratings, implicit=True)
    inputs = model.encode(ratings)
    estimator = model.estimator(lr=0.01)
    estimator.fit((inputs, (ratings["rating"] >= 4).to_numpy(np.float32)), epochs=1, batch_size=256, verbose=False)
    assert_reloads_with_same_predictions(estimator, inputs, tmp_path)


@pytest.mark.parametrize("options, loss, metrics, width", [
    ({"implicit": True}, "bce_with_logits", ("accuracy",), None),
    ({"class_num": 5}, "cross_entropy", ("accuracy",), 5),
    ({}, "mse", ("rmse", "mae"), None),
])
def test_each_head_has_its_loss_and_output(ratings, options, loss, metrics, width):
    rows = ratings.head(6)
    for model in (ncf(ratings, **options), wide_and_deep(ratings, **options)):
        assert (model.default_loss, model.default_metrics) == (loss, metrics)
        output = model(torch.from_numpy(model.encode(rows)))
        assert output.shape == ((6,) if width is None else (6, width))
        assert model.ranking_scores(output.detach().numpy()).shape == (6,)


@pytest.mark.parametrize("spec", [
    {"wide_columns": {"gender": 2}, "crossed_columns": [(["gender", "genre"], 7)]},
    {"embedding_columns": {"item": (200, 4)}, "continuous_columns": ["year_scaled"], "hidden_layers": []},
    {"continuous_columns": ["year_scaled"]},
])
def test_wide_only_and_deep_only_models_train(ratings, spec):
    model = WideAndDeep(**spec)
    output = model(torch.from_numpy(model.encode(ratings.head(32))))
    loss = torch.nn.functional.mse_loss(output, torch.ones(32))
    loss.backward()
    assert output.shape == (32,)
    assert all(parameter.grad is not None for parameter in model.parameters())


# -- recommendations -----------------------------------------------------------------------------


def brute_force_top_k(model: NCF, users: list[int], k: int) -> dict[int, list[int]]:
    """Each user's k best items, scoring every item with the model directly."""
    items = np.arange(model.item_count)
    best = {}
    model.eval()
    with torch.no_grad():
        for user in users:
            logits = model(torch.from_numpy(np.stack([np.full_like(items, user), items], axis=1))).numpy()
            best[user] = items[np.argsort(-logits, kind="stable")][:k].tolist()
    return best


def test_recommend_for_user_returns_each_users_best_items(ratings):
    torch.manual_seed(0)
    model = ncf(ratings, implicit=True)
    top = recommend_for_user(model, users=[3, 1, 3], k=4)
    assert model.training  # the helper restores the mode it found
    assert list(top.columns) == ["user", "item", "score", "rank"]
    assert top["user"].tolist() == [1] * 4 + [3] * 4
    assert top["rank"].tolist() == [1, 2, 3, 4] * 2
    assert top.groupby("user")["score"].apply(lambda scores: scores.is_monotonic_decreasing).all()
    assert top.groupby("user")["item"].apply(list).to_dict() == brute_force_top_k(model, [1, 3], 4)


def test_recommend_for_item_returns_each_items_best_users(ratings):
    torch.manual_seed(0)
    model = ncf(ratings, class_num=5)
    top = recommend_for_item(model, items=[7], k=3, users=[0, 1, 2, 3, 4])
    inputs = torch.tensor([[user, 7] for user in range(5)])
    with torch.no_grad():
        expected_class = torch.softmax(model.eval()(inputs), dim=1).numpy() @ np.arange(5)
    assert list(top.columns) == ["item", "user", "score", "rank"]
    assert top["user"].tolist() == np.argsort(-expected_class)[:3].tolist()
    np.testing.assert_allclose(top["score"], np.sort(expected_class)[::-1][:3], rtol=1e-6)


def test_recommendations_leave_out_excluded_pairs_and_run_on_the_cluster(context, ratings, implicit_task):
    estimator = fitted_ncf(ratings, implicit_task, epochs=1)
    train = implicit_task["train"]
    top = recommend_for_user(estimator, users=range(20), k=10, exclude=train)
    assert len(top) == 200
    assert not user_item_pairs(top) & user_item_pairs(train)
    local = recommend_for_user(estimator.model_, users=range(20), k=10, exclude=train)
    pd.testing.assert_frame_equal(top[["user", "item", "rank"]], local[["user", "item", "rank"]])
    np.testing.assert_allclose(top["score"], local["score"], rtol=1e-5)


def test_wide_and_deep_recommendations_join_user_and_item_features(ratings):
    torch.manual_seed(0)
    model = wide_and_deep(ratings)
    users = ratings.groupby("user")[["gender", "age_group", "occupation"]].first()
    items = ratings.groupby("item")[["genre", "year_scaled"]].first()
    rated = ratings[ratings["user"] == 5]
    top = recommend_for_user(model, users=[5], k=len(rated), items=rated["item"], user_features=users,
                             item_features=items)
    with torch.no_grad():
        direct = model.eval()(torch.from_numpy(model.encode(rated))).numpy()
    np.testing.assert_allclose(top.set_index("item")["score"].loc[rated["item"]], direct, rtol=1e-5)


# -- ranking metrics ------------------------------------------------------------------------------


def test_ranking_metrics_match_hand_computed_values():
    positive = np.array([0.9, 0.5, 0.1])
    negative = np.array([[0.1, 0.2, 0.3], [0.6, 0.7, 0.4], [0.2, 0.3, 0.4]])  # positions 0, 2 and 3
    assert hit_ratio_at_k(positive, negative, k=2) == pytest.approx(1 / 3)
    assert ndcg_at_k(positive, negative, k=2) == pytest.approx(1 / 3)
    assert hit_ratio_at_k(positive, negative, k=3) == pytest.approx(2 / 3)
    assert ndcg_at_k(positive, negative, k=3) == pytest.approx((1 + 1 / np.log2(4)) / 3)
    assert hit_ratio_at_k(positive, negative, k=4) == 1.0


def test_ties_count_as_their_expected_value():
    positive, negative = np.array([0.5]), np.array([[0.5, 0.5, 0.1]])  # positions 0, 1 or 2, equally likely
    assert hit_ratio_at_k(positive, negative, k=1) == pytest.approx(1 / 3)
    assert hit_ratio_at_k(positive, negative, k=2) == pytest.approx(2 / 3)
    assert ndcg_at_k(positive, negative, k=2) == pytest.approx((1 + 1 / np.log2(3)) / 3)
    constant = np.zeros((50, EVALUATION_NEGATIVES))
    assert hit_ratio_at_k(constant[:, 0], constant, k=10) == pytest.approx(10 / 100)


@pytest.mark.parametrize("positive, negative, k, message", [
    (np.zeros(3), np.zeros((3, 5)), 0, "k must be a positive integer"),
    (np.zeros(3), np.zeros((3, 5)), 2.5, "k must be a positive integer"),
    (np.zeros(3), np.zeros((2, 5)), 1, r"shapes? .*\(3,\) and \(2, 5\)"),
    (np.zeros((3, 1)), np.zeros((3, 5)), 1, "positive_scores of shape"),
    (np.array([np.nan]), np.zeros((1, 5)), 1, "NaN"),
])
def test_ranking_metrics_refuse_bad_input(positive, negative, k, message):
    for metric in (hit_ratio_at_k, ndcg_at_k):
        with pytest.raises(ValueError, match=message):
            metric(positive, negative, k)


# -- bad input -------------------------------------------------------------------------------------


def test_fit_names_ids_out_of_range(context, ratings):
    model = ncf(ratings, implicit=True)
    pairs = np.array([[0, 1], [2, ratings.attrs["items"]]] * 8)
    with pytest.raises(ValueError, match=r"NCF: item must lie in 0\.\.199, got 200"):
        model.estimator().fit((pairs, np.ones(len(pairs), np.float32)), epochs=1, batch_size=8, verbose=False)


@pytest.mark.parametrize("inputs, message", [
    (torch.tensor([[0, 1, 2]]), r"\(batch, 2\) array of \(user id, item id\) pairs, got shape \(1, 3\)"),
    (torch.tensor([0, 1]), r"got shape \(2,\)"),
    (torch.tensor([[-1, 0]]), r"user must lie in 0\.\.499, got -1"),
    (torch.tensor([[0.5, 1.0]]), "fractional"),
])
def test_ncf_refuses_bad_pairs(ratings, inputs, message):
    with pytest.raises(ValueError, match=message):
        ncf(ratings)(inputs)


def test_wide_and_deep_refuses_bad_input(ratings):
    model = wide_and_deep(ratings)
    assert model.input_columns == ["gender", "age_group", "genre", "occupation-genre", "age_group-gender-genre",
                                   "genre", "occupation", "user", "item", "year_scaled"]
    with pytest.raises(ValueError, match=r"\(batch, 10\) array with the columns"):
        model(torch.zeros(2, 9))
    bad_gender = torch.from_numpy(model.encode(ratings.head(2)))
    bad_gender[1, 0] = 2
    with pytest.raises(ValueError, match=r"gender must lie in 0\.\.1, got 2"):
        model(bad_gender)
    with pytest.raises(ValueError, match="no column 'year_scaled'"):
        model.encode(ratings.drop(columns="year_scaled"))
    with pytest.raises(ValueError, match=r"column 'item' must hold codes in 0\.\.199, got 200"):
        model.encode(ratings.assign(item=ratings["item"] + 1))
    with pytest.raises(TypeError, match="column 'gender' must hold integer codes or be categorical"):
        model.encode(ratings.assign(gender=ratings["gender"].astype(str)))
    with pytest.raises(ValueError, match="column 'genre' has missing values"):
        model.encode(ratings.assign(genre=ratings["genre"].cat.remove_categories(["Drama"])))


@pytest.mark.parametrize("build, message", [
    (lambda r: ncf(r, class_num=5, implicit=True), "class_num .* or implicit=True .*, not both"),
    (lambda r: ncf(r, class_num=1), "class_num must be at least 2"),
    (lambda r: ncf(r, hidden_layers=[8, 0]), "hidden layer width"),
    (lambda r: NCF(user_count=0, item_count=5), "user_count"),
    (lambda r: WideAndDeep(), "at least one column"),
    (lambda r: WideAndDeep(crossed_columns=[(["gender"], 10)]), "at least two columns"),
    (lambda r: WideAndDeep(embedding_columns={"user": (10, 0)}), "size of embedding_columns"),
    (lambda r: WideAndDeep(continuous_columns=["a", "a"]), "names a column twice"),
    (lambda r: WideAndDeep(wide_columns={"id": 2**25}), "at most 16777216"),
])
def test_bad_architecture_arguments_are_named(ratings, build, message):
    with pytest.raises(ValueError, match=message):
        build(ratings)


def test_recommendation_arguments_are_checked(ratings):
    model = ncf(ratings, implicit=True)
    for k in (0, -1, 2.5):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            recommend_for_user(model, users=[0], k=k)
    with pytest.raises(ValueError, match="users must be a non-empty sequence of integer ids"):
        recommend_for_user(model, users=[], k=1)
    with pytest.raises(ValueError, match=r"NCF: column 'item' must hold codes in 0\.\.199"):
        recommend_for_user(model, users=[0], k=1, items=[500])
    with pytest.raises(ValueError, match="WideAndDeep does not know its items: pass the candidate items"):
        recommend_for_user(wide_and_deep(ratings), users=[0], k=1)
    with pytest.raises(ValueError, match=r"item_features has no row for the items \[7\]"):
        recommend_for_user(wide_and_deep(ratings), users=[0], k=1, items=[7],
                           item_features=pd.DataFrame({"genre": [0]}, index=[3]))
    with pytest.raises(TypeError, match="expected an NCF or WideAndDeep model"):
        recommend_for_user(torch.nn.Linear(2, 1), users=[0], k=1)
