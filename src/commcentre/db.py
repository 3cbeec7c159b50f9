"""Database: declarative base, engines and sessions for SQLite and PostgreSQL.

SQLite has one writer per process: writes go through a one-connection engine
whose transactions start with BEGIN IMMEDIATE (so a read-then-write never
fails on an upgraded lock), reads through a small pool of DEFERRED
connections. On PostgreSQL one pooled engine serves both.

Hot write paths (the ingest writer) use `Database.write_transaction()`, which
yields a `WriteSession`: on PostgreSQL an AsyncSession, on SQLite a thin
adapter over a synchronous stdlib-sqlite3 session, so that a statement costs
tens of microseconds instead of several thread hops through aiosqlite.
"""

import asyncio
import contextvars
import functools
import os
import stat
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol, TypeVar, TypeVarTuple, cast, overload

from fastapi import Depends, Request
from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    Executable,
    MetaData,
    create_engine,
    event,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect, Result, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.selectable import TypedReturnsRows
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)


def _configure_sqlite(engine: Engine, *, begin: str) -> None:
    """Our PRAGMAs on every new connection, and `begin` as each transaction's BEGIN."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver: we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


# SQLite gives a database's -wal, -shm and -journal the database file's own mode.
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def private_sqlite_file(url: str) -> None:
    """Make the SQLite file of `url` 0600 (and its folder 0700, when made here) before
    any connection opens it, so that its companion files are 0600 too, whatever the
    umask. Files already there from an older version are tightened. Others: no-op."""
    parsed = make_url(url)
    database = parsed.database
    if (
        not parsed.drivername.startswith("sqlite")
        or not database
        or database == ":memory:"
        or database.startswith("file:")
    ):
        return
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for suffix in _SQLITE_COMPANIONS:
        companion = path.with_name(path.name + suffix)
        try:
            info = companion.stat()
        except FileNotFoundError:
            continue
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
            companion.chmod(stat.S_IMODE(info.st_mode) & 0o600)


def _sqlite_engine(url: str, *, pool_size: int, begin: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_timeout=30)
    _configure_sqlite(engine.sync_engine, begin=begin)
    return engine


def _sqlite_sync_write_engine(url: str, *, wait: float) -> Engine:
    """The same file through the stdlib driver: one connection, BEGIN IMMEDIATE."""
    sync_url = make_url(url).set(drivername="sqlite+pysqlite")
    engine = create_engine(sync_url, pool_size=1, max_overflow=0, pool_timeout=wait)
    _configure_sqlite(engine, begin="BEGIN IMMEDIATE")
    # An executemany INSERT goes out as multi-row INSERT ... VALUES pages (SQLAlchemy's
    # "insertmanyvalues", values still converted by the column types): one sqlite3 step
    # per page instead of one per row. Each step releases the GIL, and a writer thread
    # that gives the GIL up to a busy request loop waits to get it back.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")

# What a statement takes as parameters: one set, or a list of them (an executemany).
ExecuteParams = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class WriteSession(Protocol):
    """What the hot write paths use of a session, inside a transaction they do not end.

    AsyncSession satisfies it (on PostgreSQL `Database.write_transaction` yields
    one); on SQLite the session is synchronous underneath, and `await` on its
    methods returns without ever suspending. ORM results arrive fully read either
    way; read Core results (e.g. of a RETURNING) before the transaction ends.
    """

    @overload
    async def execute(
        self, statement: TypedReturnsRows[*_Ts], params: ExecuteParams | None = None
    ) -> Result[*_Ts]: ...

    @overload
    async def execute(
        self, statement: Executable, params: ExecuteParams | None = None
    ) -> Result[*tuple[Any, ...]]: ...

    @overload
    async def scalar(
        self, statement: TypedReturnsRows[_T], params: Mapping[str, Any] | None = None
    ) -> _T | None: ...

    @overload
    async def scalar(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Any: ...

    async def flush(self, objects: Sequence[Any] | None = None) -> None: ...

    def add(self, instance: object) -> None: ...

    @property
    def info(self) -> dict[Any, Any]:
        """What the Database gave every session (`session_info`), e.g. the audit keys."""
        ...

    def get_bind(self) -> Engine | Connection:
        """The (synchronous) engine or connection: `get_bind().dialect.name` names the backend."""
        ...


# As AsyncSession.execute does: ORM results are read in full before execute returns.
_BUFFERED = {"prebuffer_rows": True}

# What a statement or a transaction fails with when the store did not do the work: the
# driver's errors, no pooled connection free in time, or the network.
STORE_ERRORS: tuple[type[Exception], ...] = (DBAPIError, PoolTimeout, OSError)
# Of those, the ones that say the store is out of reach (busy past the timeout, locked,
# down) rather than refusing what was sent: trying again at once would only wait again.
UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (OperationalError, PoolTimeout, OSError)


class SyncWriteSession:
    """A WriteSession over a synchronous Session: no thread, no event loop round trip.

    Every method runs the statement right away on the calling thread, blocking
    it for the statement's duration: a few microseconds in the driver, about
    0.1-0.3 ms with SQLAlchemy's own work on a 2-core machine, more for a large
    executemany, and the fsync at commit. Only ever use it on a thread of its
    own, such as the ingest writer's: on a request-handling loop it would stall
    every request for that long.
    """

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def sync_session(self) -> Session:
        """The synchronous session underneath (for `commcentre.bulk.insert_rows`)."""
        return self._session

    @overload
    async def execute(
        self, statement: TypedReturnsRows[*_Ts], params: ExecuteParams | None = None
    ) -> Result[*_Ts]: ...

    @overload
    async def execute(
        self, statement: Executable, params: ExecuteParams | None = None
    ) -> Result[*tuple[Any, ...]]: ...

    async def execute(
        self, statement: Executable, params: ExecuteParams | None = None
    ) -> Result[*tuple[Any, ...]]:
        return self._session.execute(statement, params, execution_options=_BUFFERED)

    @overload
    async def scalar(
        self, statement: TypedReturnsRows[_T], params: Mapping[str, Any] | None = None
    ) -> _T | None: ...

    @overload
    async def scalar(
        self, statement: Executable, params: Mapping[str, Any] | None = None
    ) -> Any: ...

    async def scalar(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Any:
        return self._session.scalar(statement, params, execution_options=_BUFFERED)

    async def flush(self, objects: Sequence[Any] | None = None) -> None:
        self._session.flush(objects)

    def add(self, instance: object) -> None:
        self._session.add(instance)

    @property
    def info(self) -> dict[Any, Any]:
        return self._session.info

    def get_bind(self) -> Engine | Connection:
        return self._session.get_bind()


def _run_unsuspended(awaitable: Awaitable[_T]) -> _T:
    """The result of a coroutine that never suspends (it awaits only SyncWriteSession)."""
    coroutine = cast(Coroutine[Any, Any, _T], awaitable)
    try:
        coroutine.send(None)
    except StopIteration as done:
        return cast(_T, done.value)
    coroutine.close()
    raise RuntimeError("a write transaction on SQLite's synchronous session tried to suspend")


class Database:
    """The engines and session factories of one process."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        echo: bool = False,
        write_wait: float = 30.0,
        session_info: Mapping[str, Any] | None = None,
    ) -> None:
        """`write_wait`: on SQLite, how long a writer waits for the one synchronous write
        connection (`write_transaction`, `run_write`) before sqlalchemy's TimeoutError.
        `session_info`: put into every session's `info` (the audit log's keys travel so,
        from the lifespan to every writer, without a parameter on every service)."""
        self.url = url
        self.session_info: dict[str, Any] = dict(session_info or {})
        self._write_wait = write_wait
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            private_sqlite_file(url)
            self.write_engine = _sqlite_engine(url, pool_size=1, begin="BEGIN IMMEDIATE")
            self.read_engine = _sqlite_engine(url, pool_size=4, begin="BEGIN")
        else:
            self.write_engine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo
            )
            self.read_engine = self.write_engine
        self.write_sessions = async_sessionmaker(
            self.write_engine, expire_on_commit=False, info=self.session_info
        )
        self.read_sessions = async_sessionmaker(
            self.read_engine, expire_on_commit=False, info=self.session_info
        )
        # SQLite only, made on first use by write_transaction.
        self._sync_write_engine: Engine | None = None
        self._sync_write_sessions: sessionmaker[Session] | None = None
        self._sync_lock = threading.Lock()
        # SQLite only: run_write's own thread, made on first use. One, as there is one
        # write connection: transactions queue in order, and never take the threads of
        # the loop's default executor (DNS resolution runs there).
        self._write_executor: ThreadPoolExecutor | None = None
        self._disposed = False

    @asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[WriteSession]:
        """A write transaction for a hot path: committed on success, rolled back on error.

        On PostgreSQL, an AsyncSession from `write_sessions`. On SQLite, the
        stdlib driver driven synchronously through its own one-connection
        engine (same PRAGMAs, BEGIN IMMEDIATE): no thread hop per statement, but
        every statement blocks the calling thread while it runs. Use it only
        from a dedicated thread such as the ingest writer's, never on the
        request-handling loop, and never nest it (its one connection is taken).
        Writers in other connections or processes wait for it (busy_timeout).
        """
        if not self.is_sqlite:
            async with self.write_sessions() as session, session.begin():
                yield session
            return
        with self._sync_transaction() as sync_session:
            yield sync_session

    async def run_write(self, work: Callable[[WriteSession], Awaitable[_T]]) -> _T:
        """Run `work` in one write transaction, committed when it returns; its result.

        On PostgreSQL, an AsyncSession from `write_sessions`. On SQLite, the whole
        transaction runs on a worker thread through the stdlib driver (a
        SyncWriteSession, whose awaits never suspend): SQLite's one write lock is
        held for the statements' own time, not for the trips each statement would
        make through aiosqlite's thread and a busy event loop, and another writer
        of this process waits that much less. `work` must only use the session:
        it runs on another thread, outside the event loop.
        """
        if not self.is_sqlite:
            async with self.write_transaction() as session:
                return await work(session)
        with self._sync_lock:
            if self._disposed:
                raise RuntimeError("the database was disposed")
            if self._write_executor is None:
                self._write_executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-write")
            executor = self._write_executor
        # The caller's context (log bindings such as the request id) goes along.
        call = functools.partial(contextvars.copy_context().run, self._run_sync_write, work)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def _run_sync_write(self, work: Callable[[WriteSession], Awaitable[_T]]) -> _T:
        with self._sync_transaction() as session:
            return _run_unsuspended(work(session))

    @contextmanager
    def _sync_transaction(self) -> Iterator[SyncWriteSession]:
        """SQLite: a transaction on the one synchronous write connection, on this thread."""
        with self._sync_sessions()() as sync_session, sync_session.begin():
            yield SyncWriteSession(sync_session)

    def _sync_sessions(self) -> sessionmaker[Session]:
        factory = self._sync_write_sessions
        if factory is None:
            with self._sync_lock:
                if self._sync_write_sessions is None:
                    self._sync_write_engine = _sqlite_sync_write_engine(
                        self.url, wait=self._write_wait
                    )
                    self._sync_write_sessions = sessionmaker(
                        self._sync_write_engine, expire_on_commit=False, info=self.session_info
                    )
                factory = self._sync_write_sessions
        return factory

    async def dispose(self) -> None:
        with self._sync_lock:
            self._disposed = True
            executor, self._write_executor = self._write_executor, None
        if executor is not None:
            # Transactions already handed over run to their end (commit or roll back) first.
            await asyncio.to_thread(executor.shutdown, True)
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
        with self._sync_lock:
            engine, self._sync_write_engine = self._sync_write_engine, None
            self._sync_write_sessions = None
        if engine is not None:
            engine.dispose()


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


DatabaseDep = Annotated[Database, Depends(get_database)]


async def get_session(db: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """A read-write session; the route commits what it means to keep."""
    async with db.write_sessions() as session:
        yield session


async def get_read_session(db: DatabaseDep) -> AsyncIterator[AsyncSession]:
    """A session for reads only (a pooled reader on SQLite)."""
    async with db.read_sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
