"""The per-container cache that refreshes its entries ahead of their expiry (store/cache.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.store.cache import AheadCache, refreshes_held, start_held_refreshes


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


class Joined(AheadCache):
    """Signals when a ``fetch`` has found a load under way and is about to wait for it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.joined = threading.Event()

    def _load_under_way(self, key: Any, now: float | None = None) -> Any:
        found = super()._load_under_way(key, now)
        if found is not None and now is None:
            self.joined.set()
        return found


def test_a_load_read_ahead_is_waited_for_by_fetch_not_repeated() -> None:
    # GIVEN a load read ahead on the background threads, which finishes only once a fetch
    # waits for it
    cache = Joined(10.0)
    loads: list[str] = []

    def slow_read() -> str:
        loads.append("read ahead")
        cache.joined.wait(timeout=10)
        return "v1"

    def own_read() -> str:
        loads.append("own read")
        return "v2"

    cache.read_ahead("k", slow_read)
    cache.read_ahead("k", slow_read)

    # WHEN a request fetches the entry
    value = cache.fetch("k", own_read)

    # THEN it got the value read ahead, read once, and the entry is cached
    assert value == "v1"
    assert loads == ["read ahead"]
    assert cache.fetch("k", own_read) == "v1"


def test_a_failed_load_read_ahead_raises_in_the_fetch_that_waited_for_it() -> None:
    # GIVEN a load read ahead that fails once a fetch waits for it
    cache = Joined(10.0)

    def failing() -> str:
        cache.joined.wait(timeout=10)
        raise RuntimeError("DynamoDB is unreachable")

    cache.read_ahead("k", failing)

    # WHEN it is fetched THEN the fetch raises what the load raised, and nothing is cached
    with pytest.raises(RuntimeError, match="unreachable"):
        cache.fetch("k", lambda: "never read")
    assert cache.get("k") is None
    # AND the next fetch reads for itself
    assert cache.fetch("k", lambda: "v2") == "v2"


def test_read_ahead_skips_a_fresh_entry_and_a_load_under_way() -> None:
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("fresh", "v1")

    # WHEN entries are read ahead: a fresh one, and a missing one twice
    cache.read_ahead("fresh", lambda: "v2")
    cache.read_ahead("missing", lambda: "m1")
    cache.read_ahead("missing", lambda: "m2")

    # THEN one load started, for the missing entry, and its value is cached from when it began
    assert len(later.started) == 1
    later.run_all()
    assert (cache.get("fresh"), cache.get("missing")) == ("v1", "m1")
    clock["now"] += 10.0
    assert cache.get("missing") is None


def test_a_write_while_a_load_is_read_ahead_is_not_undone_by_it() -> None:
    # GIVEN loads read ahead, reading what was stored before a write
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.read_ahead("k", lambda: "read before the write")
    cache.read_ahead("d", lambda: "read before the drop")

    # WHEN one entry is written and the other dropped before the loads finish
    cache.put("k", "written")
    cache.drop("d")
    later.run_all()

    # THEN what the writes left stays
    assert (cache.get("k"), cache.get("d")) == ("written", None)
    # AND the same after the whole cache is cleared (a configuration write)
    cache.read_ahead("c", lambda: "read before the clear")
    cache.clear()
    later.run_all()
    assert cache.get("c") is None


def test_a_load_under_way_for_longer_than_an_entry_lives_is_not_waited_for() -> None:
    # GIVEN a load read ahead that has not finished a whole life later (a container frozen
    # while it ran)
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.read_ahead("k", lambda: "read long ago")
    clock["now"] += 10.0

    # WHEN a request fetches the entry THEN it reads for itself, and that value is cached
    assert cache.fetch("k", lambda: "read now") == "read now"
    later.run_all()
    assert cache.get("k") == "read now"
    # AND the stale value is still at hand, for what never changes in it
    assert cache.stale("k") == "read now"
    assert cache.stale("never stored") is None


def test_concurrent_fetches_of_a_missing_entry_read_it_once() -> None:
    # GIVEN two requests fetching an entry nobody has, one of them slow to read it
    cache = Joined(10.0)
    loads: list[str] = []

    def slow_read() -> str:
        loads.append("slow")
        cache.joined.wait(timeout=10)  # until the other request waits for this read
        return "v1"

    def quick_read() -> str:
        loads.append("quick")
        return "v2"

    results: list[str] = []
    other = threading.Thread(target=lambda: results.append(cache.fetch("k", slow_read)))
    other.start()
    results.append(cache.fetch("k", quick_read))
    other.join(timeout=10)

    # THEN whichever came first read it, the other got the same value, and it was read once
    assert len(loads) == 1
    assert len(results) == 2 and results[0] == results[1]


def test_a_fetch_waits_an_entry_s_life_at_most_for_a_load_that_is_stuck() -> None:
    # GIVEN a load read ahead that never finishes (its thread never runs), in a cache whose
    # entries live 50 ms
    clock, later = {"now": 100.0}, Later()
    cache = AheadCache(0.05, clock=lambda: clock["now"], submit=later)
    cache.read_ahead("k", lambda: "never")

    # WHEN a request fetches the entry THEN it reads it itself once it has waited that long
    assert cache.fetch("k", lambda: "read alone") == "read alone"
    assert cache.get("k") == "read alone"


def test_a_refresh_found_due_while_held_starts_when_the_hold_is_lifted() -> None:
    # GIVEN an entry past half its life, and one that expired
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("due", "v1")
    cache.put("gone", "g1")
    clock["now"] += 6
    cache.entries["gone"].until = clock["now"]

    with refreshes_held():
        # WHEN a call reads them while its refreshes are held
        assert cache.get("due", refresh=lambda: "v2") == "v1"
        cache.read_ahead("gone", lambda: "g2")
        # THEN the load it needs now starts at once, the refresh not yet
        assert [args[0] for _, args in later.started] == ["gone"]
        # AND the refresh starts when the call lifts the hold, once
        later.run_all()
        start_held_refreshes()
        assert [args[0] for _, args in later.started] == ["due"]
        later.run_all()
        assert cache.get("due", refresh=lambda: "v3") == "v2"
        assert later.started == []
    # AND the end of the block starts nothing more
    assert later.started == []


def test_a_refresh_held_by_a_call_that_ended_early_starts_when_its_block_ends() -> None:
    # GIVEN an entry past half its life
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("due", "v1")
    clock["now"] += 6

    # WHEN a call reads it while held and fails before lifting the hold
    with pytest.raises(ValueError), refreshes_held():
        assert cache.get("due", refresh=lambda: "v2") == "v1"
        assert later.started == []
        raise ValueError("refused before its reservation")

    # THEN its refresh started as the block ended, and nothing is held on the thread after
    assert len(later.started) == 1
    clock["now"] += 0.1
    cache.put("other", "o1")
    clock["now"] += 6
    cache.get("other", refresh=lambda: "o2")
    assert len(later.started) == 2


def test_a_hold_is_per_thread() -> None:
    # GIVEN an entry past half its life, and a hold on this thread
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("due", "v1")
    clock["now"] += 6

    with refreshes_held():
        # WHEN another thread reads it
        reader = threading.Thread(target=cache.get, args=("due",), kwargs={"refresh": str})
        reader.start()
        reader.join(timeout=10)
        # THEN its refresh started at once
        assert len(later.started) == 1


def test_a_hold_inside_another_joins_it() -> None:
    # GIVEN an entry past half its life, read inside a hold nested in another
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("due", "v1")
    clock["now"] += 6

    with refreshes_held():
        with refreshes_held():
            assert cache.get("due", refresh=lambda: "v2") == "v1"
        # WHEN the inner block ends THEN the refresh is still held by the outer one
        assert later.started == []
    # AND it starts when the outer block ends
    assert len(later.started) == 1


def test_a_value_with_a_sooner_end_of_its_own_is_served_until_then_and_refreshed_before() -> None:
    # GIVEN a cache whose values may end sooner than a life (here: at the time they carry)
    clock, later = {"now": 100.0}, Later()
    cache = AheadCache(10.0, clock=lambda: clock["now"], submit=later, expires=lambda v: v[1])
    # WHEN one whose own end is 4 s away is loaded, then read 2.5 s later (past half of that)
    assert cache.fetch("k", lambda: ("old", 104.0), refresh=lambda: ("new", 200.0)) == (
        "old",
        104.0,
    )
    clock["now"] = 102.5
    served = cache.get("k", refresh=lambda: ("new", 200.0))
    # THEN it is served, and its refresh (the one ``fetch`` was given) is due already
    assert served == ("old", 104.0) and len(later.started) == 1
    # AND past its own end it is not served, though a life has not gone by
    clock["now"] = 104.0
    assert cache.get("k") is None


def test_a_lasting_copy_is_served_expired_and_refreshed_once_in_the_background() -> None:
    # GIVEN an entry nobody read for longer than its life
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "v1")
    clock["now"] += 60.0

    # WHEN two requests ask for a copy that may be expired
    first = cache.lasting("k", refresh=lambda: "v2")
    second = cache.lasting("k", refresh=lambda: "v2")

    # THEN both get the expired copy at once, and one refresh was started
    assert (first, second) == ("v1", "v1")
    assert not cache.fresh("k")
    assert len(later.started) == 1
    # AND once it ran, the new value is fresh for a whole life from then
    later.run_all()
    assert cache.fresh("k")
    assert cache.get("k") == "v2"
    # AND without any copy there is nothing to last
    assert cache.lasting("other", refresh=lambda: "v") is None


def test_a_failed_refresh_of_a_lasting_copy_lets_the_next_request_try_again() -> None:
    # GIVEN an expired copy whose first refresh fails
    clock, later = {"now": 100.0}, Later()
    cache = _cache(clock, later)
    cache.put("k", "v1")
    clock["now"] += 60.0

    def failing() -> str:
        raise RuntimeError("DynamoDB was unreachable")

    assert cache.lasting("k", refresh=failing) == "v1"
    later.run_all()

    # WHEN the next request asks  THEN it still gets the copy, and starts another refresh
    assert cache.lasting("k", refresh=lambda: "v2") == "v1"
    assert len(later.started) == 1
    later.run_all()
    assert cache.get("k") == "v2"
