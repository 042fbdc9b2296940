"""``database.url``: checked and split with libpq's own URI parser, and shown without its password.

The URL is read exactly as ``psql`` reads it (psycopg's ``conninfo_to_dict``
calls libpq): percent-encoded user names, passwords and database names are
decoded, several hosts and Unix socket directories work, and every query
parameter libpq knows (``sslmode``, ``sslrootcert``, ``target_session_attrs``,
``application_name``...) reaches the connection.  A parameter libpq does not
know is refused here rather than at the first connection.

No Django imports: the configuration is checked before Django starts.
"""

from __future__ import annotations

import re

#: The schemes libpq accepts (it refuses anything else).
SCHEMES = ("postgresql://", "postgres://")
#: Parameters that Django's settings carry under their own names; every other one goes to OPTIONS.
CONNECTION_KEYS = ("dbname", "user", "password", "host", "port")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
EXAMPLE = "postgresql://twostep:password@db.internal:5432/twostep"
_SECRET_PARAMETER = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")
_QUOTED = re.compile(r'"([^"]*)"')


def redact_url(url: str) -> str:
    """``url`` with its password (and any ``password=`` parameter) replaced by ``***``.

    Works on malformed URLs too (a misspelt scheme, an unencoded ``/`` or
    ``@`` in the password): when in doubt it hides more, never less.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        scheme, rest = "", url
    # The last "@": a password with an unencoded "@" is still hidden whole.
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _password = rest[:at].partition(":")
        if colon:
            rest = f"{user}:***{rest[at:]}"
    return _SECRET_PARAMETER.sub(r"\1***", scheme + separator + rest)


def _secrets_in(url: str) -> list[str]:
    """Every part of ``url`` that could be its password, as written and however it might be split."""
    rest = url.partition("://")[2] or url
    found = []
    for index, char in enumerate(rest):
        if char == "@":
            user_info = rest[:index]
            if ":" in user_info:
                found.append(user_info.partition(":")[2])
    found += [match.group(0).partition("=")[2] for match in _SECRET_PARAMETER.finditer(url)]
    return [secret for secret in found if secret]


def _scrub(message: str, url: str) -> str:
    """``message`` (libpq's, which quotes the part it could not parse) with nothing of the password left."""
    secrets = _secrets_in(url)

    def replace(match: re.Match[str]) -> str:
        fragment = match.group(1)
        if "://" in fragment:
            return f'"{redact_url(fragment)}"'
        if fragment and any(fragment in secret or secret in fragment for secret in secrets):
            return '"***"'
        return match.group(0)

    return " ".join(_QUOTED.sub(replace, message).split())


def _refuse(message: str, url: str) -> ValueError:
    return ValueError(_scrub(message, url))


def parse_url(url: str) -> dict[str, str]:
    """libpq's connection parameters for ``url`` (``dbname``, ``user``, ``host``, ``sslmode``...).

    Raises:
        ValueError: the URL does not start with postgresql://, libpq cannot
            parse it or does not know one of its parameters, it names no
            database, or a port, ``connect_timeout`` or ``sslmode`` is not a
            valid value.  The message never contains the password.
    """
    if not url.startswith(SCHEMES):
        scheme = url.partition("://")[0] if "://" in url else ""
        problem = f"unknown scheme {scheme + '://'!r}" if scheme else "not a URL"
        raise ValueError(f"{problem}: only postgresql:// URLs are supported, e.g. {EXAMPLE} (leave empty for SQLite)")
    rest = url.partition("://")[2]
    authority = re.split(r"[/?]", rest, maxsplit=1)[0]
    path = rest[len(authority) :].partition("?")[0]
    if authority.count("@") > 1 or ("@" in path and "@" not in authority):
        # libpq would take part of the password for the host or the database name.
        raise ValueError(
            f"a '/', '@' or ':' in the user name or password must be percent-encoded (%2F, %40, %3A), e.g. {EXAMPLE}"
        )
    from psycopg import Error as PsycopgError
    from psycopg.conninfo import conninfo_to_dict

    try:
        parameters = {key: str(value) for key, value in conninfo_to_dict(url).items()}
    except PsycopgError as exc:
        raise _refuse(f"not a valid PostgreSQL URL: {exc}", url) from None
    if not parameters.get("dbname") and not parameters.get("service"):
        raise ValueError(f"names no database: add it after the host, e.g. {EXAMPLE}")
    for port in parameters.get("port", "").split(","):
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise _refuse(f'port "{port}" is not a number from 1 to 65535', url)
    timeout = parameters.get("connect_timeout", "0")
    if not timeout.isdigit():
        raise _refuse(f'connect_timeout "{timeout}" is not a whole number of seconds', url)
    if parameters.get("sslmode", "prefer") not in SSL_MODES:
        raise _refuse(f'sslmode "{parameters["sslmode"]}" is not one of {", ".join(SSL_MODES)}', url)
    return parameters


def describe(parameters: dict[str, str]) -> str:
    """Where the database is, for messages: ``host:port/name`` (never the password)."""
    host = parameters.get("host") or "localhost"
    port = parameters.get("port") or "5432"
    name = parameters.get("dbname") or f"service {parameters.get('service', '')}"
    return f"{host}:{port}/{name}"
