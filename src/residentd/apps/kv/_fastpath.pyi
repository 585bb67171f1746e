# Types of the C module _fastpath.c.

from typing import Any

def execute(
    commands: list[list[bytes]],
    start: int,
    db: Any,
    replies: list[bytes],
    journal: bytearray | None = None,
    waited: dict[bytes, Any] | None = None,
    /,
) -> int: ...
def crc64(crc: int, data: bytes | bytearray | memoryview, /) -> int: ...
