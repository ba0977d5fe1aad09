import numpy as np

from tfcs3.data import generate_synthetic


def test_same_seed_same_data():
    a = generate_synthetic(num_users=50, num_items=60, seed=1)
    b = generate_synthetic(num_users=50, num_items=60, seed=1)
    c = generate_synthetic(num_users=50, num_items=60, seed=2)
    assert a.interactions.equals(b.interactions)
    assert not a.interactions.equals(c.interactions)


def test_ground_truth_and_choices_agree():
    raw = generate_synthetic(num_users=200, num_items=100, seed=0)
    aff = raw.extras["affinity"]
    assert aff.shape == (200, 100)
    chosen = raw.interactions
    users = chosen["user"].astype(int).to_numpy() - 1
    items = chosen["item"].astype(int).to_numpy() - 1
    # Chosen items have higher true affinity than the catalog average for their user.
    assert (aff[users, items] - aff[users].mean(axis=1)).mean() > 0.5
    # The cross-feature term has full rank over groups: no low-rank dot product reproduces it.
    groups = raw.extras["segments"].max() + 1
    assert groups >= 8
    assert set(np.unique(chosen["rating"])) <= {1.0, 2.0, 3.0, 4.0, 5.0}
