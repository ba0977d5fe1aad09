import numpy as np

from tfcs3.evaluation.retrieval import target_ranks
from tfcs3.progress import shown, status


def _rank(n=40):
    scores = np.random.default_rng(0).normal(size=(n, 30))
    return target_ranks(lambda lo, hi: scores[lo:hi], np.zeros(n, np.int64), batch_size=8)


def test_progress_shows_on_request_and_never_changes_results(monkeypatch, capsys):
    monkeypatch.setenv("TFCS3_PROGRESS", "0")
    quiet = _rank()
    assert not shown() and capsys.readouterr().err == ""
    monkeypatch.setenv("TFCS3_PROGRESS", "1")
    loud = _rank()
    assert "ranking the catalog" in capsys.readouterr().err
    np.testing.assert_array_equal(quiet, loud)
    with status("Building something"):
        pass
    assert "Building something ... done in" in capsys.readouterr().err


def test_no_progress_off_a_terminal_by_default(monkeypatch, capsys):
    monkeypatch.delenv("TFCS3_PROGRESS", raising=False)
    _rank()
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
