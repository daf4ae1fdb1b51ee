"""``StreamDelivery.at_hand``: what the relay's event loop hands on without a thread's help.

The edge takes a stream's plain events on its loop and leaves to ``next()`` (in a thread) only
what writes: the stream's end and its settle. These drive a delivery over a source whose items
the test lays out, so the order of what the reader handed on is exact.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

from chalicelib.services.streaming import KEEPALIVE, StreamDelivery
from chalicelib.upstream.streaming import StreamItem


class Source:
    """The reader's side as a delivery sees it: items already handed on, in order."""

    def __init__(self) -> None:
        self.items: deque[StreamItem] = deque()
        self.closed = False
        self.listener: Callable[[], None] | None = None

    def next_item_now(self) -> StreamItem | None:
        return self.items.popleft() if self.items else None

    def next_item(self, timeout: float) -> StreamItem | None:
        return self.next_item_now()

    def listen(self, callback: Callable[[], None]) -> None:
        self.listener = callback

    def close(self) -> None:
        self.closed = True


def event(text: str) -> StreamItem:
    return StreamItem("event", f"data: {text}\n\n".encode(), text)


def delivery(source: Source, first: StreamItem | None) -> StreamDelivery:
    call = cast(Any, SimpleNamespace(seconds_left=lambda: 60.0, kind="chat"))
    return StreamDelivery(call, cast(Any, None), cast(Any, source), first)


def test_events_already_handed_on_go_out_together_then_nothing_until_more_come() -> None:
    # GIVEN a stream whose first event came with the response, and two more read since
    source = Source()
    stream = delivery(source, event("a"))
    source.items.extend([event("b"), event("c")])
    # WHEN the loop asks what is at hand, twice
    first, then = stream.at_hand(), stream.at_hand()
    # THEN all three go out at once, in order; then there is nothing to send (and no keepalive:
    # the client has had an event)
    assert first == b"data: a\n\ndata: b\n\ndata: c\n\n"
    assert then == b""
    assert not source.closed


def test_the_end_after_a_usage_only_chunk_is_left_to_next() -> None:
    # GIVEN a stream under way, then a usage-only chunk the client did not ask for (nothing to
    # send) and the end, both read before the loop looks
    source = Source()
    stream = delivery(source, event("a"))
    assert stream.at_hand() == b"data: a\n\n"
    source.items.extend([StreamItem("event", b"", usage=(3, 4)), StreamItem("done", b"end")])
    # WHEN the loop asks what is at hand
    at_hand = stream.at_hand()
    # THEN nothing is: the end is for ``next()``, now (b"" would have the loop wait for an
    # arrival that already happened, a tick before the client got its end)
    assert at_hand is None
    assert stream.at_hand() is None  # and the end is kept for it, not dropped
    assert not source.items


def test_a_failure_is_left_to_next_and_nothing_after_it_is_taken() -> None:
    # GIVEN a stream that broke after its first event
    source = Source()
    stream = delivery(source, event("a"))
    source.items.extend([StreamItem("failed"), event("late")])
    # WHEN the loop asks what is at hand
    at_hand = stream.at_hand()
    # THEN the event before the failure goes out, and the failure waits for ``next()``
    assert at_hand == b"data: a\n\n"
    assert stream.at_hand() is None
    assert [item.kind for item in source.items] == ["event"]


def test_a_stream_with_no_event_yet_opens_with_a_keepalive() -> None:
    # GIVEN a stream whose provider was silent past the keepalive time before the response
    source = Source()
    stream = delivery(source, None)
    # WHEN the loop asks what is at hand, before anything and after an event came
    opening = stream.at_hand()
    source.items.append(event("a"))
    # THEN the response opens with a keepalive, and the event follows
    assert opening == KEEPALIVE
    assert stream.at_hand() == b"data: a\n\n"


def test_a_stream_that_ends_is_charged_before_its_end_goes_out(monkeypatch: Any) -> None:
    # GIVEN a stream whose events and end were read, with the call's charge recorded
    from chalicelib.services import streaming

    charged: list[tuple[str, int, int]] = []

    def charge(call: Any, held: Any, delivered: Any, **kwargs: Any) -> None:
        charged.append((kwargs["status"], delivered.prompt_tokens, delivered.completion_tokens))

    monkeypatch.setattr(streaming, "charge", charge)
    monkeypatch.setattr(streaming, "remember_objects", lambda *args: None)
    source = Source()
    stream = delivery(source, event("a"))
    source.items.extend(
        [StreamItem("event", b"", usage=(3, 4)), StreamItem("done", b"data: [DONE]\n\n")]
    )
    assert stream.at_hand() == b"data: a\n\n"
    # WHEN the end is taken (``next()``, as the edge takes it)
    end = next(stream)
    # THEN the call was charged, once, for upstream's usage before its end was handed on: a
    # client that calls again on reading it finds this call's hold released
    assert end == b"data: [DONE]\n\n"
    assert charged == [("ok", 3, 4)]
    assert list(stream) == [] and charged == [("ok", 3, 4)]


def test_an_opening_is_decided_by_its_first_item_and_only_a_failure_or_rejection_writes() -> None:
    # GIVEN openings whose first items are an event, a failure, a rejection, and none yet
    from chalicelib.services.streaming import StreamOpening

    call = cast(Any, SimpleNamespace(seconds_left=lambda: 60.0, kind="chat"))
    openings = {}
    for name, first in (
        ("event", event("a")),
        ("failed", StreamItem("failed")),
        ("rejected", StreamItem("rejected")),
        ("none", None),
    ):
        source = Source()
        if first is not None:
            source.items.append(first)
        openings[name] = StreamOpening(call, cast(Any, None), cast(Any, source))
    # WHEN the loop asks whether each is decided, and whether its answer writes
    decided = {name: opening.decided() for name, opening in openings.items()}
    writes = {name: opening.writes() for name, opening in openings.items()}
    # THEN the three with an item are decided (the silent one waits for its keepalive time),
    # and only the failure's refund and the rejection's settle go to a thread
    assert decided == {"event": True, "failed": True, "rejected": True, "none": False}
    assert writes == {"event": False, "failed": True, "rejected": True, "none": False}


def test_an_abandoned_opening_hangs_up_and_gives_the_hold_back(monkeypatch: Any) -> None:
    # GIVEN an opening nobody waits for any more (its wait was cancelled)
    from chalicelib.services import streaming

    charged: list[tuple[str, bool]] = []
    monkeypatch.setattr(
        streaming, "charge", lambda *a, **k: charged.append((k["status"], k["paid"]))
    )
    source = Source()
    call = cast(Any, SimpleNamespace(seconds_left=lambda: 60.0, kind="chat"))
    opening = streaming.StreamOpening(call, cast(Any, None), cast(Any, source))
    # WHEN it is abandoned
    opening.abandon()
    # THEN upstream is hung up on and the call settled now, unpaid, as a client that left
    assert source.closed
    assert charged == [("client_closed", False)]


def test_past_the_keepalive_time_the_answer_never_takes_what_came_late(monkeypatch: Any) -> None:
    # GIVEN an opening decided by the keepalive time (nothing came), whose failure is queued
    # just after the edge was told the answer does not write
    from chalicelib.services import streaming

    refunds: list[Any] = []
    monkeypatch.setattr(streaming, "refund_failed", lambda *args: refunds.append(args))
    monkeypatch.setattr(streaming, "rate_headers", lambda *args: {})
    source = Source()
    call = cast(Any, SimpleNamespace(seconds_left=lambda: 60.0, kind="chat"))
    held = cast(Any, SimpleNamespace(record=SimpleNamespace(request_id="r1")))
    opening = streaming.StreamOpening(call, held, cast(Any, source))
    opening._keepalive_at = 0.0  # (long past)
    assert opening.decided() and not opening.writes()
    source.items.append(StreamItem("failed"))
    # WHEN the answer is made (on the loop, as the edge makes an answer that does not write)
    answer = opening.answer()
    # THEN it is the stream, opening with a keepalive; the failure is left for it, unrefunded
    assert isinstance(answer, streaming.StreamedCall) and not refunds
    assert answer.chunks.at_hand() == KEEPALIVE
    assert answer.chunks.at_hand() is None  # the failure: for ``next()``, in a thread


def test_a_failure_on_the_loop_is_settled_as_the_relays_not_as_a_hang_up(
    monkeypatch: Any,
) -> None:
    # GIVEN a stream whose source fails when the loop looks
    from chalicelib.services import streaming

    charged: list[str] = []
    monkeypatch.setattr(streaming, "charge", lambda *a, **k: charged.append(k["status"]))

    class Broken(Source):
        def next_item_now(self) -> StreamItem | None:
            raise RuntimeError("a bug")

    source = Broken()
    stream = delivery(source, None)
    assert stream.at_hand() == KEEPALIVE
    # WHEN the loop looks, and then the edge closes the response as it does on any way out
    try:
        stream.at_hand()
    except RuntimeError:
        stream.close()
    # THEN the call is settled once, as the relay's error
    assert charged == ["relay_error"]


def test_the_reader_signals_each_item_and_a_late_listener_at_once() -> None:
    # GIVEN a reader (not started: the test hands items on itself)
    from chalicelib.upstream.streaming import ChatStream

    stream = ChatStream(cast(Any, None), [], "r1")
    signals: list[str] = []
    stream.listen(lambda: signals.append("first"))
    # WHEN it hands two items on, then another listener comes while they wait
    stream._handed_on(event("a"))
    stream._handed_on(event("b"))
    stream.listen(lambda: signals.append("second"))
    # THEN the first heard each item; the second, which replaced it, at once
    assert signals == ["first", "first", "second"]
    assert stream.next_item_now() == event("a") and stream.next_item_now() == event("b")
    assert stream.next_item_now() is None


def test_a_listener_that_fails_loses_no_item() -> None:
    # GIVEN a reader whose listener fails
    from chalicelib.upstream.streaming import ChatStream

    stream = ChatStream(cast(Any, None), [], "r1")

    def failing() -> None:
        raise ValueError("broken")

    stream.listen(failing)
    # WHEN it hands an item on THEN nothing is raised in the reader, and the item is there
    stream._handed_on(event("a"))
    assert stream.next_item_now() == event("a")


class Opening:
    """What the relay's edge sees of a stream being opened: decided at once, never writing."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.abandoned = 0

    def listen(self, callback: Callable[[], None]) -> None:
        pass

    def decided(self) -> bool:
        return True

    def seconds_to_keepalive(self) -> float:
        return 0.0

    def writes(self) -> bool:
        return False

    def answer(self) -> str:
        if self.failure is not None:
            raise self.failure
        return "the stream"

    def abandon(self) -> None:
        self.abandoned += 1


def test_an_answer_that_fails_on_the_loop_gives_the_hold_back() -> None:
    # GIVEN openings decided at once: one whose answer fails, one whose answer is made
    import asyncio

    from chalicelib.relay import app as relay_app

    failing, fine = Opening(RuntimeError("a bug")), Opening()
    # WHEN the edge makes their answers
    raised = None
    try:
        asyncio.run(relay_app.answered(cast(Any, failing)))
    except RuntimeError as exc:
        raised = exc
    made = asyncio.run(relay_app.answered(cast(Any, fine)))
    # THEN the failure is raised after the failing one was abandoned (upstream hung up on, its
    # hold given back), once; the other is answered and kept
    assert raised is not None and failing.abandoned == 1
    assert made == "the stream" and fine.abandoned == 0
