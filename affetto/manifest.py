"""The manifest: what an affetto model file says about itself.

Every exported ``.onnx`` carries one JSON document under the metadata key
``affetto``: vocabulary and grid, model config, KV-cache layout, conditioning,
a summary of the training data, versions, and a SHA-256 of the graph. This
module reads it straight from the file's protobuf, with neither onnx nor ONNX
Runtime, so a wrong, truncated or corrupted file is reported clearly before
any session is created.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from affetto.errors import ModelFileError

METADATA_KEY = "affetto"
FORMAT = "affetto-model"
FORMAT_VERSION = 1

# ModelProto field numbers (onnx.proto).
_GRAPH = 7
_METADATA_PROPS = 14


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Top-level (field number, wire type, value) of a protobuf message."""
    out = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
        out.append((number, wire, value))
    return out


def graph_hash(graph_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(graph_bytes).hexdigest()


def read_manifest(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """The manifest of an affetto model file; checks the graph against its hash.

    Raises :class:`ModelFileError` naming the file when it is missing, not
    ONNX, truncated, not an affetto model, or altered since export.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ModelFileError(f"{path}: no such model file") from err
    except OSError as err:
        raise ModelFileError(f"{path}: cannot read model file ({err})") from err
    try:
        fields = _fields(data)
    except ValueError as err:
        raise ModelFileError(f"{path}: not an ONNX model, or truncated ({err})") from err
    graph = next((v for n, w, v in fields if n == _GRAPH and w == 2), None)
    if graph is None:
        raise ModelFileError(f"{path}: not an ONNX model (no graph)")
    props = {}
    for number, wire, value in fields:
        if number == _METADATA_PROPS and wire == 2:
            entry = {n: v for n, w, v in _fields(value) if w == 2}
            props[entry.get(1, b"").decode("utf-8", "replace")] = entry.get(2, b"").decode("utf-8", "replace")
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path}: an ONNX model, but not an affetto model (no '{METADATA_KEY}' metadata)")
    try:
        manifest = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: the affetto manifest is not valid JSON ({err})") from err
    if manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unknown manifest format {manifest.get('format')!r}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: made by a newer affetto (manifest version {manifest.get('format_version')}); upgrade affetto"
        )
    if verify and manifest.get("content_hash") != graph_hash(graph):
        raise ModelFileError(f"{path}: the graph does not match its content hash: the file was altered or damaged")
    return manifest
