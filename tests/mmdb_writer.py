"""A tiny MaxMind DB (.mmdb) writer for tests, from the published format (MaxMind DB spec 2.0).

Writes an IPv6 tree (IPv4 networks live under ::/96) with 24-bit records, a data section of
maps, strings, doubles and unsigned integers, and the metadata block. Enough to build a country
or city database of a few networks that maxminddb reads like a real one.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from typing import Any

_METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


class U16(int):
    """An integer written as uint16 (metadata fields have fixed types)."""


class U32(int):
    """An integer written as uint32."""


class U64(int):
    """An integer written as uint64."""


def _control(type_number: int, size: int) -> bytes:
    if size < 29:
        head, extra = size, b""
    elif size < 285:
        head, extra = 29, bytes([size - 29])
    elif size < 65821:
        head, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        head, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_number <= 7:
        return bytes([(type_number << 5) | head]) + extra
    return bytes([head, type_number - 7]) + extra


def encode(value: Any) -> bytes:
    """One value in the data-section encoding."""
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(2, len(raw)) + raw
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError("negative integers are not needed here")
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
        fixed = {U16: 5, U32: 6, U64: 9}.get(type(value))
        type_number = fixed or (5 if value < 1 << 16 else 6 if value < 1 << 32 else 9)
        return _control(type_number, len(raw)) + raw
    if isinstance(value, dict):
        body = b"".join(encode(str(k)) + encode(v) for k, v in value.items())
        return _control(7, len(value)) + body
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def write_mmdb(path: Path, networks: dict[str, dict[str, Any]], database_type: str, build_epoch: int) -> None:
    """Write `networks` (CIDR -> record) as a MaxMind DB file."""
    # the tree: nodes of [left, right]; an int child is a node, a tuple ('data', offset) a record
    nodes: list[list[Any]] = [[None, None]]
    data = b""
    for cidr, record in networks.items():
        net = ipaddress.ip_network(cidr)
        if net.version == 4:
            bits, length = int(net.network_address), 96 + net.prefixlen
        else:
            bits, length = int(net.network_address), net.prefixlen
        offset = len(data)
        data += encode(record)
        node = 0
        for depth in range(length):
            bit = (bits >> (127 - depth)) & 1
            if depth == length - 1:
                nodes[node][bit] = ("data", offset)
                break
            child = nodes[node][bit]
            if not isinstance(child, int):
                nodes.append([None, None])
                child = nodes[node][bit] = len(nodes) - 1
            node = child
    count = len(nodes)

    def record_value(child: Any) -> int:
        if child is None:
            return count
        if isinstance(child, int):
            return child
        return count + 16 + child[1]

    tree = b"".join(record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big") for left, right in nodes)
    metadata = {
        "node_count": U32(count),
        "record_size": U16(24),
        "ip_version": U16(6),
        "database_type": database_type,
        "languages": ["en"],
        "binary_format_major_version": U16(2),
        "binary_format_minor_version": U16(0),
        "build_epoch": U64(build_epoch),
        "description": {"en": f"test {database_type}"},
    }
    path.write_bytes(tree + b"\x00" * 16 + data + _METADATA_MARKER + encode(metadata))
