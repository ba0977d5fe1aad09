"""The prepared-data cache: exact round trip, key check, and no code run from a planted file."""

import pickle

import numpy as np
import pytest

from tfcs3.data import load_prepared
from tfcs3.data.cache import CacheMiss, read_prepared, write_prepared
from tfcs3.data.datasets import cache_dir


def _same(a, b):
    assert (a.name, a.protocol, a.description) == (b.name, b.protocol, b.description)
    assert a.spec.to_json() == b.spec.to_json()
    for name in ("catalog_ids", "catalog_titles", "item_probability"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    for name in a.catalog:
        np.testing.assert_array_equal(a.catalog[name], b.catalog[name])
    for split in ("train", "validation", "test"):
        x, y = a.split(split), b.split(split)
        assert sorted(x.features) == sorted(y.features)
        for name in x.features:
            np.testing.assert_array_equal(x.features[name], y.features[name])
        for field in ("target", "users", "labels", "timestamps", "exclusion_indptr", "exclusion_rows"):
            u, v = getattr(x, field), getattr(y, field)
            assert (u is None) == (v is None), field
            if u is not None:
                np.testing.assert_array_equal(u, v)
                assert u.dtype == v.dtype, field


@pytest.mark.parametrize("fixture", ["synthetic_retrieval", "synthetic_preranking"])
def test_round_trip_is_exact(fixture, request, tmp_path):
    data = request.getfixturevalue(fixture)
    write_prepared(data, tmp_path / "d.npz", key="k1")
    _same(data, read_prepared(tmp_path / "d.npz", key="k1"))
    with pytest.raises(CacheMiss, match="holds 'k1'"):
        read_prepared(tmp_path / "d.npz", key="k2")


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_a_planted_pickle_is_refused_and_never_run(ml100k_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TFCS3_CACHE_DIR", str(tmp_path / "cache"))
    fresh = load_prepared("ml-100k", data_dir=ml100k_dir)  # writes the cache file
    (path,) = (cache_dir() / "prepared").glob("ml-100k-retrieval-*.npz")
    marker = tmp_path / "ran"
    # A malicious file at the cache path: an object array that pickle would rebuild by calling open().
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.array([_Payload(str(marker))], dtype=object))
    with pytest.raises(CacheMiss, match="not a tfcs3 prepared-data cache"):
        read_prepared(path, key=path.stem)
    again = load_prepared("ml-100k", data_dir=ml100k_dir)  # refused, prepared again, rewritten
    assert not marker.exists()
    _same(fresh, again)
    _same(fresh, read_prepared(path, key=path.stem))
    with open(path, "wb") as fh:  # a raw pickle stream (the old cache format) is refused as well
        pickle.dump(_Payload(str(marker)), fh)
    _same(fresh, load_prepared("ml-100k", data_dir=ml100k_dir))
    assert not marker.exists()
