"""Pipeline lifecycle: EOS on request (`send_eos`), stopping with a thread that will not
leave, the rollback of a failed start, several elements failing to stop, typed `get`."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

import parallax
from parallax import FlowError, StateError
from parallax.buffer import Buffer
from parallax.elements import AppSink, AppSrc, FakeSink, FakeSrc, Identity
from parallax.pipeline import Element, Message, MessageType, Pipeline, Sink, Source, State

# -- send_eos: every source ends after its current buffer, EOS drains to every sink ---------


def _eos_after_send(p: Pipeline, *, settle: float = 0.1) -> Message:
    """Play `p`, let it stream, ask for EOS, and return what the bus says (EOS expected)."""
    p.play()
    time.sleep(settle)
    assert p.wait(0) is None, "the pipeline ended before send_eos"
    p.send_eos()
    message = p.wait(2.0)
    assert message is not None, "no EOS within 2 s of send_eos()"
    return message


@pytest.mark.parametrize(
    "source",
    [
        "fakesrc sizetype=fixed sizemax=64",  # FakeSrc's own fast loop
        "fakesrc filltype=pattern sizetype=fixed sizemax=64",  # Source.loop over create()
    ],
)
def test_send_eos_ends_an_endless_source(source: str) -> None:
    with parallax.parse_launch(f"{source} name=src ! fakesink name=sink") as p:
        message = _eos_after_send(p)
        assert message.type is MessageType.EOS
        assert p.state is State.PLAYING  # EOS does not change the state: stop() does
        m = p.metrics()
        assert m["src"]["buffers_out"] == m["sink"]["buffers_in"] > 0


def test_send_eos_drains_what_queues_hold_to_every_sink() -> None:
    p = parallax.parse_launch(
        "fakesrc name=src sizetype=fixed sizemax=8 ! tee name=t "
        "t. ! queue ! identity sleep-time=2000 ! fakesink name=slow "
        "t. ! queue ! fakesink name=fast"
    )
    with p:
        assert _eos_after_send(p, settle=0.2).type is MessageType.EOS
        m = p.metrics()
    pushed = m["src"]["buffers_out"]
    assert pushed > 16  # the slow branch's queue was full when EOS was asked for
    assert m["slow"]["buffers_in"] == m["fast"]["buffers_in"] == pushed


def test_send_eos_interrupts_an_appsrc_waiting_for_data() -> None:
    with parallax.parse_launch("appsrc name=src ! appsink name=out") as p:
        p.play()
        p.get("src", AppSrc).push_buffer(b"one")
        assert p.get("out", AppSink).pull(2.0) is not None
        time.sleep(0.1)  # appsrc now waits in create() for the next buffer
        p.send_eos()
        message = p.wait(1.0)
        assert message is not None and message.type is MessageType.EOS


def test_send_eos_interrupts_an_ipcsrc_waiting_for_the_publisher() -> None:
    service = f"test-eos-{uuid.uuid4().hex[:8]}"
    with (
        parallax.parse_launch(f"appsrc ! ipcsink service={service}") as producer,
        parallax.parse_launch(f"ipcsrc service={service} ! fakesink") as consumer,
    ):
        producer.play()
        consumer.play()
        time.sleep(0.2)  # ipcsrc connected and polls for a buffer that never comes
        consumer.send_eos()
        message = consumer.wait(1.0)
        assert message is not None and message.type is MessageType.EOS


def test_send_eos_cancels_an_async_source_waiting_on_its_socket() -> None:
    with parallax.parse_launch("tcpserversrc port=0 ! fakesink") as p:
        p.play()
        time.sleep(0.1)  # awaiting a connection that never comes
        p.send_eos()
        message = p.wait(1.0)
        assert message is not None and message.type is MessageType.EOS


def test_send_eos_ends_a_generator_source() -> None:
    @parallax.source("test-lifecycle-endless", register=False)
    def endless() -> object:
        while True:
            yield b"x"

    p = Pipeline()
    p.link(endless(name="gen"), FakeSink(name="sink"))
    with p:
        assert _eos_after_send(p).type is MessageType.EOS


def test_send_eos_while_paused_ends_the_stream() -> None:
    with parallax.parse_launch("fakesrc sizetype=fixed sizemax=8 ! fakesink") as p:
        p.play()
        time.sleep(0.05)
        p.pause()
        p.send_eos()
        message = p.wait(1.0)
        assert message is not None and message.type is MessageType.EOS


def test_send_eos_needs_a_streaming_pipeline() -> None:
    p = parallax.parse_launch("fakesrc ! fakesink")
    with pytest.raises(StateError, match="pipeline0: cannot send EOS in state NULL"):
        p.send_eos()


def test_a_pipeline_ended_by_send_eos_runs_again_in_full() -> None:
    with parallax.parse_launch("fakesrc name=src sizetype=fixed sizemax=8 ! fakesink") as p:
        _eos_after_send(p)
        p.stop()
        before = p.metrics()["src"]["buffers_out"]
        p.get("src", FakeSrc).set_property("num-buffers", 50)
        p.run(timeout=5)  # the EOS request of the last run is gone: all 50 buffers flow
        assert p.metrics()["src"]["buffers_out"] - before == 50


# -- stop() with a thread that does not leave ------------------------------------------------


class _Stuck(Sink[parallax.pipeline.Media]):
    """A sink whose render() blocks until the test releases it (no flush reaches it)."""

    def __init__(self, release: threading.Event, **props: object) -> None:
        super().__init__("stuck", **props)
        self.release = release
        self.entered = threading.Event()

    def render(self, buf: Buffer) -> None:
        self.entered.set()
        self.release.wait(10)


def test_stop_with_a_stuck_thread_reaches_null_and_names_the_thread() -> None:
    release = threading.Event()
    stuck = _Stuck(release)
    p = Pipeline()
    p.link(FakeSrc(name="src"), stuck)
    p.play()
    try:
        assert stuck.entered.wait(2)
        t0 = time.monotonic()
        p.stop()  # no error: the thread is reported, and everything else is closed
        took = time.monotonic() - t0
        assert p.state is State.NULL
        assert all(e.state is State.NULL for e in p)
        assert took < 2.0
        warnings = list(p.bus.messages(MessageType.WARNING))
        assert len(warnings) == 1
        text = warnings[0].data["text"]
        assert warnings[0].source == "src" and warnings[0].data["thread"] == "parallax:src"
        assert text.startswith("src: thread 'parallax:src' did not stop within 1.0 s")
        assert "blocked in render (" in text and text.endswith("; it is left running")
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name == "parallax:src":
                thread.join(2)


# -- a failed start rolls back every element; stop failures are listed ----------------------


class _Tracked(Identity):
    """An identity that records its start/stop and can fail either."""

    def __init__(
        self, name: str, log: list[str], *, fail_start: bool = False, fail_stop: bool = False
    ) -> None:
        super().__init__(name)
        self.log, self.fail_start, self.fail_stop = log, fail_start, fail_stop

    def start(self) -> None:
        self.log.append(f"start {self.name}")
        if self.fail_start:
            raise FlowError(f"{self.name}: cannot open", element=self.name)

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")
        if self.fail_stop:
            raise OSError(f"{self.name} close failed")


def test_a_stop_failing_during_rollback_leaves_no_element_open() -> None:
    log: list[str] = []
    first = _Tracked("first", log, fail_start=True)  # upstream: started last, fails
    middle = _Tracked("middle", log, fail_stop=True)
    last = _Tracked("last", log)
    p = Pipeline()
    p.link_many(FakeSrc(name="src"), first, middle, last, FakeSink(name="sink"))
    with pytest.raises(FlowError, match="first: cannot open") as info:
        p.play()
    assert {"stop first", "stop middle", "stop last"} <= set(log)
    assert info.value.__notes__ == [
        "rolling back, middle.stop() failed: OSError: middle close failed"
    ]
    assert p.state is State.NULL and all(e.state is State.NULL for e in p)


def test_several_elements_failing_to_stop_are_all_named() -> None:
    class FailingStop(Identity):
        def stop(self) -> None:
            raise FlowError(f"{self.name}: flush failed", element=self.name)

    p = Pipeline()
    p.link_many(FakeSrc(num_buffers=1), FailingStop(name="a"), FailingStop(name="b"), FakeSink())
    p.play()
    with pytest.raises(FlowError) as info:  # `except FlowError` still catches it
        p.stop()
    err = info.value
    assert str(err) == "pipeline0: 2 elements failed to stop: a: flush failed; b: flush failed"
    assert err.element == "a"
    assert isinstance(err.__cause__, ExceptionGroup)
    assert [str(e) for e in err.__cause__.exceptions] == ["a: flush failed", "b: flush failed"]
    assert p.state is State.NULL  # every element had its stop(): nothing is left to stop
    p.stop()  # and stopping again is a no-op


def test_one_element_failing_to_stop_raises_its_own_error() -> None:
    class FailingStop(Identity):
        def stop(self) -> None:
            raise OSError("disk gone")

    p = Pipeline()
    p.link_many(FakeSrc(num_buffers=1), FailingStop(name="a"), FakeSink())
    p.play()
    with pytest.raises(OSError, match="disk gone"):
        p.stop()
    assert p.state is State.NULL


# -- get(name, kind): a typed lookup ---------------------------------------------------------


def test_get_returns_the_element_typed_as_asked() -> None:
    p = parallax.parse_launch("appsrc name=src ! fakesink name=sink")
    src = p.get("src", AppSrc)
    assert src is p["src"]
    assert p.get("src", Source) is src  # a base class is a fine thing to ask for
    assert p.get("sink", Element) is p["sink"]


def test_get_with_the_wrong_type_names_both() -> None:
    p = parallax.parse_launch("fakesrc name=src ! fakesink")
    with pytest.raises(TypeError) as info:
        p.get("src", AppSrc)
    assert str(info.value) == (
        "pipeline0: element 'src' is a parallax.elements.FakeSrc (fakesrc), "
        "not a parallax.elements.AppSrc"
    )


def test_get_of_an_unknown_name_is_a_key_error_listing_the_names() -> None:
    p = parallax.parse_launch("fakesrc name=src ! fakesink name=sink")
    with pytest.raises(KeyError, match="pipeline0 has no element 'nope' \\(has: src, sink\\)"):
        p.get("nope", AppSrc)
