"""recommend_for_user: the demo's query of an export for one user."""

import pytest

from tfcs3.export import recommend_for_user
from tfcs3.models import build_model


def test_an_unknown_user_is_named_in_the_error(synthetic_retrieval, tmp_path):
    model = build_model("youtubednn", synthetic_retrieval, embedding_dim=8)
    with pytest.raises(ValueError, match="user 'nobody' has no test example in synthetic"):
        recommend_for_user(tmp_path, model, synthetic_retrieval, "nobody", k=5)
