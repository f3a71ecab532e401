"""``leadlawk deliveries list|show|replay``, ``dlq replay`` of a delivery letter, and ``submit --notify``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from leadlawk_daemon.cli import main
from leadlawk_daemon.deliveries.ledger import delivery_id, ledger_of
from leadlawk_daemon.store import open_store
from tests.support.deliveries import ENV, delivery_settings, finished_job
from tests.test_deliveries_ledger import service


def seeded(tmp_path: Path) -> tuple[str, str]:
    """A SQLite store with one dead delivery and its dead letter; its URL and the delivery's id."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    hook = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret_env": "HOOK_SECRET"}
    settings = delivery_settings(tmp_path, {"hook": hook})

    async def seed() -> None:
        async with open_store(url, migrate=True) as store:
            await finished_job(store, "cli-job", [1, 2, 3], notify=["hook"])
            (made,) = await service(settings, store).make("cli-job")
            await service(settings, store)._dead(made, "answered 403")

    asyncio.run(seed())
    return url, delivery_id("cli-job", "hook")


def test_deliveries_are_listed_shown_and_replayed_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, one = seeded(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["deliveries", "list", "--status", "dead"]) == 0
    listed = capsys.readouterr().out
    assert one in listed
    assert "answered 403" in listed
    assert main(["deliveries", "show", one]) == 0
    assert '"place_ids"' in capsys.readouterr().out
    assert main(["dlq", "list", "--kind", "delivery"]) == 0
    assert "delivery to hook: answered 403" in capsys.readouterr().out
    assert main(["deliveries", "replay", one]) == 0
    assert "replayed" in capsys.readouterr().out

    async def status() -> tuple[str | None, int]:
        async with open_store(url) as store:
            found = await ledger_of(store).get(one)
            letters = await store.list_dead_letters(kind="delivery")
        return (None if found is None else found.status), len(letters)

    assert asyncio.run(status()) == ("pending", 0)  # due again, and its letter marked replayed
    with pytest.raises(SystemExit):
        main(["deliveries", "show", "d-unknown"])
    assert "no delivery" in capsys.readouterr().err


def test_dlq_replay_of_a_delivery_letter_puts_it_back_to_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, one = seeded(tmp_path)
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["dlq", "replay", "--all"]) == 0
    assert "replayed" in capsys.readouterr().out

    async def status() -> str | None:
        async with open_store(url) as store:
            found = await ledger_of(store).get(one)
        return None if found is None else found.status

    assert asyncio.run(status()) == "pending"


def test_submit_notify_names_only_configured_destinations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 's.db'}")
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LEADLAWK_CONFIG", str(tmp_path / "deliveries.yaml"))
    delivery_settings(tmp_path, {"hook": {"type": "webhook", "url": "https://x.example/", "secret_env": "HOOK_SECRET"}})
    with pytest.raises(SystemExit):
        main(["submit", "plumbers", "--notify", "hook", "--notify", "nope"])
    err = capsys.readouterr().err
    assert "notify[1]: no destination of that name is configured (configured: hook)" in err


def test_config_show_names_a_destination_s_secret_variable_never_its_value_nor_a_webhook_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = {"type": "webhook", "url": "https://hooks.example.com/services/T0/B0/abcdefSECRETPATH",
            "secret_env": "HOOK_SECRET"}  # fmt: skip
    mail = {"type": "email", "host": "smtp.example.com", "port": 587, "sender": "a@example.com",
            "to": ["b@example.com"], "username": "leads", "password_env": "SMTP_PASSWORD"}  # fmt: skip
    monkeypatch.setenv("HOOK_SECRET", "whsec-value-never-shown")
    monkeypatch.setenv("SMTP_PASSWORD", "smtp-value-never-shown")
    config = tmp_path / "secrets.yaml"
    config.write_text(yaml.safe_dump({"destinations": {"hook": hook, "mail": mail}}), encoding="utf-8")
    monkeypatch.setenv("LEADLAWK_CONFIG", str(config))
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "https://hooks.example.com/***" in shown
    assert "SECRETPATH" not in shown
    assert "HOOK_SECRET" in shown
    assert "SMTP_PASSWORD" in shown
    assert "never-shown" not in shown
    monkeypatch.delenv("SMTP_PASSWORD")
    assert main(["config", "check"]) == 2
    assert (
        "destinations.mail.password_env: the environment variable SMTP_PASSWORD is not set" in capsys.readouterr().err
    )


def test_a_webhook_secret_and_its_token_like_path_are_masked_in_log_lines_once_its_sender_is_built() -> None:
    from leadlawk_daemon.deliveries.destinations import build_sender
    from leadlawk_daemon.logs import redact
    from leadlawk_daemon.settings import DeliveriesSettings, WebhookDestination
    from leadlawk_daemon.sites.policy import EgressPolicy

    url = "https://hooks.example.com/services/T0/B0/xoxbTOKENvalue12345"
    config = WebhookDestination(type="webhook", url=url, secret_env="SLACKISH")
    deliveries = DeliveriesSettings(page_size=5, timeout=1, retry_base=1, retry_max=2, sweep_interval=1,
                                    claim_ttl=1, concurrency=1)  # fmt: skip

    async def build() -> None:
        sender = build_sender("slack", config, deliveries, secrets={"SLACKISH": "shh-its-a-secret"},
                              policy=EgressPolicy(), wall=lambda: 0.0)  # fmt: skip
        await sender.aclose()

    asyncio.run(build())
    line = redact(f"POST {url} signed with shh-its-a-secret failed")
    assert "xoxbTOKENvalue12345" not in line
    assert "shh-its-a-secret" not in line
    assert "https://hooks.example.com/services/T0/B0/" in line  # the short parts stay readable
