"""A tiny GeoLite2-ASN-shaped database, written here (MaxMind DB format 2.0, IPv4 tree).

No ASN database ships with the packages we use, and the writer libraries are not dependencies;
the format is small enough to write for a few networks.
"""

import ipaddress

import pytest

ASN_NETWORKS = {
    "8.8.8.0/24": (15169, "GOOGLE"),
    "3.5.0.0/16": (16509, "AMAZON-02"),
    "81.2.69.0/24": (20712, "Andrews & Arnold Ltd"),
}


def _control(kind: int, size: int) -> bytes:
    """Control byte, extended type byte (types > 7 are stored as type - 7), size bytes."""
    if size < 29:
        marker, extra = size, b""
    elif size < 285:
        marker, extra = 29, bytes([size - 29])
    else:
        raise ValueError("values this long are not needed here")
    if kind <= 7:
        return bytes([(kind << 5) | marker]) + extra
    return bytes([marker, kind - 7]) + extra


UINT_TYPES = {"u16": 5, "u32": 6, "u64": 9}


def encode(value) -> bytes:
    """MaxMind DB data; ``("u16", n)`` etc. force an unsigned type (the C reader checks them)."""
    if isinstance(value, tuple):
        kind, number = value
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
        return _control(UINT_TYPES[kind], len(raw)) + raw
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, dict):
        out = _control(7, len(value))
        for key, item in value.items():
            out += encode(key) + encode(item)
        return out
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(encode(item) for item in value)
    if isinstance(value, int):
        return encode(("u32", value))
    raise TypeError(value)


def write_mmdb(path, networks: dict, database_type: str) -> None:
    """An IPv4 MaxMind DB mapping each network to its record (24-bit records)."""
    data, offsets = b"", []
    for record in networks.values():
        offsets.append(len(data))
        data += encode(record)
    root: dict = {}
    for (network, _), offset in zip(networks.items(), offsets):
        net = ipaddress.ip_network(network)
        node = root
        bits = format(int(net.network_address), "032b")[: net.prefixlen]
        for bit in bits[:-1]:
            node = node.setdefault(bit, {})
        node[bits[-1]] = ("data", offset)
    nodes, queue = [], [root]
    while queue:  # number nodes breadth first
        node = queue.pop(0)
        nodes.append(node)
        queue += [child for child in (node.get("0"), node.get("1")) if isinstance(child, dict)]
    index = {id(node): n for n, node in enumerate(nodes)}
    count = len(nodes)

    def record(child) -> int:
        if child is None:
            return count
        if isinstance(child, tuple):
            return count + 16 + child[1]
        return index[id(child)]

    tree = b"".join(
        record(node.get("0")).to_bytes(3, "big") + record(node.get("1")).to_bytes(3, "big") for node in nodes
    )
    metadata = {
        "node_count": ("u32", count), "record_size": ("u16", 24), "ip_version": ("u16", 4),
        "database_type": database_type, "languages": ["en"],
        "binary_format_major_version": ("u16", 2), "binary_format_minor_version": ("u16", 0),
        "build_epoch": ("u64", 1_790_000_000), "description": {"en": "pistats test " + database_type},
    }
    path.write_bytes(tree + b"\x00" * 16 + data + b"\xab\xcd\xefMaxMind.com" + encode(metadata))


@pytest.fixture(scope="session")
def asn_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("geo") / "test-ASN.mmdb"
    write_mmdb(path, {
        network: {"autonomous_system_number": asn, "autonomous_system_organization": org}
        for network, (asn, org) in ASN_NETWORKS.items()
    }, "GeoLite2-ASN")
    return path


