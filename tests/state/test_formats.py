"""The default record framing, the snapshot container and the manifest, property by property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from residentd.state import BadRecord, BadSnapshot, Container, LengthCrcRecords, Manifest, Part
from residentd.state.framing import encode_record
from residentd.state.manifest import BadManifest, Layout

payloads = st.lists(st.binary(max_size=64), max_size=12)


def _frame(records: list[bytes]) -> tuple[bytes, list[int]]:
    data = b""
    ends = []
    for record in records:
        data += encode_record(record)
        ends.append(len(data))
    return data, ends


@settings(deadline=None)
@given(payloads)
def test_records_round_trip(records: list[bytes]) -> None:
    data, ends = _frame(records)
    assert list(LengthCrcRecords().scan(data)) == list(zip(records, ends, strict=True))


@settings(deadline=None)
@given(payloads, st.data())
def test_a_cut_anywhere_yields_the_whole_records_before_it(
    records: list[bytes], data: st.DataObject
) -> None:
    framed, ends = _frame(records)
    cut = data.draw(st.integers(0, len(framed)))
    scanned = list(LengthCrcRecords().scan(framed[:cut]))
    whole = [end for end in ends if end <= cut]
    assert [end for _, end in scanned] == whole
    assert [record for record, _ in scanned] == records[: len(whole)]


@settings(deadline=None)
@given(payloads.filter(bool), st.data())
def test_any_flipped_byte_is_found_at_its_record(records: list[bytes], data: st.DataObject) -> None:
    framed, ends = _frame(records)
    position = data.draw(st.integers(0, len(framed) - 1))
    flip = data.draw(st.integers(1, 255))
    broken = bytearray(framed)
    broken[position] ^= flip
    start = max([0, *[end for end in ends if end <= position]])
    with pytest.raises(BadRecord) as caught:
        list(LengthCrcRecords().scan(bytes(broken)))
    assert caught.value.offset == start


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_container_round_trip_and_flips(payload: bytes) -> None:
    fmt = Container(b"TEST", 3)

    class Out:
        data = b""

        def write(self, chunk: bytes) -> int:
            Out.data += chunk
            return len(chunk)

    fmt.write(Out(), lambda stream: stream.write(payload))  # type: ignore[arg-type]
    assert fmt.read(Out.data) == payload
    for position in range(len(Out.data)):
        broken = bytearray(Out.data)
        broken[position] ^= 0x01
        with pytest.raises(BadSnapshot):
            fmt.read(bytes(broken))
    with pytest.raises(BadSnapshot, match="version 3, this build reads 4"):
        Container(b"TEST", 4).read(Out.data)


names = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="/\"'\\"),
    min_size=1,
    max_size=20,
)


@settings(deadline=None)
@given(
    st.one_of(st.none(), st.builds(Part, names, st.integers(1, 10**6), st.just("b"))),
    st.lists(st.tuples(names, st.integers(1, 1000)), max_size=5),
)
def test_manifest_round_trip(base: Part | None, incrs: list[tuple[str, int]]) -> None:
    seqs = sorted({seq for _, seq in incrs})
    parts = [Part(name, seq, "i") for (name, _), seq in zip(incrs, seqs, strict=False)]
    manifest = Manifest(base, parts)
    assert Manifest.parse(manifest.render()) == manifest


def test_redis_7_manifest_and_names() -> None:
    # As redis-server 7.0 writes it after a BGREWRITEAOF.
    text = (
        b"file appendonly.aof.2.base.rdb seq 2 type b\n"
        b"file appendonly.aof.2.incr.aof seq 2 type i\n"
    )
    manifest = Manifest.parse(text)
    layout = Layout.redis()
    assert manifest.base == Part(layout.base_name(2), 2, "b")
    assert manifest.incrs == [Part(layout.incr_name(2), 2, "i")]
    assert manifest.render() == text
    assert layout.manifest_path("d") == "d/appendonlydir/appendonly.aof.manifest"


@pytest.mark.parametrize(
    "text",
    [
        b"file a seq x type i\n",
        b"file a seq 1 type z\n",
        b"file a seq 1\n",
        b"file a seq 1 type b\nfile b seq 2 type b\n",
        b"file a seq 2 type i\nfile b seq 1 type i\n",
        b"file ../x seq 1 type i\n",
    ],
)
def test_bad_manifests_are_refused(text: bytes) -> None:
    with pytest.raises(BadManifest, match="line"):
        Manifest.parse(text, "m")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("yes", True), ("no", False), ("ON", True), ("0", False)],
)
def test_appendonly_as_redis_spells_it(value: object, expected: bool) -> None:
    from residentd.state.settings import truthy

    assert truthy(value) is expected
