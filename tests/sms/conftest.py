"""Fixtures for the SMS provider tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sms.fakes import FakeSet, FakeTwilio
from tests.sms.helpers import allow_sms, configure
from tests.sms.plugin import example_installed


@pytest.fixture
def fakes() -> Iterator[FakeSet]:
    """Start fake provider servers on demand; all stop at teardown."""
    started = FakeSet()
    yield started
    started.stop()


@pytest.fixture
def twilio(fakes: FakeSet) -> FakeTwilio:
    """A fake Twilio, configured as the SMS provider, with SMS allowed and 2FA on."""
    fake = fakes.twilio()
    configure(fake)
    allow_sms()
    return fake


@pytest.fixture
def acme_plugin(tmp_path: Path) -> Iterator[Path]:
    """The example third-party provider 'acme', installed for this test only."""
    with example_installed(tmp_path / "site") as target:
        yield target
