"""``pistats registry init|info|show`` on the real PostgreSQL: tokens and passwords never printed."""

from __future__ import annotations

import json

from pistats.cli.main import main
from pistats.registry.migrations import LATEST_VERSION, MIGRATIONS
from pistats.registry.store import token_hash
from tests.integration.registry.conftest import RECEIVED

TOKEN = "fcm:APA91bSecretTokenValue_0123456789"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_twice_then_info(scratch_database, capsys):
    url = scratch_database()
    latest, every = LATEST_VERSION, ", ".join(str(m.version) for m in MIGRATIONS)
    code, out, _ = run(capsys, "registry", "--registry-url", url, "info")
    assert code == 0 and f"schema version 0 of {latest} (run `pistats registry init` to reach {latest})" in out
    code, out, _ = run(capsys, "registry", "--registry-url", url, "init")
    assert (code, out.split(": ", 1)[1]) == (0, f"schema version {latest} (applied migration(s) {every})\n")
    code, out, _ = run(capsys, "registry", "--registry-url", url, "init")
    assert (code, out.split(": ", 1)[1]) == (0, f"schema version {latest} (already up to date)\n")
    code, out, _ = run(capsys, "registry", "--registry-url", url, "info")
    assert code == 0 and f"schema version {latest} of {latest} (up to date)" in out
    assert "subscribers          0" in out


def test_the_url_comes_from_the_environment(registry_url, monkeypatch, capsys):
    monkeypatch.setenv("PISTATS_REGISTRY_URL", registry_url)
    code, out, _ = run(capsys, "registry", "info")
    assert code == 0 and f"registry at {registry_url}:" in out


def test_show_prints_the_user_and_hashes_of_tokens(registry, registry_url, client_id, capsys):
    registry.write(client_id, [
        {"event_id": "1", "type": "register", "property_id": "site-1", "user_id": "u-1",
         "timestamp": "2026-11-26T11:00:00Z", "context": {"locale": "fr-FR", "timezone": "Europe/Paris"}},
        {"event_id": "2", "type": "subscribe", "property_id": "site-1", "user_id": "u-1", "push_token": TOKEN,
         "timestamp": "2026-11-26T11:00:01Z", "context": {"sdk": {"name": "pistats-js"}}},
    ], RECEIVED)
    code, out, err = run(capsys, "registry", "--registry-url", registry_url, "show", "--client", client_id,
                         "--user", "u-1")
    assert code == 0, err
    assert TOKEN not in out and TOKEN[-8:] not in out
    assert f"token {token_hash(TOKEN)}  web     active" in out
    assert "locale       fr-FR   timezone Europe/Paris" in out

    code, out, _ = run(capsys, "registry", "--registry-url", registry_url, "show", "--client", client_id,
                       "--user", "u-1", "--json")
    shown = json.loads(out)
    assert TOKEN not in out
    assert [s["property_id"] for s in shown["subscribers"]] == ["site-1"]
    assert shown["subscriptions"] == [{
        "property_id": "site-1", "token_hash": token_hash(TOKEN), "platform": "web", "status": "active",
        "status_changed_at": "2026-11-26T11:00:01+00:00", "created_at": shown["subscriptions"][0]["created_at"],
        "updated_at": shown["subscriptions"][0]["updated_at"], "last_error": None}]


def test_show_of_an_unknown_user_fails(registry_url, client_id, capsys):
    code, _, err = run(capsys, "registry", "--registry-url", registry_url, "show", "--client", client_id,
                       "--user", "nobody")
    assert code == 1 and "no subscriber 'nobody'" in err


def test_errors_name_the_flag_and_never_the_password(capsys):
    code, _, err = run(capsys, "registry", "--registry-url", "mysql://u:hunter2@h/db", "info")
    assert code == 2 and "--registry-url must start with postgresql://" in err and "hunter2" not in err
    code, _, err = run(capsys, "registry", "--registry-url", "postgresql://u:hunter2@127.0.0.1:1/db", "info")
    assert code == 1 and "OperationalError" in err and "hunter2" not in err
