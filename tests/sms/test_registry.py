"""Finding providers through the twostep.sms_providers entry-point group."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.sms.fakes import FakeAcme
from tests.sms.plugin import install_example
from twostep.sms import registry
from twostep.sms.base import ConfigurationError, SMSMessage, SMSProvider

BUILT_INS = {"console", "webhook", "twilio", "vonage"}


def test_built_ins_come_through_the_entry_point_group() -> None:
    """twostep's own providers are declared as entry points, the same path third parties take."""
    from importlib.metadata import entry_points

    declared = {entry.name: entry.value for entry in entry_points(group=registry.GROUP)}
    assert set(declared) >= BUILT_INS
    assert declared["twilio"] == "twostep.sms.twilio:TwilioProvider"
    assert set(registry.available()) >= BUILT_INS


def test_unknown_provider_lists_the_available_ones() -> None:
    """Asking for a provider nobody installed says which ones exist."""
    with pytest.raises(ConfigurationError) as caught:
        registry.provider_class("carrier-pigeon")
    assert "carrier-pigeon" in str(caught.value)
    for name in BUILT_INS:
        assert name in str(caught.value)


def test_third_party_provider_is_discovered(acme_plugin: Path) -> None:
    """A distribution that declares an entry point in the group is found and loaded by name."""
    cls = registry.provider_class("acme")
    assert cls.__module__ == "twostep_acme_sms"
    sent: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(202, json={"id": "acme-1"})

    client = httpx.Client(transport=httpx.MockTransport(gateway))
    provider = registry.load_provider("acme", {"api_token": "t0ken"}, http=client)
    assert isinstance(provider, SMSProvider)
    receipt = provider.send(SMSMessage(to="+15551234567", body="code 123456"))
    assert receipt.message_id == "acme-1"
    assert sent[0].headers["authorization"] == "Bearer t0ken"


def test_third_party_options_are_validated_at_load(acme_plugin: Path) -> None:
    """load_provider runs the plugin's own option checks before anything is sent."""
    with pytest.raises(ConfigurationError) as caught:
        registry.load_provider("acme", {})
    assert caught.value.setting == "api_token"


def test_provider_disappears_when_uninstalled(tmp_path: Path) -> None:
    """Discovery reflects what is installed: after removal the name is unknown again."""
    from tests.sms.plugin import example_installed

    with example_installed(tmp_path / "site"):
        assert "acme" in registry.available()
    assert "acme" not in registry.available()


def _write_plugin(target: Path, module: str, source: str, entries: dict[str, str]) -> None:
    (target / f"{module}.py").write_text(source)
    dist_info = target / f"{module}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    lines = "\n".join(f"{name} = {value}" for name, value in entries.items())
    (dist_info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}\n")


def test_broken_plugins_are_reported_not_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin that fails to import, or lacks the interface, is listed as broken; the others still load."""
    _write_plugin(
        tmp_path,
        "broken_sms",
        "import does_not_exist\n",
        {"crashing": "broken_sms:Provider"},
    )
    _write_plugin(
        tmp_path,
        "shapeless_sms",
        "class Provider:\n    name = 'shapeless'\n",
        {"shapeless": "shapeless_sms:Provider", "misnamed": "tests.sms.test_registry:Misnamed"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = registry.discover(refresh=True)
        assert "ModuleNotFoundError" in found.broken["crashing"]
        assert "lacks" in found.broken["shapeless"]
        assert "entry point is 'misnamed'" in found.broken["misnamed"]
        assert set(found.providers) >= BUILT_INS
        with pytest.raises(ConfigurationError) as caught:
            registry.provider_class("crashing")
        assert "cannot be loaded" in str(caught.value)
    finally:
        monkeypatch.undo()
        registry.discover(refresh=True)


def test_two_packages_claiming_one_name_are_both_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If two installed packages declare the same provider name, neither is used (no silent shadowing)."""
    source = "from twostep.sms.webhook import WebhookProvider as Provider\n"
    _write_plugin(tmp_path, "first_sms", source, {"webhook": "first_sms:Provider"})
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = registry.discover(refresh=True)
        assert "webhook" not in found.providers
        assert "more than one" in found.broken["webhook"]
    finally:
        monkeypatch.undo()
        registry.discover(refresh=True)
    assert "webhook" in registry.available()


class Misnamed:
    """Has the interface's shape but a name that differs from its entry point."""

    name = "something-else"
    label = "Misnamed"
    options = ()

    @classmethod
    def from_options(cls, options: object, **_: object) -> Misnamed:
        return cls()

    def send(self, message: object) -> None:
        raise AssertionError("never used")

    def close(self) -> None:
        return None


@pytest.mark.live
def test_cli_of_a_fresh_process_uses_the_installed_plugin(tmp_path: Path) -> None:
    """In a new process (as after `pip install`), the CLI lists, configures and sends through the plugin."""
    from tests.live import TWOSTEP, create_server

    site = install_example(tmp_path / "site")
    server = create_server(tmp_path / "data")
    env = {**server.env, "PYTHONPATH": os.pathsep.join([str(site), server.env["PYTHONPATH"]])}
    gateway = FakeAcme("plugin-token")
    try:

        def twostep(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*TWOSTEP, *args], env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False
            )

        listed = twostep("sms", "providers")
        assert "acme: ACME SMS gateway" in listed.stdout
        configured = twostep(
            "sms",
            "configure",
            "acme",
            "--option",
            f"base_url={gateway.url}",
            "--secrets-stdin",
            stdin="api_token=plugin-token\n",
        )
        assert configured.returncode == 0, configured.stderr
        sent = twostep("sms", "test", "+15551234567")
        assert sent.returncode == 0, sent.stderr
        assert "handed to acme" in sent.stdout
        assert [(m.to, m.body) for m in gateway.received] == [
            ("+15551234567", "twostep: this is a test message. SMS delivery works.")
        ]
        assert "plugin-token" not in sent.stdout + sent.stderr + configured.stdout
    finally:
        gateway.stop()
