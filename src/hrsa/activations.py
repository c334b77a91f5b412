"""Activation shards: Parquet files partitioned by layer, one row per token (or text), vectors as fixed-size lists.

Layout: `{dir}/layer={layer}/part-{shard:05d}.parquet` plus `{dir}/_meta.json` (the leading underscore keeps it out of
the dataset); the whole directory is readable with `pyarrow.dataset` as one dataset (hive partitioning on `layer`),
shards in row order. Rows of two models align when their `row_hash`
(text ids and positions, in order) matches.

Integrity: every page carries Parquet's own CRC32 checksum, verified on every read here, so a flipped byte is an error
naming the shard, never a silently different number; `_meta.json` records a content hash per layer (`layer_hashes`)
that stamps the kNN graphs built from it.

Identity: each shard carries its own stamp (the `hrsa` key of its Parquet metadata: model id, layer), checked on every
read against its folder and `_meta.json`, so a shard or a layer folder moved to another place is an error naming it;
the recorded layer hash is checked against the shard files whenever it is used (`layer_hash`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hrsa.errors import DataError, HrsaError
from hrsa.io import sha256_file

TARGET_ROW_GROUP_BYTES = 32 << 20
DTYPES = {"float16": np.float16, "float32": np.float32}
COMPRESSIONS = ("zstd", "lz4", "none")


def layer_dir(root: str | Path, layer: str) -> Path:
    return Path(root) / f"layer={layer}"


def part_path(root: str | Path, layer: str, part: int = 0) -> Path:
    return layer_dir(root, layer) / f"part-{part:05d}.parquet"


class LayerWriter:
    """Streams one layer's rows into one Parquet file, row groups of about TARGET_ROW_GROUP_BYTES.

    Keeps `write_seconds` (conversion, compression and I/O) so benchmarks can report the write rate.
    """

    def __init__(self, path: str | Path, layer: str, dim: int, dtype: str, metadata: dict[str, Any],
                 compression: str = "zstd") -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if dtype not in DTYPES:
            raise HrsaError(f"activation dtype {dtype!r} is not one of {sorted(DTYPES)}")
        if compression not in COMPRESSIONS:
            raise HrsaError(f"activation compression {compression!r} is not one of {COMPRESSIONS}")
        self.path, self.layer, self.dim, self.dtype, self.np_dtype = Path(path), layer, dim, dtype, DTYPES[dtype]
        self.model_id = metadata.get("model_id", "?")
        self.rows_per_group = max(256, TARGET_ROW_GROUP_BYTES // (dim * np.dtype(self.np_dtype).itemsize))
        value_type = pa.float16() if dtype == "float16" else pa.float32()
        self.schema = pa.schema(
            [("text_id", pa.int32()), ("position", pa.int32()), ("token_id", pa.int32()),
             ("vector", pa.list_(value_type, dim))],
            metadata={"hrsa": json.dumps({**metadata, "layer": layer, "dtype": dtype, "dim": dim})},
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ints = ["text_id", "position", "token_id"]
        # Vectors: byte-stream-split (+ zstd the exponent bytes compress), no dictionary or min/max statistics, which
        # cost more than half the write time for float16 and buy nothing for dense floats (bench/bench_extract.py).
        # Page checksums (CRC32 per page) make a corrupted shard an error on read instead of different numbers.
        self.writer = pq.ParquetWriter(self.path, self.schema, compression=compression, use_dictionary=ints,
                                       write_statistics=ints, use_byte_stream_split=["vector.list.element"],
                                       write_page_checksum=True)
        self.sha256: str | None = None  # content hash of the finished file (set by close)
        self.buffer: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.buffered = 0
        self.rows = 0
        self.write_seconds = 0.0

    def add(self, text_id: np.ndarray, position: np.ndarray, token_id: np.ndarray, vectors: np.ndarray) -> None:
        """Buffer rows; NaN/inf (or values beyond the stored type's range) fail here, naming model, layer and text."""
        t0 = time.perf_counter()
        if vectors.shape[1:] != (self.dim,):
            raise HrsaError(
                f"model {self.model_id}, layer {self.layer}: vectors of shape {vectors.shape}, dim {self.dim} expected"
            )
        self._check_finite(text_id, vectors, "non-finite activations")
        with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
            stored = vectors.astype(self.np_dtype, copy=False)
        if stored is not vectors:
            what = f"activations beyond the {self.dtype} range (set activation_dtype: float32)"
            self._check_finite(text_id, stored, what)
        self.buffer.append((text_id, position, token_id, stored))
        self.buffered += len(text_id)
        self.write_seconds += time.perf_counter() - t0
        if self.buffered >= self.rows_per_group:
            self.flush()

    def _check_finite(self, text_id: np.ndarray, vectors: np.ndarray, what: str) -> None:
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise HrsaError(f"{what} in model {self.model_id}, layer {self.layer}, text id {int(text_id[bad][0])}")

    def flush(self) -> None:
        import pyarrow as pa

        if not self.buffer:
            return
        t0 = time.perf_counter()
        cols = [np.concatenate([b[i] for b in self.buffer]) for i in range(4)]
        # zero-copy from numpy (the dtype already matches); an explicit pyarrow type made float16 go through Python
        # (50x)
        flat = pa.array(np.ascontiguousarray(cols[3]).reshape(-1))
        assert flat.type == self.schema.field("vector").type.value_type
        table = pa.Table.from_arrays(
            [pa.array(cols[0], pa.int32()), pa.array(cols[1], pa.int32()), pa.array(cols[2], pa.int32()),
             pa.FixedSizeListArray.from_arrays(flat, self.dim)],
            schema=self.schema,
        )
        self.writer.write_table(table, row_group_size=len(cols[0]))
        self.rows += len(cols[0])
        self.buffer, self.buffered = [], 0
        self.write_seconds += time.perf_counter() - t0

    def close(self) -> None:
        """Finish the file and hash it while it is still in the page cache (the layer's content hash needs it)."""
        self.flush()
        t0 = time.perf_counter()
        self.writer.close()
        self.sha256 = sha256_file(self.path)
        self.write_seconds += time.perf_counter() - t0

    def abort(self) -> None:
        """Close and delete a partly written file (a failed shard leaves nothing behind)."""
        with contextlib.suppress(Exception):
            self.writer.close()
        self.path.unlink(missing_ok=True)


def row_hash(text_id: np.ndarray, position: np.ndarray) -> str:
    """Identity of the row order: two models align only if their rows are the same (text, position) in order."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(text_id, dtype=np.int32).tobytes())
    h.update(np.ascontiguousarray(position, dtype=np.int32).tobytes())
    return h.hexdigest()


META_KEYS = ("model_id", "layers", "n_rows", "row_hash")


def read_meta(root: str | Path) -> dict[str, Any]:
    """The activation directory's `_meta.json`; a missing, truncated or incomplete one is a DataError naming it."""
    path = Path(root) / "_meta.json"
    if not path.is_file():
        raise DataError(f"{root}: not an activation directory (no _meta.json)")
    redo = f"delete {root} and re-run its extract job"
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is truncated or unreadable ({exc}); {redo}") from exc
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)} (not written by a finished extraction); {redo}")
    return meta


def combine_hashes(file_hashes: list[tuple[str, str]]) -> str:
    """One content hash of a layer from its shard files' (name, sha256) in row order."""
    h = hashlib.sha256()
    for name, digest in file_hashes:
        h.update(f"{name}:{digest}\n".encode())
    return h.hexdigest()


def layer_hash(root: str | Path, layer: str) -> str:
    """Content hash of one layer's shards, computed from the files (about 0.3 s per 460 MB layer, next to reading it)
    and checked against the hash extraction recorded in `_meta.json`: a layer folder swapped, or a shard replaced or
    damaged after extraction is a DataError naming the shard (when its pages or stamp tell) or the folder, and its
    extract job."""
    recorded = read_meta(root).get("layer_hashes", {}).get(layer)
    parts = _parts(root, layer)
    actual = _content_hash(tuple((str(p), *_stat(p)) for p in parts))
    if recorded and str(recorded) != actual:
        for _ in _scan(root, layer, ["text_id", "position", "vector"]):
            pass  # names the shard when one is corrupt or stamped for another model or layer
        raise DataError(f"{layer_dir(root, layer)}: its shard files are not the ones extraction recorded (layer hash "
                        f"{actual[:16]} != {str(recorded)[:16]} in {Path(root) / '_meta.json'}; moved or replaced "
                        f"after extraction); delete {root} and re-run its extract job")
    return actual


def _stat(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


@functools.lru_cache(maxsize=256)
def _content_hash(files: tuple[tuple[str, int, int, int, int], ...]) -> str:
    """combine_hashes of these shard files; cached by (path, inode, size, mtime, ctime) so that one job hashes each
    layer once, and a file moved, replaced or rewritten is hashed again."""
    return combine_hashes([(Path(f[0]).name, sha256_file(f[0])) for f in files])


def check_aligned(left: dict[str, Any], right: dict[str, Any], allow_mixed_attention: bool = False) -> None:
    """Refuse to compare models whose rows differ (tokenizer, probe set, subsample) instead of truncating, or whose
    activations were taken under different attention masks (unless allowed: that difference confounds the comparison).

    Token rows align only under the same tokenizer: two vocabularies can cut a text into the same number of tokens
    (same positions, same row hash) that are different pieces of text. Sentence rows align by text alone.
    """
    keys = [("probe_hash", "probe set"), ("granularity", "granularity"), ("row_hash", "rows")]
    if left.get("granularity") == "token":
        keys.append(("tokenizer_hash", "tokenizers"))
    if not allow_mixed_attention and left.get("attention") != right.get("attention"):
        raise HrsaError(
            f"activations of {left.get('model_id')} ({left.get('attention')} attention) and {right.get('model_id')} "
            f"({right.get('attention')}) were taken under different attention masks; extract both with one "
            "activations.attention, or set hrsa.allow_mixed_attention: true to compare them anyway"
        )
    for key, what in keys:
        if left.get(key) != right.get(key):
            extra = " (different tokenizers?)" if key == "row_hash" else ""
            raise HrsaError(
                f"activations of {left.get('model_id')} and {right.get('model_id')} do not align: {what} differ{extra}"
            )


def _parts(root: str | Path, layer: str) -> list[Path]:
    """The layer's shard files in row order; DataError when there are none."""
    path = layer_dir(root, layer)
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else []
    if not parts:
        raise DataError(f"{root}: no activations for layer {layer!r}")
    return parts


def _scan(root: str | Path, layer: str, columns: list[str], batch_rows: int | None = None) -> Iterator[Any]:
    """Record batches of the layer's shards in row order, every page's checksum verified; a corrupt, truncated or
    unreadable shard is a DataError naming the file."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    fmt = ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(page_checksum_verification=True))
    kwargs = {"batch_size": batch_rows} if batch_rows else {}
    model_id = str(read_meta(root)["model_id"])
    for part in _parts(root, layer):  # one shard at a time, so an error names its file
        try:
            dataset = ds.dataset(str(part), format=fmt)
            check_shard_stamp(part, dataset.schema.metadata, model_id, layer)
            yield from dataset.to_batches(columns=columns, **kwargs)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(
                f"activation shard {part} is corrupt or unreadable ({exc}); delete {root} and re-run its extract job"
            ) from exc


def check_shard_stamp(part: Path, metadata: dict[bytes, bytes] | None, model_id: str, layer: str) -> None:
    """A shard's own stamp (its Parquet metadata, written by LayerWriter) must name the model of its directory's
    `_meta.json` and the layer of its folder; DataError naming the shard otherwise."""
    redo = f"delete {part.parent.parent} and re-run its extract job"
    try:
        stamp = json.loads((metadata or {}).get(b"hrsa", b"null"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        stamp = None
    if not isinstance(stamp, dict):
        raise DataError(f"activation shard {part} carries no hrsa stamp (model, layer) in its Parquet metadata; {redo}")
    for key, expected, where in (("model_id", model_id, "its _meta.json"), ("layer", layer, "its folder")):
        if str(stamp.get(key)) != expected:
            raise DataError(f"activation shard {part} is stamped {key} {stamp.get(key)!r}, but {where} says "
                            f"{expected!r} (moved from another model or layer); {redo}")


def _table(root: str | Path, layer: str, columns: list[str]) -> Any:
    import pyarrow as pa

    batches = list(_scan(root, layer, columns))
    return pa.Table.from_batches(batches) if batches else None


def _vectors(column: Any) -> np.ndarray:
    """FixedSizeList column (chunked or not) -> float32 matrix without a Python loop."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    # flatten() honours a slice's offset (`.values` would return the whole parent buffer of a sliced batch)
    mats = [c.flatten().to_numpy(zero_copy_only=False).reshape(len(c), c.type.list_size) for c in chunks]
    if not mats:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(mats).astype(np.float32, copy=False)


def iter_layer(root: str | Path, layer: str, batch_rows: int = 65536) -> Iterator[np.ndarray]:
    """Row batches (float32) of one layer in file order, for streaming statistics."""
    for batch in _scan(root, layer, ["vector"], batch_rows):
        yield _vectors(batch.column(0))


def load_layer(root: str | Path, layer: str) -> np.ndarray:
    """All rows of one layer as a float32 matrix (n x d)."""
    table = _table(root, layer, ["vector"])
    return _vectors(table.column("vector")) if table is not None else np.zeros((0, 0), np.float32)


def load_rows(root: str | Path, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """text_id and position columns of one layer."""
    table = _table(root, layer, ["text_id", "position"])
    if table is None:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return table.column("text_id").to_numpy(), table.column("position").to_numpy()
