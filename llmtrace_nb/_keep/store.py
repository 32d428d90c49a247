"""Keep: the embedded store — one SQLite file of sessions and chunks of their spans.

Why SQLite (docs/ARCHITECTURE.md, "Decisions and why", has the measurements): it is in
the standard library; in WAL mode several kernels append at once (each append one short
transaction; the writers take turns on SQLite's lock, ``busy_timeout`` waits for it) while
readers read; a committed transaction survives ``kill -9`` of the writing process and an
interrupted one is rolled back when the file is next opened, so the file never fails to
open because a kernel died mid-write. DuckDB allows one writing process per file (two
notebooks open would fail); Parquet needs pyarrow, a large binary dependency for what
the standard library already does.

Spans are stored as chunks (``codec.py``): a row per writer flush, not per span — a row
per span made SQLite itself the bottleneck (17 s to insert 1M rows, 6 s to read them).
Beside them, ``frames`` keeps what ``history()`` built from a session's chunks
(``columns.py``), with the last chunk it read (``upto``): derived data, built again when
the session has grown or the format changed. The table came after schema 1 without
changing it (a version that does not know it ignores it, and deleting a session deletes
its frame either way), so the schema version stays 1.

The file is created 0600 in a directory created 0700. Every query names its columns;
the schema's version is in ``meta`` and checked on open (a newer store is refused with a
message rather than misread).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    started_ns INTEGER NOT NULL,
    kernel_id TEXT,
    notebook TEXT,
    pid INTEGER,
    last_ns INTEGER
);
CREATE INDEX IF NOT EXISTS sessions_by_notebook ON sessions (notebook, started_ns);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    spans INTEGER NOT NULL,
    first_end_ns INTEGER,
    last_end_ns INTEGER,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_session ON chunks (session, id);
CREATE TABLE IF NOT EXISTS frames (
    session INTEGER PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    upto INTEGER NOT NULL,
    format INTEGER NOT NULL,
    data BLOB NOT NULL
);
"""
_NO_LIMIT = (1 << 63) - 1
#: how long a writer waits for another kernel's transaction before giving up on a flush
BUSY_TIMEOUT_MS = 5_000


class StoreError(OSError):
    """The store cannot be used at that location (not writable, newer, not SQLite)."""


@dataclass(frozen=True)
class SessionInfo:
    id: int
    started_ns: int
    kernel_id: str | None
    notebook: str | None
    last_ns: int | None
    spans: int
    bytes: int


def _private_dir(path: Path) -> None:
    """The store's directory, created 0700 if missing (an existing one is left as is)."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _connect(path: Path) -> sqlite3.Connection:
    _private_dir(path.parent)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        os.close(fd)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL: a commit is durable once the WAL is synced at checkpoints; a process
    # killed after its commit loses nothing (only a power cut could lose the last ones)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class Store:
    """One store file, opened (and created if needed) at ``path``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        # one connection, used by the writer's thread and the notebook's: SQLite
        # connections are not to be used by two threads at once
        self._lock = threading.RLock()
        try:
            self._conn = _connect(self.path)
            with self._transaction():
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                found = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if found is None:
                    self._conn.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)",
                                       (str(SCHEMA_VERSION),))
                elif int(found[0]) > SCHEMA_VERSION:
                    raise StoreError(f"{self.path}: written by a newer llmtrace_nb (store "
                                     f"schema {found[0]}; this version reads "
                                     f"{SCHEMA_VERSION})")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot be used as the span store: {exc}") \
                from None

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn, self._lock)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- writing ---------------------------------------------------------------------------

    def begin_session(self, started_ns: int, kernel_id: str | None, notebook: str | None
                      ) -> int:
        with self._transaction():
            cursor = self._conn.execute(
                "INSERT INTO sessions (started_ns, kernel_id, notebook, pid, last_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (started_ns, kernel_id, notebook, os.getpid(), started_ns))
        return int(cursor.lastrowid or 0)

    def append(self, session: int, chunks: Iterable[tuple[int, int | None, int | None,
                                                          bytes]]) -> None:
        """Add chunks ``(spans, first_end_ns, last_end_ns, data)`` in one transaction."""
        rows = [(session, n, first, last, data) for n, first, last, data in chunks]
        if not rows:
            return
        with self._transaction():
            self._conn.executemany(
                "INSERT INTO chunks (session, spans, first_end_ns, last_end_ns, data) "
                "VALUES (?, ?, ?, ?, ?)", rows)
            self._conn.execute("UPDATE sessions SET last_ns = ? WHERE id = ?",
                               (time.time_ns(), session))

    # -- reading ---------------------------------------------------------------------------

    def sessions(self, notebook: str | None = None) -> list[SessionInfo]:
        """Every session (of ``notebook`` if given), oldest first, with its span count."""
        where, args = ("WHERE s.notebook = ?", (notebook,)) if notebook is not None \
            else ("", ())
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.id, s.started_ns, s.kernel_id, s.notebook, s.last_ns, "
                "COALESCE(SUM(c.spans), 0), COALESCE(SUM(LENGTH(c.data)), 0) + "
                "COALESCE((SELECT LENGTH(f.data) FROM frames f WHERE f.session = s.id), 0) "
                f"FROM sessions s LEFT JOIN chunks c ON c.session = s.id {where} "
                "GROUP BY s.id ORDER BY s.started_ns, s.id", args).fetchall()
        return [SessionInfo(*row) for row in rows]

    def chunks(self, sessions: Iterable[int], upto: Mapping[int, int] | None = None
               ) -> Iterator[tuple[int, bytes]]:
        """``(session, data)`` of the sessions' chunks, in the order they were written
        (of a session in ``upto``, only those up to that chunk id)."""
        for session in sessions:
            last = (upto or {}).get(session)
            with self._lock:
                rows = self._conn.execute(
                    "SELECT data FROM chunks WHERE session = ? AND id <= ? ORDER BY id",
                    (session, _NO_LIMIT if last is None else last)).fetchall()
            for (data,) in rows:
                yield session, data

    def last_chunks(self) -> dict[int, int]:
        """The id of each session's latest chunk (sessions with none are left out)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT session, MAX(id) FROM chunks GROUP BY session").fetchall()
        return dict(rows)

    def frames(self, sessions: Iterable[int]) -> dict[int, tuple[int, int, bytes]]:
        """``session → (upto, format, data)`` of the kept frames of ``sessions``."""
        wanted = list(sessions)
        out: dict[int, tuple[int, int, bytes]] = {}
        for start in range(0, len(wanted), 500):  # SQLite's limit on parameters
            batch = wanted[start:start + 500]
            with self._lock:
                rows = self._conn.execute(
                    "SELECT session, upto, format, data FROM frames WHERE session IN "
                    f"({','.join('?' * len(batch))})", batch).fetchall()
            out.update((session, (upto, fmt, data)) for session, upto, fmt, data in rows)
        return out

    def keep_frame(self, session: int, upto: int, fmt: int, data: bytes) -> None:
        """Keep (or replace) the frame built from ``session``'s chunks up to ``upto``."""
        with self._transaction():
            if self._conn.execute("SELECT 1 FROM sessions WHERE id = ?",
                                  (session,)).fetchone() is None:
                return  # pruned meanwhile
            self._conn.execute(
                "INSERT OR REPLACE INTO frames (session, upto, format, data) "
                "VALUES (?, ?, ?, ?)", (session, upto, fmt, data))

    def size(self) -> int:
        """Bytes on disk: the database and its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, self.path.with_name(
            self.path.name + "-wal")) if p.exists())

    # -- retention -------------------------------------------------------------------------

    def prune(self, max_age_s: float | None, max_bytes: int | None,
              keep: Iterable[int] = ()) -> int:
        """Drop whole sessions, oldest first: those last written more than ``max_age_s``
        ago, then more until the chunks take at most ``max_bytes``. Sessions in ``keep``
        (those writing now) stay. Returns how many sessions were dropped."""
        kept = set(keep)
        infos = [s for s in self.sessions() if s.id not in kept]
        drop = []
        if max_age_s is not None:
            cutoff = time.time_ns() - int(max_age_s * 1e9)
            drop += [s.id for s in infos if (s.last_ns or s.started_ns) < cutoff]
        if max_bytes is not None:
            total = sum(s.bytes for s in self.sessions())
            total -= sum(s.bytes for s in infos if s.id in drop)
            for s in infos:
                if total <= max_bytes:
                    break
                if s.id not in drop:
                    drop.append(s.id)
                    total -= s.bytes
        if drop:
            with self._transaction():
                self._conn.executemany("DELETE FROM sessions WHERE id = ?",
                                       [(i,) for i in drop])
            with self._lock:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(drop)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on an error), holding the store's
    thread lock: a writer takes SQLite's write lock at the start, so two kernels never
    deadlock upgrading a read."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock) -> None:
        self.conn, self.lock = conn, lock

    def __enter__(self) -> None:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        try:
            self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()
