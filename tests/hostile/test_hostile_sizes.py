"""`export-peft` with careless values: `--pad-rank` above a weight's smaller dimension (it wrote 831
MB of zeros for --pad-rank 100000) is refused before anything is read or written, naming the bound;
`--base` given for a run of a randomly initialised model is used, not answered with "pass --base"."""

from tests.helpers.cli import assert_refused, run_cli, snapshot


def test_pad_rank_above_the_smallest_weight_dimension_is_refused(adapter, tmp_path):
    before = snapshot(tmp_path)
    result = run_cli("export-peft", adapter, "--out", tmp_path / "peft", "--pad-rank", "100000")
    assert_refused(result, "--pad-rank 100000 is above the smallest weight dimension", "pass --pad-rank <=")
    assert snapshot(tmp_path) == before


def test_base_given_for_a_random_init_run_is_used(adapter, tmp_path):
    run = adapter.parent
    refused = run_cli("export-peft", run, "--out", tmp_path / "peft")
    assert_refused(refused, "trained a randomly initialised model", "pass --base")
    given = run_cli("export-peft", run, "--base", tmp_path / "saved-base", "--out", tmp_path / "peft")
    assert given.exit_code != 0 and "pass --base" not in given.output
    assert str(tmp_path / "saved-base") in given.output  # the base it was told to use is the one looked for
