"""The per-container cache that refreshes its entries ahead of their expiry (store/cache.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.store.cache import AheadCache


class Later:
    """Holds the refreshes the cache starts, to run when the test says."""

    def __init__(self) -> None:
        self.started: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.started.append((fn, args))

    def run_all(self) -> None:
        started, self.started = self.started, []
        for fn, args in started:
            fn(*args)


def _cache(clock: dict[str, float], later: Later) -> AheadCache:
    return AheadCache(10.0, clock=lambda: clock["now"], submit=later)


def test_a_young_entry_is_served_without_a_refresh() -> None:
    # GIVEN an entry stored just now
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "v1")

    # WHEN it is read before half its life THEN it is served and nothing is refreshed
    clock["now"] += 4.9
    assert cache.get("k", refresh=lambda: "v2") == "v1"
    assert later.started == []


def test_past_half_its_life_it_is_served_and_refreshed_once_in_the_background() -> None:
    # GIVEN an entry past half its life
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "v1")
    clock["now"] += 6

    # WHEN two requests read it
    first = cache.get("k", refresh=lambda: "v2")
    second = cache.get("k", refresh=lambda: "v2")

    # THEN both get the cached value at once, and one refresh was started
    assert (first, second) == ("v1", "v1")
    assert len(later.started) == 1
    # AND once it ran, the new value is served for a whole life from then
    later.run_all()
    clock["now"] += 9.9
    assert cache.get("k") == "v2"


def test_an_expired_entry_is_not_served() -> None:
    # GIVEN an entry nobody read for longer than its life
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "v1")
    clock["now"] += 10.0

    # WHEN it is read THEN the caller must load it itself, and no refresh was started
    assert cache.get("k", refresh=lambda: "v2") is None
    assert later.started == []


def test_a_write_while_a_refresh_is_under_way_is_not_undone_by_it() -> None:
    # GIVEN a refresh started, reading the old value
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "old")
    clock["now"] += 6
    cache.get("k", refresh=lambda: "read before the write")

    # WHEN the entry is replaced (a write through the store), or dropped, before it finishes
    cache.put("k", "written")
    later.run_all()

    # THEN the write's value stays
    assert cache.get("k") == "written"
    clock["now"] += 6
    cache.get("k", refresh=lambda: "read before the drop")
    cache.drop("k")
    later.run_all()
    assert cache.get("k") is None


def test_a_failed_refresh_lets_the_entry_expire_and_one_that_finds_nothing_drops_it() -> None:
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)

    # GIVEN a refresh that fails
    def failing() -> str:
        raise RuntimeError("DynamoDB is unreachable")

    cache.put("k", "v1")
    clock["now"] += 6
    assert cache.get("k", refresh=failing) == "v1"
    later.run_all()
    # THEN the entry is served until its end, and not after
    clock["now"] += 3.9
    assert cache.get("k") == "v1"
    clock["now"] += 0.2
    assert cache.get("k") is None

    # GIVEN a refresh that finds the item gone (a deleted key) THEN the entry goes at once
    cache.put("gone", "v1")
    clock["now"] += 6
    cache.get("gone", refresh=lambda: None)
    later.run_all()
    assert cache.get("gone") is None


def test_a_refreshed_value_lives_from_when_it_was_read_not_from_when_it_was_stored() -> None:
    # GIVEN a refresh that reads at t=106 but only gets to store its value ten minutes later
    # (a Lambda container frozen in between)
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "v1")
    clock["now"] = 106.0

    def slow_read() -> str:
        clock["now"] = 706.0
        return "v2"

    cache.get("k", refresh=slow_read)
    later.run_all()

    # WHEN it is read after the thaw THEN it has expired: it was read 600 s ago
    assert cache.get("k") is None


def test_fetch_loads_a_miss_once_and_keeps_nothing_for_a_value_that_is_not_there() -> None:
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    loads: list[str] = []

    def load(value: str | None) -> Callable[[], str | None]:
        def read() -> str | None:
            loads.append(str(value))
            return value

        return read

    # GIVEN nothing cached  WHEN fetched twice THEN it is read once, then served from the cache
    assert cache.fetch("k", load("v1")) == "v1"
    assert cache.fetch("k", load("v2")) == "v1"
    assert loads == ["v1"]
    # AND a value that is not there (a deleted item) is read again each time, never kept
    assert cache.fetch("gone", load(None)) is None
    assert cache.fetch("gone", load(None)) is None
    assert loads == ["v1", "None", "None"]
