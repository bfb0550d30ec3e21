from pistats.demo.runner import render_summary
from pistats.demo.summary import records_accounted

SUMMARY = {"records_in": 10, "events_stored": 6, "rejected": {"bad_json": 1, "store_refused": 1},
           "duplicates_dropped": 1, "users": 3, "sessions": 4, "elapsed_s": 1.0, "processing_s": 0.5,
           "events_per_s": 20.0}


def test_records_accounted_is_the_sum_of_what_the_store_measured():
    assert records_accounted(SUMMARY) == 9


def test_the_summary_says_when_the_store_does_not_account_for_every_record():
    text = render_summary(SUMMARY)
    assert "accounted for       9 of 10 records (MISMATCH" in text
    assert "MISMATCH" not in render_summary({**SUMMARY, "records_in": 9})
