"""The database: declarative base, shared column types, engines and transactions.

SQLite (a file in the data folder) is the embedded default; PostgreSQL is selected by
``VAULT_DATABASE_URL``. Durability is a promise: a write is acknowledged only after a
commit that survives a power cut. SQLite therefore runs in WAL mode with
``synchronous=FULL``, and its WAL is checkpointed by a background thread rather than by
whichever request happens to cross the threshold (that request's p99 would triple).
PostgreSQL sessions run with ``synchronous_commit=on``, and the server's ``fsync`` is checked.

On PostgreSQL the hottest reads (a bearer token, a resource by id) are awaited on the
event loop through psycopg's async connections (:meth:`Database.fetch_one_async`), so the
server serves other requests during the round trip instead of waiting for it.

Over 500 lines: how the vault talks to each database (engines, connection settings,
transactions, SQLite's readers and checkpoints, PostgreSQL's async reads) is one contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import psycopg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Integer,
    LargeBinary,
    String,
    Table,
    and_,
    create_engine,
    false,
    make_url,
    or_,
)
from sqlalchemy import event as sa_event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, mapped_column

from vault.kernel.threads import WorkerThreads

__all__ = [
    "Base",
    "Blob",
    "Database",
    "FhirId",
    "Micros",
    "PatientId",
    "Pk",
    "fetch_one",
    "pairs_in",
    "table_of",
]

log = logging.getLogger(__name__)

# SQLite only makes an INTEGER PRIMARY KEY an auto-incrementing rowid alias.
BigIntPk = BigInteger().with_variant(Integer(), "sqlite")

Pk = Annotated[int, mapped_column(BigIntPk, primary_key=True, autoincrement=True)]
FhirId = Annotated[str, mapped_column(String(64))]
PatientId = Annotated[str | None, mapped_column(String(64), nullable=True)]
# Instants are stored as integer microseconds since the epoch, UTC: exact, sortable,
# and identical on SQLite and PostgreSQL.
Micros = Annotated[int, mapped_column(BigInteger)]
Blob = Annotated[bytes, mapped_column(LargeBinary)]


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A mapped class's Table, typed as one (``__table__`` is typed as any FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def pairs_in(
    kinds: ColumnElement[str] | QueryableAttribute[str],
    ids: ColumnElement[str] | QueryableAttribute[str],
    pairs: Iterable[tuple[str, Any]],
) -> ColumnElement[bool]:
    """``(kinds, ids)`` is one of ``pairs``, written as ``kinds = k AND ids IN (…)`` for each
    kind: SQLite scans the whole table for a row value ``IN`` a list of more than one pair
    (``(resource_type, resource_id) IN ((…), (…))``), where this form searches its index."""
    by_kind: dict[str, set[Any]] = {}
    for kind, ident in pairs:
        by_kind.setdefault(kind, set()).add(ident)
    return or_(false(), *(and_(kinds == k, ids.in_(sorted(v))) for k, v in sorted(by_kind.items())))


def fetch_one(conn: Connection, sql: str, params: Any) -> Any:
    """One row through the driver's own cursor, for the hottest reads: SQLAlchemy's result
    machinery would cost more than the query and the decrypt together (docs/performance.md).
    ``sql`` is in the driver's parameter style (:attr:`Database.paramstyle`).
    """
    return _fetch_dbapi(conn.connection, sql, params)


def _fetch_dbapi(dbapi_conn: Any, sql: str, params: Any, *, many: bool = False) -> Any:
    """The first row (None when there is none), or (``many``) every row as a list."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if many else cursor.fetchone()
    finally:
        cursor.close()


T = TypeVar("T")

# Reader threads for SQLite's hot reads. More than one lets a read go on while another
# waits for the disk; the GIL keeps them from running Python at once anyway.
SQLITE_READER_THREADS = int(os.environ.get("VAULT_SQLITE_READER_THREADS", "2"))
_BATCH = 16  # at most this many answers per wake-up of the event loop
# Threads that may run a search's statements at once (``Database.search_threads``). AnyIO's
# default pool lets 40 run: on SQLite 16 concurrent searches then cost about half as much
# CPU again, spent handing the GIL and SQLite's shared WAL index between threads, not on
# the searches (docs/performance.md, "Searches in few threads"). PostgreSQL's statements
# wait on the server, so more of them overlap usefully.
SEARCH_THREADS_SQLITE = 4
SEARCH_THREADS_POSTGRES = 16


class _SqliteReaders:
    """Threads that run SQLite's one-statement reads for the event loop.

    ``loop.run_in_executor`` wraps every call in two futures and a chain of callbacks and
    wakes the loop once per answer: on the one core a server is pinned to, that hop cost a
    read about 20 µs, as much as the statement. Here a job is a tuple on a ``SimpleQueue``;
    a thread that finds more jobs waiting runs them too (up to ``_BATCH``) and hands all
    their answers to the loop with one ``call_soon_threadsafe``. Each thread keeps one
    connection, opened on the thread and closed when the readers close.
    """

    def __init__(self, connect: Callable[[], Any], *, threads: int) -> None:
        self._connect = connect
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"sqlite-read-{n}", daemon=True)
            for n in range(max(1, threads))
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self, loop: asyncio.AbstractEventLoop, sql: str, params: Any, *, many: bool = False
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((loop, future, sql, params, many))
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self) -> None:
        connection = self._connect()
        try:
            running = True
            while running:
                job = self._jobs.get()
                answers: dict[asyncio.AbstractEventLoop, list[tuple[Any, ...]]] = {}
                while job is not None:
                    loop, future, sql, params, many = job
                    answer: tuple[Any, Any, Exception | None]
                    try:
                        row = _fetch_dbapi(connection, sql, params, many=many)
                        answer = (future, row, None)
                    except Exception as exc:  # handed to the awaiting request
                        answer = (future, None, exc)
                    answers.setdefault(loop, []).append(answer)
                    if len(answers[loop]) >= _BATCH:
                        break
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                running = job is not None
                for loop, settled in answers.items():
                    with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                        loop.call_soon_threadsafe(_settle, settled)
        finally:
            connection.close()


def _settle(answers: list[tuple[Any, ...]]) -> None:
    for future, result, error in answers:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class Database:
    """Engines for one vault database, with the pragmas and checks that make writes durable.

    On SQLite there are two engines on the same file: writes begin ``IMMEDIATE`` so that
    concurrent writers queue on the lock instead of failing half-way, reads begin deferred
    so they never wait for a writer. A read of one statement needs no transaction at all:
    ``read(snapshot=False)`` skips ``BEGIN``/``ROLLBACK`` (on SQLite) and runs in autocommit
    (on PostgreSQL), which saves a round of statements on the hottest path.
    """

    def __init__(
        self, url: str, *, checkpoint_interval: float = 1.0, wal_restart_frames: int = 65_536
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=None)
            self._statement_engine = self.read_engine
        else:
            # Enough connections for every thread that may hold one (AnyIO's pool has 40):
            # a connection opened for one request and closed after it costs PostgreSQL
            # about 4 ms of CPU, a hundred times the read itself (docs/performance.md).
            self.write_engine = create_engine(
                url,
                pool_size=20,
                max_overflow=20,
                pool_recycle=1800,
                connect_args={"cursor_factory": _NativeCursor},
            )
            sa_event.listen(self.write_engine, "connect", _postgres_on_connect)
            _ping_when_idle(self.write_engine)
            self.read_engine = self.write_engine
            # Its own engine, autocommit from connect on: switching a pooled connection in
            # and out of autocommit per checkout cost a read about 30 us of CPU. Few keep
            # open: the hot reads are awaited (``fetch_one_async``); this serves the rest.
            self._statement_engine = create_engine(
                url,
                pool_size=5,
                max_overflow=35,
                pool_recycle=1800,
                isolation_level="AUTOCOMMIT",
                connect_args={"cursor_factory": _NativeCursor},
            )
            sa_event.listen(self._statement_engine, "connect", _postgres_on_connect)
            _ping_when_idle(self._statement_engine)
        self._async_pools: dict[asyncio.AbstractEventLoop, _AsyncStatements] = {}
        default = SEARCH_THREADS_SQLITE if self.is_sqlite else SEARCH_THREADS_POSTGRES
        self.search_threads = int(os.environ.get("VAULT_SEARCH_THREADS", "0")) or default
        # One limiter per event loop: a limiter's waiters belong to the loop they wait on.
        self._search_workers = WorkerThreads(self.search_threads, name="search")
        # SQLite's driver blocks: the hot single-statement reads run on reader threads of
        # their own, off the event loop (``_SqliteReaders``). Made on first use, and again
        # after ``dispose``.
        self._sqlite_readers: _SqliteReaders | None = None
        self._readers_lock = threading.Lock()
        self._checkpoint_interval = checkpoint_interval
        self._wal_restart_frames = wal_restart_frames  # 256 MiB of 4 KiB pages
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._checkpointer_lock = threading.Lock()

    async def run_search(self, search: Callable[[], T]) -> T:
        """``search()`` (its statements block) in one of ``search_threads`` threads of its
        own, off the event loop (``kernel/threads.py``)."""
        return await self._search_workers.run(search)

    @property
    def dialect(self) -> Dialect:
        return self.write_engine.dialect

    @property
    def paramstyle(self) -> str:
        return "qmark" if self.is_sqlite else "format"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        self.start_background_tasks()
        with self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self, *, snapshot: bool = True) -> Iterator[Connection]:
        """A read-only connection.

        ``snapshot=True`` (the default) holds one transaction for the block, so several
        statements see the same data; ``snapshot=False`` is for a block of one statement.
        """
        if not snapshot:
            with self._statement_engine.connect() as conn:
                yield conn
            return
        if self.is_sqlite:
            with self.read_engine.connect() as conn:
                _begin(conn, "BEGIN")
                yield conn
            return
        # PostgreSQL: one snapshot for the block (REPEATABLE READ; READ COMMITTED would give
        # each statement its own, so a search's total and its page could disagree), READ
        # ONLY, and ended by COMMIT: psycopg forgets every statement it prepared on a
        # connection at each ROLLBACK (``DEALLOCATE ALL``), and the pool rolls back whatever
        # comes back to it, so every search planned its statements anew: 0.9 ms of the
        # 1.05 ms each cost the server (docs/performance.md).
        with self.read_engine.connect() as conn:
            conn = conn.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            yield conn
            conn.commit()

    async def fetch_one_async(self, sql: str, params: Any) -> Any:
        """:func:`fetch_one` of one statement, awaited: the event loop is free meanwhile.
        On PostgreSQL the round trip is awaited; SQLite's driver blocks, so it runs in a
        worker thread."""
        return await self._fetch_async(sql, params, many=False)

    async def fetch_all_async(self, sql: str, params: Any) -> list[Any]:
        """Every row of one statement, awaited as :meth:`fetch_one_async` awaits its one."""
        rows: list[Any] = await self._fetch_async(sql, params, many=True)
        return rows

    async def _fetch_async(self, sql: str, params: Any, *, many: bool) -> Any:
        if self.is_sqlite:
            readers = self._sqlite_readers
            if readers is None:
                with self._readers_lock:
                    readers = self._sqlite_readers
                    if readers is None:
                        readers = self._sqlite_readers = _SqliteReaders(
                            self._reader_connection, threads=SQLITE_READER_THREADS
                        )
            return await readers.submit(asyncio.get_running_loop(), sql, params, many=many)
        loop = asyncio.get_running_loop()  # async connections belong to one event loop
        statements = self._async_pools.get(loop)
        if statements is None:
            conninfo = make_url(self.url).set(drivername="postgresql")
            statements = _AsyncStatements(conninfo.render_as_string(hide_password=False))
            self._async_pools[loop] = statements
        return await statements.fetch(sql, params, many=many)

    def _reader_connection(self) -> Any:
        # A reader thread keeps one driver connection of its own, taken out of the pool
        # (``detach``): a checkout from SQLAlchemy's pool and back cost more than the read.
        pooled = self._statement_engine.raw_connection()
        pooled.detach()
        return pooled.dbapi_connection

    async def close_async(self) -> None:
        """Close this event loop's async connections (the app's lifespan calls this)."""
        statements = self._async_pools.pop(asyncio.get_running_loop(), None)
        if statements is not None:
            await statements.close()

    def start_background_tasks(self) -> None:
        """Run the WAL checkpointer in this process. Every SQLite write calls this: the
        connections turn SQLite's own checkpoints off, and without the thread the WAL of a
        CLI command or of the tests' in-process app grew with every commit (14.8 GB)."""
        thread = self._checkpointer
        if not self.is_sqlite or (thread is not None and thread.is_alive()):
            return
        with self._checkpointer_lock:
            if self._checkpointer is not None and self._checkpointer.is_alive():
                return
            self._stop.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        while not self._stop.wait(self._checkpoint_interval):
            try:
                with self.read_engine.connect() as conn:
                    self._checkpoint(conn)
            except Exception:  # a failed checkpoint is retried next round; data is safe in WAL
                log.warning("background WAL checkpoint failed", exc_info=False)

    def _checkpoint(self, conn: Connection) -> None:
        """Copy the WAL into the database file, and start the WAL over once it is long.

        A PASSIVE checkpoint never waits, but it never starts the WAL over either: SQLite
        does that only when a write begins after everything was copied, and a vault under
        steady load commits while the checkpoint runs. So the WAL grew by every commit,
        3.4 GB in 80 seconds of partner reads (docs/performance.md), and every commit paid
        for a longer file. Past ``wal_restart_frames`` a RESTART checkpoint follows: it
        holds new writes back while it copies what is left, then the next write starts at
        the WAL's beginning. It is tried until it finds no writer and no reader of the
        older frames (``_RESTART_TRIES``), and again next round.

        Each RESTART still holds the writes back for a moment, so the bound is high: at
        16 MiB, with SQLite's busy handler, the stalls of one a second (20 to 70 ms each)
        quadrupled a partner read's p99. The WAL file keeps the length it reached (about
        the bound plus a second of writes); cutting it back (``journal_size_limit``) made
        the first commit after each restart pay for that."""
        _, frames, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        if frames <= self._wal_restart_frames:
            return
        # What was committed while that ran is copied the same way, until little is left
        # (or a few rounds have passed): the RESTART holds writes back while it copies the
        # rest. A round's figures are of the WAL as it found it, so the first round's say
        # nothing of what came during its long copy: at least one more round always runs.
        for _ in range(_CATCH_UP_ROUNDS):
            _, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
            if frames - copied <= _RESTART_LEFT_FRAMES:
                break
        # Without SQLite's busy handler: it sleeps 1, 2, 5, 10, 15 ms ... between tries, and
        # counts on through the waits of one checkpoint, so a RESTART that met a writer and
        # then two readers held the writes back for 50 ms. A try that finds the write lock
        # or a reader busy gives up at once, holding nothing while the next one waits.
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        try:
            for _ in range(_RESTART_TRIES):
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").one()
                if not busy:
                    return
                time.sleep(_RESTART_PAUSE)
        finally:
            conn.exec_driver_sql(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")

    def dispose(self) -> None:
        self._stop.set()
        self._search_workers.close()
        with self._readers_lock:
            readers, self._sqlite_readers = self._sqlite_readers, None
        if readers is not None:
            readers.close()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
            self._checkpointer = None
        for engine in {self.write_engine, self.read_engine, self._statement_engine}:
            engine.dispose()
        for statements in self._async_pools.values():
            statements.abandon()
        self._async_pools.clear()


_BUSY_TIMEOUT_MS = 30_000
# ``Database._checkpoint``: PASSIVE rounds until at most this much is left to copy ...
_CATCH_UP_ROUNDS = 8
_RESTART_LEFT_FRAMES = 256
# ... then RESTART checkpoints tried, this far apart.
_RESTART_TRIES = 50
_RESTART_PAUSE = 0.002


def _sqlite_engine(url: str, *, immediate: bool | None) -> Engine:
    """``immediate=True``: every transaction begins IMMEDIATE; ``None``: no implicit BEGIN."""
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=24,
    )

    @sa_event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        # Checkpoints run in the background thread, never inside a request.
        cur.execute("PRAGMA wal_autocheckpoint=0")
        if immediate:
            # A write's statement journals in memory, not in a file of their own: SQLite
            # journals the pages a statement changes while it runs (for the access log, the
            # resources of a group commit, in one INSERT), and past 64 KiB it opened, wrote
            # and unlinked a temporary file for that, in every such transaction. Measured:
            # 48 system calls fewer per group commit of 16 records (docs/performance.md).
            # Reads journal nothing; their connections keep SQLite's default.
            cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    if immediate is not None:

        @sa_event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            _begin(conn, "BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _begin(conn: Connection, statement: str) -> None:
    """``statement`` on the driver's cursor: through ``exec_driver_sql`` a BEGIN cost a read
    block about 8 µs of SQLAlchemy's execution machinery, more than the whole block costs on
    a bare ``sqlite3`` connection (docs/performance.md). The pool's rollback on return still
    ends whatever it began."""
    cursor = conn.connection.cursor()
    try:
        cursor.execute(statement)
    finally:
        cursor.close()


_PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only if it sat idle for a while.

    ``pool_pre_ping`` would send ``SELECT 1`` before every request's statement, one more
    round trip than the read itself. A connection that was in use a moment ago is alive;
    one that idled may have been closed by a server restart or a firewall, and a failed
    ping makes the pool replace it before the request sees an error.
    """

    @sa_event.listens_for(engine, "checkin")
    def _checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa_event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < _PING_AFTER_IDLE_SECONDS:
            return
        try:
            _ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("stale pooled connection") from exc


def _ping(dbapi_conn: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("SELECT 1")
    cur.close()
    dbapi_conn.rollback()


class _AsyncStatements:
    """Autocommit async connections of one event loop, for single-statement reads.

    Hand-written rather than psycopg_pool's: that pool runs background tasks on the loop,
    and a loop that ends without closing it (an app served without its lifespan, as in
    ``httpx.ASGITransport``) then never finishes. Here nothing runs between requests: an
    idle connection is just kept, at most ``size`` at a time and in use at once.
    """

    def __init__(self, conninfo: str, *, size: int = 20) -> None:
        self._conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)  # PostgreSQL limits connections: queue here

    async def fetch(self, sql: str, params: Any, *, many: bool) -> Any:
        """The first row, or (``many``) every row as a list."""
        async with self._slots:
            if self._idle:
                try:
                    return await self._run(self._idle.pop(), sql, params, many)
                except psycopg.OperationalError:
                    # The server closed it while it was idle (a restart, a timeout): a read
                    # may be repeated, on a new connection.
                    pass
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, options=_NO_JIT
            )
            return await self._run(conn, sql, params, many)

    async def _run(
        self, conn: psycopg.AsyncConnection[Any], sql: str, params: Any, many: bool
    ) -> Any:
        native, order = _native_placeholders(sql)
        values = _in_order(params, order)
        try:
            async with psycopg.AsyncRawCursor(conn) as cursor:
                await cursor.execute(native, values)
                row = await (cursor.fetchall() if many else cursor.fetchone())
        except BaseException:
            conn.pgconn.finish()  # its state is unknown (an error, a cancelled request)
            raise
        self._idle.append(conn)
        return row

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()

    def abandon(self) -> None:
        """Close the sockets of a loop that is gone (no awaiting possible there)."""
        while self._idle:
            conn = self._idle.pop()  # held: the bare expression would free it before finish()
            conn.pgconn.finish()


_PLACEHOLDER = re.compile(r"%%|%\(([^)]+)\)s|%s")


@functools.lru_cache(maxsize=256)
def _native_placeholders(sql: str) -> tuple[bytes, tuple[str, ...] | None]:
    """``sql`` in psycopg's style (``%s`` or ``%(name)s``, ``%%`` for a percent sign) with
    PostgreSQL's own ``$1``, ``$2``…, and the names in the order of their numbers (None for
    ``%s``).

    psycopg parses a statement's placeholders again at every execution once it is longer
    than 4,096 bytes or has more than 50 parameters, and the read statement with the access
    decision has both: on PostgreSQL that parse was a third of a partner read's time on the
    event loop (docs/performance.md). Parsed here once per statement, the statement runs on
    a raw cursor (``AsyncRawCursor``), which sends it as it is.
    """
    names: list[str] = []
    positional = 0

    def number(found: re.Match[str]) -> str:
        nonlocal positional
        if found[0] == "%%":
            return "%"
        name = found[1]
        if name is None:
            positional += 1
            return f"${positional}"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    native = _PLACEHOLDER.sub(number, sql)
    if names and positional:
        raise ValueError("a statement with both named and positional placeholders")
    return native.encode(), (tuple(names) if names else None)


def _in_order(params: Any, order: tuple[str, ...] | None) -> list[Any]:
    """The values of ``params`` in the order of :func:`_native_placeholders`' numbers."""
    return list(params) if order is None else [params[name] for name in order]


class _NativeCursor(psycopg.RawCursor[Any]):
    """The cursor of the vault's pooled PostgreSQL connections: SQLAlchemy's statements
    (``%(name)s``) and the driver's own (``%s``, ``kernel/driver.py``) go out with ``$n``
    placeholders numbered once per statement (:func:`_native_placeholders`), where psycopg
    would parse the long ones (a search's page with the access decision, an export page)
    again at every execution."""

    def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
        if params is not None and isinstance(query, str):
            query, order = _native_placeholders(query)
            params = _in_order(params, order)
        return super().execute(query, params, **options)

    def executemany(self, query: Any, params_seq: Any, **options: Any) -> None:
        if isinstance(query, str):
            query, order = _native_placeholders(query)
            params_seq = [_in_order(params, order) for params in params_seq]
        super().executemany(query, params_seq, **options)


# PostgreSQL compiles a statement whose estimated cost passes ``jit_above_cost`` to machine
# code first: a page of ``$export`` (the access decision's subplans price it past that)
# spent 56 of its 60 ms compiling, again for every page. The vault's statements are short.
_NO_JIT = "-c jit=off"


def _postgres_on_connect(dbapi_conn: Any, _record: Any) -> None:
    with dbapi_conn.cursor() as cur:
        cur.execute("SET synchronous_commit TO on")
        cur.execute("SET jit TO off")
        cur.execute("SHOW fsync")
        row = cur.fetchone()
        if row is not None and row[0] != "on":
            log.warning("PostgreSQL runs with fsync=off: acknowledged writes can be lost")
    dbapi_conn.commit()
