"""Reading the member id from an etcd WAL: real framing, and nothing but WalUnreadable on junk."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.stores.etcd.wal import WalUnreadable, member_ids


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def frame(record: bytes) -> bytes:
    """etcd's framing: little-endian length, padded to 8 bytes, the pad size in the top byte."""
    pad = (8 - len(record) % 8) % 8
    length = len(record) | ((0x80 | pad) << 56 if pad else 0)
    return struct.pack("<Q", length) + record + b"\0" * pad


def wal(tmp_path: Path, content: bytes) -> Path:
    directory = tmp_path / "member" / "wal"
    directory.mkdir(parents=True)
    (directory / "0000000000000000-0000000000000000.wal").write_bytes(content)
    return tmp_path


def test_reads_member_and_cluster_id(tmp_path: Path) -> None:
    member, cluster = 14094204690673144950, 15944663662747155984
    content = (frame(field(1, 4) + field(2, 0))  # crc record
               + frame(field(1, 1) + field(2, 145496463)
                       + field(3, field(1, member) + field(2, cluster)))
               + frame(field(1, 5) + field(3, b"")))
    assert member_ids(wal(tmp_path, content)) == (str(member), str(cluster))


def test_missing_wal(tmp_path: Path) -> None:
    with pytest.raises(WalUnreadable):
        member_ids(tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_junk_raises_only_wal_unreadable(content: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        try:
            member_ids(wal(Path(directory), content))
        except WalUnreadable:
            pass
