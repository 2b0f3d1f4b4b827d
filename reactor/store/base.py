"""What the ledger's table rules need of a backend: a few statement runners and its SQL dialect.

The rules (maintenance records, counts, voids, the journal, pauses) are written once, in the
``maintenance``, ``journal`` and ``pauses`` modules, as mixins on :class:`LedgerBase`; the
SQLite ledger (:mod:`reactor.store.db`) and the PostgreSQL one (:mod:`reactor.store.postgres`)
implement only these runners, so the two backends differ in SQL dialect and connection
handling and never in what a record, a count, a void or a pause means.

The rules' SQL uses ``?`` placeholders; :meth:`Dialect.sql` turns them into the driver's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

__all__ = ["POSTGRES", "SQLITE", "Dialect", "LedgerBase", "Result", "Run"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """Where the backends' SQL differs for the shared rules."""

    placeholder: str  # the driver's parameter marker
    lock_row: str  # appended to a SELECT whose row the same transaction then updates

    def sql(self, text: str) -> str:
        """``text`` (written with ``?`` placeholders) for this driver."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect(placeholder="?", lock_row="")  # BEGIN IMMEDIATE already locks the file
POSTGRES = Dialect(placeholder="%s", lock_row=" FOR UPDATE")


@dataclass(frozen=True, slots=True)
class Result:
    """One statement's returned rows and affected row count."""

    rows: list[tuple[Any, ...]]
    rowcount: int


class Run(Protocol):
    """A statement runner inside :meth:`LedgerBase._transaction`; ``polled``: the statement
    changes a table other processes poll (see the backends' ``data_version``)."""

    def __call__(
        self, sql: str, params: tuple[Any, ...] = (), *, polled: bool = False
    ) -> Result: ...


class LedgerBase(ABC):
    """A ledger connection as the table rules see it; each runner raises the ledger's typed
    errors (``LedgerUnavailable``: nothing happened) and commits before it returns."""

    dialect: ClassVar[Dialect]
    _clock: Callable[[], float]

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @abstractmethod
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read."""

    @abstractmethod
    def _execute(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> int:
        """One write in its own transaction; the affected row count."""

    @abstractmethod
    def _insert(self, sql: str, params: tuple[Any, ...], *, polled: bool = False) -> int | None:
        """One INSERT in its own transaction; the new row's id, None when it inserted none
        (``ON CONFLICT DO NOTHING``)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Run]:
        """Several statements committed together (or none of them, when the block raises)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
