"""Reading the enrolment QR code off the page like a phone would, and making codes from it."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from playwright.sync_api import Page

from twostep.factors import totp


@dataclass(frozen=True)
class KeyURI:
    """The parts of an ``otpauth://`` URI that an authenticator app reads."""

    raw: str
    kind: str
    label: str
    params: dict[str, str]

    @property
    def key(self) -> bytes:
        return totp.decode_secret(self.params["secret"])

    def code(self, unix_time: float) -> str:
        """The code an app holding this key shows at ``unix_time``."""
        return totp.totp(self.key, unix_time)


def parse_key_uri(uri: str) -> KeyURI:
    """Split a Key URI; fails the test when it is not an otpauth URI with one value per parameter."""
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth", uri
    query = parse_qs(parts.query, strict_parsing=True)
    assert all(len(values) == 1 for values in query.values()), uri
    return KeyURI(
        raw=uri,
        kind=parts.netloc,
        label=unquote(parts.path.lstrip("/")),
        params={name: values[0] for name, values in query.items()},
    )


def scan_qr(page: Page, png: Path) -> KeyURI:
    """Screenshot the QR code on the page and decode it with zbar, as a phone camera would."""
    page.locator("figure.qr svg").screenshot(path=str(png))
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, f"zbarimg could not read the QR code: {result.stderr}"
    symbols = result.stdout.splitlines()
    assert len(symbols) == 1, symbols
    return parse_key_uri(symbols[0])
