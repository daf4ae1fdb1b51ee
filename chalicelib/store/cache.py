"""A per-container cache whose entries are refreshed ahead of their expiry, off the request path.

The relay caches key and account metadata and the configuration (channels, prices, group ratios)
for ``SLUICE_KEY_CACHE_SECONDS``. Left to expire, every entry cost one request its reads when it
ran out: at steady traffic, one call in every few hundred paid five DynamoDB reads, which is
what a gateway's P99 is made of. Here a request that finds an entry past half its life still
gets the cached value, and starts one refresh in the background; a busy container's entries are
never older than they were allowed to be, and no request waits for them. An entry that did
expire (no traffic for a while) is loaded by the request that needs it.

Some copies need not even wait for that: ``lasting`` serves an expired copy, and refreshes it
in the background, where the copy's use is checked anyway. A relayed call's reservation is
conditional on the key being the very key, at the very revision, its copy said, and on the
account's status and grants: a copy gone out of date is refused there, and the call is then
decided again on what is stored (services/gateway.py). So after a quiet spell a call reads
neither its key nor its account before it reserves.

A request that does load need not load its entries one after another. ``read_ahead`` starts
a load in the background when the caller knows it will need an entry (a new container's first
call reads the configuration while it reads the key), and ``fetch`` waits for a load already
under way instead of starting another: one read per entry however many requests arrive. A
request waits at most an entry's life for another's load, then reads for itself.

A refresh found due while a relayed call is admitted waits until that call's reservation has
been answered (``refreshes_held``): its reads then go out while the call waits for the
provider, not beside the reservation's writes, which they would slow (DynamoDB Local serializes
them; in a Lambda container they share its fraction of a core). That call was the one in a
few dozen that paid for the reads: at steady traffic, the P99.

A refresh stores its value only if the entry it refreshed is still the one cached: a write
through the store (which drops or replaces the entry) is never undone by an older read that
finishes after it. A refresh that fails is forgotten: the entry expires as it would have (a
copy served expired, ``lasting``, is served and refreshed again by the next request for it).
In Lambda, a refresh still running when the response ends is frozen with the container and
finishes at the next invocation.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

MAX_ENTRIES = 10_000
# An entry is refreshed once it is past this share of its life.
REFRESH_AFTER = 0.5

_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
# Per thread: the refreshes held until the call under way says they may start (None: none held).
_held = threading.local()


def threads(name: str, workers: int) -> ThreadPoolExecutor:
    """The pool of threads called ``name``, made on first use (a cold start makes none)."""
    with _pools_lock:
        if name not in _pools:
            _pools[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        return _pools[name]


def background() -> ThreadPoolExecutor:
    """The threads refreshes and loads read ahead run on.

    Room for what one request reads ahead (an account and the configuration's copy) beside
    the refreshes under way. A task here never waits for another task here, or a full pool
    could wait on itself: the configuration's kinds are read on their own (config_reads.py).
    """
    return threads("cache-refresh", 6)


@contextlib.contextmanager
def refreshes_held() -> Iterator[None]:
    """Refreshes found due on this thread inside the block start at ``start_held_refreshes()``,
    or when the block ends, whichever comes first. Loads a request waits for are never held.
    A block inside another joins the outer hold (it would otherwise drop what that one held)."""
    if _waiting() is not None:
        yield
        return
    _held.waiting = []
    try:
        yield
    finally:
        start_held_refreshes()


def start_held_refreshes() -> None:
    """Start the refreshes held on this thread, and hold no more."""
    waiting = _waiting()
    _held.waiting = None
    for start in waiting or ():
        start()


def _waiting() -> list[Callable[[], Any]] | None:
    """The refreshes held on this thread (None: no hold)."""
    return getattr(_held, "waiting", None)


def _start(start: Callable[[], Any]) -> None:
    waiting = _waiting()
    if waiting is None:
        start()
    else:
        waiting.append(start)


@dataclass(eq=False)
class _Entry:
    value: Any
    loaded: float
    until: float
    refreshing: bool = False


@dataclass(eq=False)
class _Load:
    """A load under way (``read_ahead``): who else needs the entry waits for it."""

    started: float
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


@dataclass
class AheadCache:
    """key -> value for ``seconds`` (a number, or read at each store: settings change in tests)."""

    seconds: float | Callable[[], float]
    clock: Callable[[], float] = time.monotonic
    # A value's own last moment (on ``clock``), where it comes sooner than a whole life after
    # it was read: a copy kept from an earlier read is served no longer than that read allows.
    expires: Callable[[Any], float] | None = None
    # How a refresh is started: on the module's background threads unless given (tests).
    submit: Callable[..., Any] | None = None
    entries: dict[Any, _Entry] = field(default_factory=dict)
    loads: dict[Any, _Load] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any, refresh: Callable[[], Any] | None = None) -> Any:
        """The cached value while it is fresh, else None. Past half its life, ``refresh`` (if
        given) is started in the background, once (unless held: ``refreshes_held``); its value
        replaces the entry's."""
        entry = self.entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.until:
            return None
        if (
            refresh is not None
            and now >= entry.loaded + (entry.until - entry.loaded) * REFRESH_AFTER
        ):
            with self._lock:
                start, entry.refreshing = not entry.refreshing, True
            if start:
                _start(lambda: self._submit_refresh(key, entry, refresh))
        return entry.value

    def fetch(
        self, key: Any, load: Callable[[], Any], refresh: Callable[[], Any] | None = None
    ) -> Any:
        """``get`` with ``refresh`` (``load`` unless given) as the refresh; on a miss, the load
        under way (``read_ahead``, or another request's ``fetch``) if there is one, else
        ``load`` on this thread, which other requests then wait for; cached unless None. A
        failed load raises in each request that waited for it."""
        value = self.get(key, refresh=refresh or load)
        if value is not None:
            return value
        with self._lock:
            under_way = self._load_under_way(key)
            mine = under_way is None
            if under_way is None:
                under_way = self.loads[key] = _Load(self.clock())
        if mine:
            self._load(key, under_way, load)
        elif not under_way.done.wait(timeout=self.life()):
            # Stuck (DynamoDB slow past its retries, or its thread starved): read alone.
            value = load()
            if value is not None:
                self.put(key, value)
            return value
        if under_way.error is not None:
            raise under_way.error
        return under_way.value

    def lasting(self, key: Any, refresh: Callable[[], Any]) -> Any:
        """``get``, but an expired value as well (None only when there is none), refreshed in
        the background, once (held as ``get``'s refreshes are): for a copy whose use is
        checked anyway, where it counts (the relay's reservation checks, in its condition,
        the key and account copies a call was admitted on)."""
        entry = self.entries.get(key)
        if entry is None or self.clock() < entry.until:
            return self.get(key, refresh)
        with self._lock:
            start, entry.refreshing = not entry.refreshing, True
        if start:
            _start(lambda: self._submit_refresh(key, entry, refresh))
        return entry.value

    def fresh(self, key: Any) -> bool:
        """Whether the entry is there and not expired."""
        entry = self.entries.get(key)
        return entry is not None and self.clock() < entry.until

    def stale(self, key: Any) -> Any:
        """The last value stored, fresh or not (None if there is none), to look at without
        serving it: nothing is refreshed."""
        entry = self.entries.get(key)
        return None if entry is None else entry.value

    def read_ahead(self, key: Any, load: Callable[[], Any]) -> None:
        """Start ``load`` in the background unless the entry is fresh or a load is under way;
        ``fetch`` waits for it."""
        now = self.clock()
        with self._lock:
            entry = self.entries.get(key)
            if (entry is not None and now < entry.until) or self._load_under_way(key, now):
                return
            started = self.loads[key] = _Load(now)
        try:
            (self.submit or background().submit)(self._load, key, started, load)
        except RuntimeError as refused:  # the threads are shut down (the interpreter exits)
            self._forget(key, started, refused)

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self.loads.pop(key, None)  # a load under way read before this value was known
            self._store(key, value)

    def drop(self, key: Any) -> None:
        with self._lock:
            self.loads.pop(key, None)
            self.entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.loads.clear()
            self.entries.clear()

    def _load_under_way(self, key: Any, now: float | None = None) -> _Load | None:
        # One started longer ago than an entry lives (a container frozen while it ran) would
        # hand over a value older than the cache may serve: the caller loads its own.
        under_way = self.loads.get(key)
        if under_way is None:
            return None
        age = (self.clock() if now is None else now) - under_way.started
        return under_way if age < self.life() else None

    def _load(self, key: Any, under_way: _Load, load: Callable[[], Any]) -> None:
        try:
            under_way.value = load()
        except BaseException as failed:  # whoever waits for it raises it (``fetch``)
            under_way.error = failed
        with self._lock:
            if self.loads.get(key) is under_way:
                del self.loads[key]
                if under_way.error is None and under_way.value is not None:
                    self._store(key, under_way.value, under_way.started)
        under_way.done.set()

    def _forget(self, key: Any, under_way: _Load, error: BaseException) -> None:
        with self._lock:
            if self.loads.get(key) is under_way:
                del self.loads[key]
        under_way.error = error
        under_way.done.set()

    def _store(self, key: Any, value: Any, read_at: float | None = None) -> None:
        if len(self.entries) > MAX_ENTRIES:
            self.entries.clear()
        now = self.clock() if read_at is None else read_at
        until = now + self.life()
        if self.expires is not None:
            until = min(until, self.expires(value))
        self.entries[key] = _Entry(value, now, until)

    def life(self) -> float:
        """How long an entry is served, from when it was read."""
        return self.seconds() if callable(self.seconds) else self.seconds

    def _submit_refresh(self, key: Any, entry: _Entry, load: Callable[[], Any]) -> None:
        try:
            (self.submit or background().submit)(self._refresh, key, entry, load)
        except RuntimeError:  # the threads are shut down (the interpreter exits)
            entry.refreshing = False

    def _refresh(self, key: Any, entry: _Entry, load: Callable[[], Any]) -> None:
        # The value's life starts when it was read, not when this thread got to store it (a
        # container frozen in between would otherwise serve it for a whole life after thawing).
        read_at = self.clock()
        try:
            value = load()
        except Exception:
            # The entry expires as it would have; the next request loads it itself, or (an
            # expired copy in use: ``lasting``) starts another refresh.
            entry.refreshing = False
            return
        with self._lock:
            if self.entries.get(key) is not entry:
                return  # replaced or dropped meanwhile (a write): this read is older than that
            if value is None:
                self.entries.pop(key, None)  # gone (a deleted key): the next request says so
            else:
                self._store(key, value, read_at)
