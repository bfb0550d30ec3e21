"""The two backends of the store interface (``pistats.store.base``): a ClickHouse server (native
protocol) and embedded chdb.

Table names in SQL given to ``query``/``execute`` are qualified with ``store.database``.
Failures surface as ``StoreError``, refusals of the data as ``StoreRefused`` (see
``pistats.store.base``, which says what each means to the sink).

Both backends raise on every refused insert. chdb's streaming insert (``send_insert()`` ...
``finish()``) does not: when the engine refuses the block at write time (too many partitions, a
CHECK constraint) it raises nothing and reports the rows as written. chdb inserts therefore go
through ``Session.query`` (``INSERT ... FROM INFILE``), which raises what the engine raised.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence

from pistats.store.base import SendInsert, Store, StoreError, StoreRefused
from pistats.store.config import StoreURL
from pistats.store.features import ServerFeatures, parse_version
from pistats.store.refusal import error_code, is_refusal
from pistats.store.rows.columns import (
    FLAG,
    NULLABLE_FLOAT64,
    NULLABLE_UINT32,
    TEXT_LIST,
    TIMESTAMP,
    UINT32,
    Column,
)
from pistats.store.schema import EVENTS, TABLE_COLUMNS, quote

log = logging.getLogger(__name__)


def _store_error(url: StoreURL, error: BaseException, prefix: str = "") -> StoreError:
    """The StoreError for a backend's exception: StoreRefused when the engine refused the data."""
    detail = _first_line(error)
    code = getattr(error, "code", None)
    if not isinstance(code, int):
        code = error_code(str(error))
    message = f"{url.redacted}: {prefix}{detail}"
    if is_refusal(code, detail):
        return StoreRefused(message, detail, code)
    return StoreError(message)


class _StoreBase:
    url: StoreURL
    database: str
    features: ServerFeatures

    @property
    def server_version(self) -> str:
        return self.features.version_text

    def insert_events(self, rows: Sequence[tuple], dedup_token: str | None) -> None:
        """Insert rows in ``EVENT_COLUMNS`` order; returns only once the server has stored them."""
        self.prepare_insert(EVENTS, rows)(dedup_token)

    def prepare_insert(self, table: str, rows: Sequence[tuple]) -> SendInsert:
        """Encode rows (in the table's column order) for one insert; raises StoreError when they
        cannot be encoded. The returned function sends them and returns once they are stored;
        it raises StoreRefused when the engine refuses them for their data, StoreError otherwise."""
        raise NotImplementedError  # pragma: no cover - overridden

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url.redacted!r})"


class ClickHouseStore(_StoreBase):
    """clickhouse-driver over the native protocol: columnar inserts, LZ4 compression."""

    def __init__(self, url: StoreURL, features: ServerFeatures | None = None):
        from clickhouse_driver import Client

        self.url = url
        self.database = url.database
        self._client_options = dict(
            host=url.host,
            port=url.port,
            user=url.user,
            password=url.password,
            secure=url.scheme == "clickhouses",
            compression="lz4",
            connect_timeout=url.connect_timeout,
            send_receive_timeout=url.send_receive_timeout,
            sync_request_timeout=url.send_receive_timeout,
        )
        self._client = Client(database=self.database, **self._client_options)
        self.features = features or ServerFeatures.for_version(self._detect_version())

    def _detect_version(self) -> tuple[int, int, int]:
        # Asked of the "system" database, which exists before ours does.
        from clickhouse_driver import Client

        client = Client(database="system", **self._client_options)
        try:
            rows = self._run(client.execute, "SELECT version()")
        finally:
            client.disconnect()
        return parse_version(str(rows[0][0]))

    def _run(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except Exception as error:  # the driver raises many kinds: network, socket, server errors
            raise StoreError(f"{self.url.redacted}: {type(error).__name__}: {_first_line(error)}") from None

    def ensure_database(self) -> None:
        from clickhouse_driver import Client

        client = Client(database="system", **self._client_options)
        try:
            self._run(client.execute, f"CREATE DATABASE IF NOT EXISTS {self.database}")
        finally:
            client.disconnect()

    def execute(self, sql: str) -> None:
        self._run(self._client.execute, sql)

    def query(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self._run(self._client.execute, sql)]

    def prepare_insert(self, table: str, rows: Sequence[tuple]) -> SendInsert:
        if not rows:
            return _nothing_to_send
        columns = TABLE_COLUMNS[table]
        data = list(zip(*rows))
        if not self.features.datetime64:
            # Rows carry epoch milliseconds; DateTime takes seconds.
            for index, column in enumerate(columns):
                if column.kind == TIMESTAMP:
                    data[index] = [milliseconds // 1000 for milliseconds in data[index]]
        sql = f"INSERT INTO {self.database}.{table} ({', '.join(column.name for column in columns)}) VALUES"

        def send(dedup_token: str | None) -> None:
            # The driver slices each column into its own lists before writing, so a retry sends
            # these columns unchanged. The server answers an insert it refused with an exception
            # (its error code tells a refusal from other failures).
            try:
                self._client.execute(sql, data, columnar=True, settings=self.features.insert_settings(dedup_token))
            except Exception as error:
                raise _store_error(self.url, error, f"{type(error).__name__}: ") from None

        return send

    def close(self) -> None:
        self._client.disconnect()


class ChdbStore(_StoreBase):
    """Embedded chdb (ClickHouse in this process) at a data directory.

    chdb locks its data directory: only one process may open a path at a time, so the sink task
    that owns it must be the only writer (run the sink with parallelism 1) and the report must
    run after the topology stopped.
    """

    def __init__(self, url: StoreURL):
        import chdb.session

        self.url = url
        self.database = url.database
        path = url.path
        if not os.path.isabs(path):
            path = os.path.abspath(path)
        os.makedirs(path, exist_ok=True)
        # Encoded batches wait here for the engine to read them (``INSERT ... FROM INFILE``):
        # next to the data they are about to join, with the same permissions.
        self._insert_dir = os.path.join(path, "pistats_inserts")
        try:
            self._session = chdb.session.Session(path)
        except Exception as error:
            raise StoreError(
                f"{url.redacted}: cannot open ({_first_line(error)}); chdb allows one process per data "
                "path: is another process (a running topology?) using it?"
            ) from None
        # The path is this process's now (chdb's lock): a batch file of another process was left
        # by one that died mid-insert and belongs to no insert any more.
        if os.path.isdir(self._insert_dir):
            for name in os.listdir(self._insert_dir):
                if not name.startswith(f"{os.getpid()}-"):
                    os.unlink(os.path.join(self._insert_dir, name))
        self.features = ServerFeatures.for_version(parse_version(self._query_arrow("SELECT version()").column(0)[0].as_py()))

    def _query_arrow(self, sql: str):
        try:
            return self._session.query(sql, "ArrowTable")
        except Exception as error:
            raise StoreError(f"{self.url.redacted}: {_first_line(error)}") from None

    def ensure_database(self) -> None:
        self.execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")

    def execute(self, sql: str) -> None:
        try:
            self._session.query(sql, "CSV")
        except Exception as error:
            raise StoreError(f"{self.url.redacted}: {_first_line(error)}") from None

    def query(self, sql: str) -> list[tuple]:
        table = self._query_arrow(sql)
        if table.num_columns == 0:
            return []
        return list(zip(*(column.to_pylist() for column in table.columns)))

    def prepare_insert(self, table: str, rows: Sequence[tuple]) -> SendInsert:
        import pyarrow as pa

        if not rows:
            return _nothing_to_send
        columns = TABLE_COLUMNS[table]
        schema = _arrow_schema(columns)
        try:
            arrays = [
                pa.array(values, type=pa.int64()).cast(field.type) if column.kind == TIMESTAMP else pa.array(values, type=field.type)
                for values, field, column in zip(zip(*rows), schema, columns)
            ]
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, schema) as writer:
                writer.write_batch(pa.record_batch(arrays, schema=schema))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
            raise StoreError(f"{self.url.redacted}: cannot encode batch for {table}: {_first_line(error)}") from None
        encoded = sink.getvalue()
        target = f"{self.database}.{table} ({', '.join(column.name for column in columns)})"

        def send(dedup_token: str | None) -> None:
            settings = ", ".join(f"{name} = {quote(str(value)) if isinstance(value, str) else value}"
                                 for name, value in self.features.insert_settings(dedup_token).items())
            # Not send_insert(): it swallows the engine's refusals (see the module docstring).
            # The batch goes through a file the engine reads in this process; a retry writes
            # it again, and the file is gone once the insert returned or raised.
            path = self._write_insert_file(encoded)
            try:
                self._session.query(f"INSERT INTO {target} FROM INFILE {quote(path)}"
                                    f"{f' SETTINGS {settings}' if settings else ''} FORMAT ArrowStream", "CSV")
            except Exception as error:
                raise _store_error(self.url, error) from None
            finally:
                os.unlink(path)

        return send

    def _write_insert_file(self, encoded) -> str:
        """A new file holding the encoded batch; the caller removes it."""
        path = None
        try:
            os.makedirs(self._insert_dir, exist_ok=True)
            handle, path = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=".arrow", dir=self._insert_dir)
            with os.fdopen(handle, "wb") as file:
                file.write(encoded)
            return path
        except OSError as error:
            if path is not None:
                os.unlink(path)
            raise StoreError(f"{self.url.redacted}: cannot write a batch for the engine: {_first_line(error)}") from None

    def close(self) -> None:
        self._session.close()


@functools.cache
def _arrow_schema(columns: tuple[Column, ...]):
    import pyarrow as pa

    return pa.schema([(column.name, _arrow_type(column.kind)) for column in columns])


@functools.cache
def _arrow_type(kind: str):
    """The Arrow type a column kind travels as (pyarrow is imported only when chdb is used)."""
    import pyarrow as pa

    return {
        TIMESTAMP: pa.timestamp("ms", tz="UTC"),
        FLAG: pa.uint8(),
        UINT32: pa.uint32(),
        NULLABLE_UINT32: pa.uint32(),
        NULLABLE_FLOAT64: pa.float64(),
        TEXT_LIST: pa.list_(pa.string()),
    }.get(kind, pa.string())


def _nothing_to_send(dedup_token: str | None) -> None:
    """The insert of no rows."""


def _first_line(error: BaseException) -> str:
    """The error's message on one line, without the server's stack trace."""
    text = " ".join(str(error).split()).split(" Stack trace:")[0]
    return text[:400] or type(error).__name__


def open_store(url: str | StoreURL, env: Mapping[str, str] | None = None) -> Store:
    """Open the backend a URL names; raises StoreError when it is unreachable."""
    parsed = url if isinstance(url, StoreURL) else StoreURL.parse(url, os.environ if env is None else env)
    if parsed.scheme == "chdb":
        return ChdbStore(parsed)
    return ClickHouseStore(parsed)
