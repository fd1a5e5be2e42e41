"""Client output written at the end of the work that made it: frames and the flusher."""

from __future__ import annotations

import asyncio
import struct

import pytest

from travelagent.realtime.output import Flusher, text_frame


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e" + struct.pack("!H", 126)),
        (65535, b"\x81\x7e" + struct.pack("!H", 65535)),
        (65536, b"\x81\x7f" + struct.pack("!Q", 65536)),
    ],
)
def test_a_text_frame_is_final_unmasked_with_the_shortest_length_encoding(
    size: int, header: bytes
) -> None:
    payload = b"x" * size
    assert text_frame(payload) == header + payload


class Socket:
    def __init__(self, flusher: Flusher, name: str, log: list[str]) -> None:
        self.flusher, self.name, self.log = flusher, name, log
        self.queued = 0

    def queue(self) -> None:
        self.queued += 1
        self.flusher.mark(self)

    def flush(self) -> None:
        self.log.append(f"{self.name}:{self.queued}")
        self.queued = 0


async def test_each_dirty_socket_writes_once_per_flush_whatever_it_queued() -> None:
    flusher, log = Flusher(), list[str]()
    a, b = Socket(flusher, "a", log), Socket(flusher, "b", log)
    a.queue()
    b.queue()
    a.queue()
    flusher.flush()
    assert log == ["a:2", "b:1"]
    flusher.flush()
    assert log == ["a:2", "b:1"]  # nothing dirty: nothing written


async def test_output_nobody_flushed_is_written_at_the_next_pass_of_the_loop() -> None:
    flusher, log = Flusher(), list[str]()
    a = Socket(flusher, "a", log)
    a.queue()
    assert log == []
    await asyncio.sleep(0)
    assert log == ["a:1"]
    a.queue()  # a new callback is scheduled once the last one ran
    await asyncio.sleep(0)
    assert log == ["a:1", "a:1"]


async def test_a_socket_marked_during_a_flush_is_written_in_the_same_flush() -> None:
    flusher, log = Flusher(), list[str]()
    b = Socket(flusher, "b", log)

    class Fanning(Socket):
        def flush(self) -> None:
            super().flush()
            b.queue()  # e.g. a write that made another socket's output

    a = Fanning(flusher, "a", log)
    a.queue()
    flusher.flush()
    assert log == ["a:1", "b:1"]
