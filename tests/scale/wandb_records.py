"""Read the records of an offline wandb run file (``run-<id>.wandb``) in tests.

wandb >= 0.19 has no Python reader any more (its core is in Go). The file is a 7-byte header
(``:W&B``, magic, version) then a LevelDB-style log of 32 KiB blocks; each chunk has a 7-byte
header (CRC32C, little-endian length, type: full / first / middle / last) and the chunks of one
record carry a serialized ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER, FILE_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a wandb run file")
    records, pending, pos = [], b"", FILE_HEADER
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:  # zero padding / preallocated end
            pos += left_in_block
            continue
        chunk = data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def read_finished_run(path: str | Path, timeout: float = 60.0) -> list:
    """The records once the run's ``exit`` record is in the file: wandb-core writes the file
    asynchronously, and can still be appending after ``run.finish()`` returned."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records):
            return records
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: no exit record after {timeout} s")
        time.sleep(0.2)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def history(records) -> list[dict]:
    """The logged metric rows (``wandb.log`` calls)."""
    return [{_key(i): json.loads(i.value_json) for i in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]


def config(records) -> dict:
    """The run config (``wandb.config`` updates), top-level keys -> values."""
    out = {}
    for r in records:
        if r.WhichOneof("record_type") in ("config", "run"):
            updates = r.config.update if r.HasField("config") else r.run.config.update
            out.update({_key(i): json.loads(i.value_json) for i in updates})
    return out
