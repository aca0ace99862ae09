"""The cache the studies and the AE's slider ranges share: computed once per key, a failure not
kept, the least recently used dropped past its size."""

from __future__ import annotations

import pytest

from app.studies.cache import SharedResults


def test_a_failure_is_not_kept_and_the_next_caller_computes_again():
    results: SharedResults[int] = SharedResults(size=4)
    calls = []

    def boom() -> int:
        calls.append("boom")
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        results.get("k", boom)
    assert results.get("k", lambda: 7) == 7
    assert results.get("k", boom) == 7 and calls == ["boom"]  # kept now: not computed again


def test_past_its_size_the_least_recently_used_key_is_computed_again():
    results: SharedResults[str] = SharedResults(size=2)
    computed: list[str] = []

    def value(k: str):
        return lambda: computed.append(k) or k

    results.get("a", value("a"))
    results.get("b", value("b"))
    results.get("a", value("a"))  # a used again: b is now the oldest
    results.get("c", value("c"))  # drops b
    results.get("a", value("a"))
    results.get("b", value("b"))
    assert computed == ["a", "b", "c", "b"]
