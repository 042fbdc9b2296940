"""Hand-written SQL for the statements that run on every sign-in.

Building a query with the ORM costs a few hundred microseconds of Python
before the database sees it, more than the statement itself; a second-step
sign-in used to spend most of its time there.  The hot statements are
written out instead, and this module keeps them honest: values go through
each model field's own preparation on the way in (``prep``), and rows come
back through the same converters the ORM applies (``Columns``), so a
datetime read by hand is the same aware UTC value the ORM would give.

Table and column names come from the models, never from input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar, cast

from django.db import connection
from django.db.models import Field, Model

M = TypeVar("M", bound=Model)


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def field(model: type[Model], name: str) -> Field[Any, Any]:
    """The concrete field ``name`` of ``model``."""
    return cast("Field[Any, Any]", model._meta.get_field(name))


def column(model: type[Model], name: str) -> str:
    return connection.ops.quote_name(str(field(model, name).column))


def prep(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as the database takes it for ``model.name`` (e.g. a datetime as naive UTC text on SQLite)."""
    return field(model, name).get_db_prep_save(value, connection)


def prepared(instance: Model, fields: Sequence[Field[Any, Any]]) -> list[Any]:
    """``instance``'s values of ``fields``, in order, as the database takes them (see ``prep``)."""
    return [f.get_db_prep_save(getattr(instance, f.attname), connection) for f in fields]


def insert_sql(model: type[Model], fields: Sequence[Field[Any, Any]], *, returning: str | None = None) -> str:
    """``INSERT INTO <table> (<fields' columns>) VALUES (%s, ...)``, optionally ``RETURNING`` one field."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = f"INSERT INTO {table(model)} ({columns}) VALUES ({marks})"  # noqa: S608 - names from the model
    return f"{sql} RETURNING {column(model, returning)}" if returning else sql


def execute(sql: str, params: Sequence[Any] = ()) -> int:
    """Run one statement; the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        changed: int = cursor.rowcount
        return changed


def fetchone(sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def fetchall(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def lock_rows_of(*aliases: str) -> str:
    """The clause that locks the selected rows of ``aliases``, in that order, until the transaction ends.

    Empty on SQLite, where a write transaction (``BEGIN IMMEDIATE``) already
    holds the database's single write lock.
    """
    if connection.vendor == "postgresql":
        return f" FOR UPDATE OF {', '.join(aliases)}"
    return ""


class Columns(Generic[M]):
    """Some of a model's columns: the select list, and model instances built from the rows.

    Rows are converted exactly as the ORM converts them (the backend's and
    the field's converters), then handed to ``Model.from_db``.
    """

    def __init__(self, model: type[M], names: Sequence[str]) -> None:
        self.model = model
        self.fields = [field(model, name) for name in names]
        self.attnames = [f.attname for f in self.fields]
        self._converters: dict[str, list[list[Any]]] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def select(self, alias: str) -> str:
        """``alias."col", ...`` for a SELECT list."""
        quote = connection.ops.quote_name
        return ", ".join(f"{alias}.{quote(str(f.column))}" for f in self.fields)

    def _converters_for_connection(self) -> list[list[Any]]:
        converters = self._converters.get(connection.vendor)
        if converters is None:
            converters = []
            for column_field in self.fields:
                expression = column_field.get_col(self.model._meta.db_table)
                found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
                converters.append([(convert, expression) for convert in found])
            self._converters[connection.vendor] = converters
        return converters

    def convert(self, values: Sequence[Any]) -> list[Any]:
        """This list's values (a slice of a row, in ``select`` order) as the ORM would give them."""
        converted = []
        for value, converters in zip(values, self._converters_for_connection(), strict=True):
            for convert, expression in converters:
                value = convert(value, expression, connection)
            converted.append(value)
        return converted

    def instance(self, values: Sequence[Any]) -> M:
        """A model instance from this list's values."""
        return self.model.from_db(connection.alias, self.attnames, self.convert(values))
