"""The member and cluster id an etcd data dir belongs to, read from its write-ahead log."""

from __future__ import annotations

import struct
from pathlib import Path

METADATA_RECORD = 1  # walpb.Record type carrying etcdserverpb.Metadata
READ_LIMIT = 1 << 16  # the metadata record is among the first few of the first file


class WalUnreadable(ValueError):
    """The WAL is missing or not in the shape etcd writes."""


def _varint(buffer: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(buffer) or shift > 63:
            raise WalUnreadable("truncated varint")
        byte = buffer[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(buffer: bytes) -> dict[int, int | bytes]:
    """The first occurrence of each field of a protobuf message (varints and bytes)."""
    found: dict[int, int | bytes] = {}
    at = 0
    while at < len(buffer):
        key, at = _varint(buffer, at)
        number, kind = key >> 3, key & 7
        value: int | bytes
        if kind == 0:
            value, at = _varint(buffer, at)
        elif kind == 2:
            size, at = _varint(buffer, at)
            value, at = buffer[at:at + size], at + size
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            value, at = buffer[at:at + width], at + width
        else:
            raise WalUnreadable(f"unexpected protobuf wire type {kind}")
        if at > len(buffer):
            raise WalUnreadable("truncated field")
        found.setdefault(number, value)
    return found


def member_ids(data_dir: Path) -> tuple[str, str]:
    """(member id, cluster id) as decimal strings, the way etcd's JSON API writes them."""
    wal_dir = data_dir / "member" / "wal"
    files = sorted(wal_dir.glob("*.wal")) if wal_dir.is_dir() else []
    if not files:
        raise WalUnreadable(f"no WAL file in {wal_dir}")
    with files[0].open("rb") as handle:
        data = handle.read(READ_LIMIT)
    at = 0
    while at + 8 <= len(data):
        (frame,) = struct.unpack_from("<Q", data, at)
        at += 8
        size = frame & 0x00FFFFFFFFFFFFFF
        padding = (frame >> 56) & 0x7 if frame >> 63 else 0
        record = data[at:at + size]
        if len(record) < size:
            break
        at += size + padding
        fields = _fields(record)
        payload = fields.get(3)
        if fields.get(1) == METADATA_RECORD and isinstance(payload, bytes):
            metadata = _fields(payload)
            member, cluster = metadata.get(1), metadata.get(2)
            if isinstance(member, int) and isinstance(cluster, int):
                return str(member), str(cluster)
    raise WalUnreadable(f"no metadata record at the start of {files[0].name}")
