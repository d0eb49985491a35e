"""Sizes that would only waste memory or disk: `export-peft --pad-rank` above a weight's smaller
dimension (it wrote 831 MB of zeros for --pad-rank 100000) is refused before anything is read or
written, naming the bound."""

from tests.helpers.cli import assert_refused, run_cli, snapshot


def test_pad_rank_above_the_smallest_weight_dimension_is_refused(adapter, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli("export-peft", adapter, "--out", tmp_path / "peft", "--pad-rank", "100000")
    assert_refused(result, "--pad-rank 100000 is above the smallest weight dimension", "pass --pad-rank <=")
    assert snapshot(tmp_path) == before
