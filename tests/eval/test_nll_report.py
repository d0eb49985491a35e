"""The NLL report says what it cannot say: no interval below MIN_INTERVAL_RECORDS records (a bootstrap
over one record has width 0), and records whose response cutoff_len cut away are counted and warned."""

import logging

from rocoft_llm.eval.nll import NLLOptions
from rocoft_llm.eval.nll_run import MIN_INTERVAL_RECORDS, markdown, paired, summarise


def rows(n, empty=0):
    return [{"index": i, "nll_sum": 2.0 * (i + 1), "tokens": 0 if i < empty else i + 1} for i in range(n)]


def test_no_interval_below_the_minimum_count():
    one = summarise("held", "adapted", rows(1), {}, 200, 0)
    assert one["ci95"] is None and one["perplexity_ci95"] is None
    many = summarise("held", "adapted", rows(MIN_INTERVAL_RECORDS), {}, 200, 0)
    assert many["ci95"][0] <= many["mean_nll"] <= many["ci95"][1]
    pair = paired("held", "adapted", "base", rows(1), rows(1), 200, 0)
    assert pair["ci95"] is None
    text = markdown([one], [pair], NLLOptions(), 200, 0)
    assert f"none (< {MIN_INTERVAL_RECORDS} records)" in text
    assert f"No interval for held: fewer than {MIN_INTERVAL_RECORDS} records." in text


def test_records_without_target_tokens_are_counted_and_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="rocoft_llm"):
        s = summarise("held", "adapted", rows(6, empty=2), {}, 200, 0)
    assert s["records_without_targets"] == 2
    assert "2 of 6 record(s) have no target token" in caplog.text
    assert "Records without a target token (cut away by cutoff_len): held (adapted): 2." in markdown(
        [s], [], NLLOptions(), 200, 0
    )
