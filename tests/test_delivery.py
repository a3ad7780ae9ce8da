"""The outbox and the deliverer in process: an approval and its outbox row are one
transaction, a correction is an update of the same item, the drop folder, retries with
backoff, concurrent claims, configuration errors (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from pipeline.db import (
    Delivery,
    Review,
    claim_deliveries,
    make_engine,
    session_factory,
    utcnow,
)
from pipeline.delivery import deliver, load_delivery_config
from pipeline.errors import ConfigError
from pipeline.review import decide, find
from pipeline.settings import Settings
from tests.delivery_support import SECRET, approve_all, generate, outbox, receiver
from tests.engine_support import run_engine, simulator

AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AI_EDITED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"


def webhook_settings(settings: Settings, url: str, **updates: object) -> Settings:
    """``settings`` delivering to the webhook ``url`` signed with the test secret."""
    return settings.model_copy(
        update={
            "delivery_webhook_url": url,
            "delivery_secret": SecretStr(SECRET),
            "delivery_backoff_s": 0.05,
            "delivery_backoff_max_s": 0.2,
            **updates,
        }
    )


def test_an_approval_and_its_outbox_row_are_one_transaction(
    database_url: str, tmp_path: Path
) -> None:
    """decide adds the decision and the outbox row without committing: a rollback (a crash
    before the commit) leaves neither, a commit both; a rejection of what was never sent
    adds no row."""
    generate(database_url, tmp_path, n=2, tasks=("summary",))
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    try:
        with sessions() as session:
            output = find(session, "1")
            decided = decide(session, output, "approved", editor="ana")
            assert decided.delivery_version == 1
            assert session.scalar(select(func.count()).select_from(Delivery)) == 1
            session.rollback()  # what a crash before the commit amounts to
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(Review)) == 0
            assert session.scalar(select(func.count()).select_from(Delivery)) == 0
            decide(session, find(session, "1"), "approved", editor="ana")
            session.commit()
        with engine.connect() as conn:  # another connection sees both
            assert conn.scalar(select(func.count()).select_from(Review)) == 1
            row = conn.execute(select(Delivery)).one()
        assert (row.version, row.state, row.action) == (1, "pending", "approved")
        assert row.webhook_id.startswith("msg_") and row.uri.endswith(":summary")
        with sessions() as session:
            second = find(session, "2")
            rejected = decide(session, second, "rejected", editor="bo", note="Wrong club")
            session.commit()
        assert rejected.delivery_version is None  # nothing of it ever reached the CMS
    finally:
        engine.dispose()
    assert [d.generation_id for d in outbox(database_url)] == [1]


def test_a_correction_is_delivered_as_an_update_of_the_same_item(
    database_url: str, tmp_path: Path
) -> None:
    """Approve and send, edit (a correction): the same uri arrives as version 2 under a new
    webhook-id, marked composite; an edit before the first send supersedes it (only the
    newest is sent); a rejection after delivery sends a canceled version."""
    settings = generate(database_url, tmp_path, n=2, tasks=("headline",))
    engine = make_engine(database_url)
    sessions = session_factory(engine)
    ref, other = "nm-2025-0001:headline", "nm-2025-0002:headline"
    try:
        with receiver() as cms:
            with sessions() as session:
                decide(session, find(session, ref), "approved", editor="ana")
                session.commit()
            first = deliver(webhook_settings(settings, cms.url))
            assert first.sent == 1
            with sessions() as session:
                decide(session, find(session, ref), "edited", editor="bo", edited_text="Fixed")
                decide(session, find(session, other), "approved", editor="ana")
                decide(session, find(session, other), "edited", editor="ana", edited_text="B")
                session.commit()
            second = deliver(webhook_settings(settings, cms.url))
            assert second.sent == 2
            with sessions() as session:
                decide(session, find(session, ref), "rejected", editor="cy", note="Pulled")
                again = decide(session, find(session, ref), "rejected", editor="dy", note="Yes")
                assert again.delivery_version is None  # its withdrawal is already queued
                session.commit()
            assert deliver(webhook_settings(settings, cms.url)).sent == 1
    finally:
        engine.dispose()
    items = sorted(cms.processed.values(), key=lambda i: (i["uri"], int(i["version"])))
    assert [(i["uri"].rsplit(":", 2)[-2], i["version"]) for i in items] == [
        ("nm-2025-0001", "1"),
        ("nm-2025-0001", "2"),
        ("nm-2025-0001", "3"),
        ("nm-2025-0002", "2"),
    ]
    v1, v2, v3, b = items
    assert v1["uri"] == v2["uri"] == v3["uri"] != b["uri"]
    assert v1["digitalSourceType"] == AI and v1["type"] == "text" and v1["headline"]
    assert v2["headline"] == "Fixed" and v2["digitalSourceType"] == AI_EDITED
    assert v2["provenance"]["editor"] == "bo" and v2["provenance"]["model_text"] == v1["headline"]
    assert v2["firstcreated"] == v1["versioncreated"] <= v2["versioncreated"]
    assert v3["pubstatus"] == "canceled" and "headline" not in v3
    assert b["headline"] == "B" and cms.repeats == 0 and cms.bad_signatures == 0
    states = {(d.generation_id, d.version): d.state for d in outbox(database_url)}
    assert sorted(states.values()) == ["sent", "sent", "sent", "sent", "superseded"]
    assert len(cms.processed) == 4 and set(cms.accepted.values()) == {1}


def test_a_new_approval_after_a_regenerate_updates_the_same_item(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Approved and sent, then rejected with --regenerate (a withdrawal, v2), regenerated and
    approved again: the new text is v3 of the same uri."""
    settings = generate(sqlite_url, tmp_path, n=1, tasks=("summary",))
    engine = make_engine(sqlite_url)
    sessions = session_factory(engine)
    ref = "nm-2025-0001:summary"
    folder = tmp_path / "cms"
    dropping = settings.model_copy(update={"delivery_folder": folder})
    try:
        with sessions() as session:
            decide(session, find(session, ref), "approved", editor="ana")
            session.commit()
        assert deliver(dropping).sent == 1
        with sessions() as session:
            decide(
                session,
                find(session, ref),
                "rejected",
                editor="bo",
                note="Too long",
                regenerate_job=True,
            )
            session.commit()
        assert deliver(dropping).sent == 1  # the withdrawal goes out before the new text
        with simulator() as sim:
            run_engine(settings.model_copy(update={"openai_base_url": sim.base_url}))
        with sessions() as session:
            output = find(session, ref)
            assert output.review_state == "pending" and output.generation_id != 1
            assert decide(session, output, "approved", editor="bo").delivery_version == 3
            session.commit()
        assert deliver(dropping).sent == 1
    finally:
        engine.dispose()
    items = sorted(
        (json.loads(f.read_text(encoding="utf-8")) for f in folder.iterdir()),
        key=lambda i: int(i["version"]),
    )
    assert [(i["version"], i["pubstatus"]) for i in items] == [
        ("1", "usable"),
        ("2", "canceled"),
        ("3", "usable"),
    ]
    assert len({i["uri"] for i in items}) == 1
    assert items[2]["body_text"] and items[2]["provenance"]["generation_id"] == output.generation_id


def test_the_drop_folder_gets_one_json_file_per_version_written_atomically(
    database_url: str, tmp_path: Path
) -> None:
    """Each approved version is a file named by its webhook-id holding its ninjs; nothing
    half-written or temporary is left, and a second pass finds nothing due."""
    settings = generate(database_url, tmp_path, n=3, tasks=("summary", "headline"))
    assert approve_all(database_url) == 6
    folder = tmp_path / "cms-import"
    dropping = settings.model_copy(update={"delivery_folder": folder})
    summary = deliver(dropping)
    assert (summary.sent, summary.failed, summary.counts["sent"]) == (6, 0, 6)
    files = sorted(folder.iterdir())
    rows = outbox(database_url)
    assert [f.name for f in files] == sorted(f"{d.webhook_id}.json" for d in rows)
    for row in rows:
        item = json.loads((folder / f"{row.webhook_id}.json").read_text(encoding="utf-8"))
        assert (item["uri"], item["version"], item["pubstatus"]) == (row.uri, "1", "usable")
        text = item.get("body_text") or item.get("headline")
        assert text and item["provenance"]["generation_id"] == row.generation_id
        assert item["provenance"]["decision"] == "approved" and item["language"] == "en"
        assert item["provenance"]["checks"] and item["source"]["id"]
    assert deliver(dropping).sent == 0
    umask = os.umask(0)
    os.umask(umask)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o666 & ~umask}  # importable


def test_a_drop_folder_that_cannot_be_written_leaves_the_versions_failing(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A folder that is not a folder: each version failing with the path and the OS error."""
    settings = generate(sqlite_url, tmp_path, n=1, tasks=("summary",))
    approve_all(sqlite_url)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    summary = deliver(settings.model_copy(update={"delivery_folder": blocker / "cms"}))
    assert (summary.sent, summary.failing) == (0, 1)
    (row,) = outbox(sqlite_url)
    assert row.state == "failing" and str(blocker / "cms") in (row.last_error or "")


def test_a_failing_receiver_is_retried_with_backoff_and_the_error_kept(
    database_url: str, tmp_path: Path
) -> None:
    """A 500 leaves the version failing with the error, one attempt and its next attempt
    after the backoff; once the receiver recovers the next pass sends it."""
    settings = generate(database_url, tmp_path, n=1, tasks=("summary",))
    approve_all(database_url)
    with receiver() as cms:
        (row,) = outbox(database_url)
        cms.fail_first[row.webhook_id] = 1
        slow = webhook_settings(
            settings, cms.url, delivery_backoff_s=60.0, delivery_backoff_max_s=600.0
        )
        before = utcnow()
        assert deliver(slow).failed == 1
        (row,) = outbox(database_url)
        assert (row.state, row.attempts, row.last_status) == ("failing", 1, 500)
        assert "HTTP 500" in (row.last_error or "")
        assert row.next_attempt_at >= before + dt.timedelta(seconds=59)
        assert deliver(slow).sent == 0  # not due yet
        fast = webhook_settings(settings, cms.url)
        assert deliver(fast, retry_failing_now=True).sent == 1
    (row,) = outbox(database_url)
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(cms.processed) == 1 and cms.failures_sent[row.webhook_id] == 1


def test_concurrent_claims_take_each_version_once(database_url: str, tmp_path: Path) -> None:
    """Four claimers at once split the due versions between them without overlap."""
    generate(database_url, tmp_path, n=6, tasks=("summary",))
    assert approve_all(database_url) == 6
    engine = make_engine(database_url)
    taken: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claimer(i: int) -> None:
        with session_factory(engine)() as session:
            barrier.wait()
            taken.append([f.id for f in claim_deliveries(session, f"t:{i}", 3, lease_s=60)])

    try:
        threads = [threading.Thread(target=claimer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        engine.dispose()
    ids = [i for batch in taken for i in batch]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6


def test_two_deliverers_at_once_send_each_version_once(database_url: str, tmp_path: Path) -> None:
    """Two deliverers draining one outbox together: every version sent by one of them, none
    twice (no repeat reaches the receiver)."""
    settings = generate(database_url, tmp_path, n=8, tasks=("summary", "headline"))
    assert approve_all(database_url) == 16
    sent: list[int] = []
    with receiver(delay_s=0.05) as cms:
        hook = webhook_settings(settings, cms.url)

        def one() -> None:
            sent.append(deliver(hook).sent)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(sent) == 16 and len(sent) == 2
    assert len(cms.processed) == 16 and cms.repeats == 0 and cms.bad_signatures == 0
    assert {r.state for r in outbox(database_url)} == {"sent"}


def test_delivery_settings_errors_are_one_line_and_never_show_the_secret(
    tmp_path: Path,
) -> None:
    """No target, two targets, a webhook without its secret, a malformed secret, a secret in
    the file: each a ConfigError naming what to set; the secret's value never printed."""
    config = tmp_path / "config"
    config.mkdir()
    base = Settings(config_dir=config)
    with pytest.raises(ConfigError, match="no delivery target"):
        load_delivery_config(base)
    hook = base.model_copy(update={"delivery_webhook_url": "https://cms.example/x"})
    with pytest.raises(ConfigError, match="CONTENTGEN_DELIVERY_SECRET"):
        load_delivery_config(hook)
    leaked = "whsec_not-base64-secret!!"
    bad = hook.model_copy(update={"delivery_secret": SecretStr(leaked)})
    with pytest.raises(ConfigError) as info:
        load_delivery_config(bad)
    assert "not-base64" not in str(info.value) and "base64" in str(info.value)
    both = hook.model_copy(update={"delivery_folder": tmp_path / "x"})
    with pytest.raises(ConfigError, match="not both"):
        load_delivery_config(both)
    (config / "delivery.toml").write_text('[delivery]\nsecret = "whsec_abc"\n')
    with pytest.raises(ConfigError, match=r"delivery\.toml: delivery\.secret") as info:
        load_delivery_config(base)
    assert "whsec_abc" not in str(info.value)
    (config / "delivery.toml").write_text('[delivery]\nfolder = "out"\ntimeout = 3\n')
    with pytest.raises(ConfigError, match=r"delivery\.timeout: unknown key"):
        load_delivery_config(base)
    (config / "delivery.toml").write_text('[delivery]\nfolder = "out"\n')
    assert load_delivery_config(base).folder == Path("out")
    secret_url = "https://bot:pw@cms.example:8443/hooks?token=t0k3n"
    shown = load_delivery_config(
        hook.model_copy(
            update={"delivery_webhook_url": secret_url, "delivery_secret": SecretStr(SECRET)}
        )
    )
    assert shown.target == "webhook https://***@cms.example:8443/hooks?***"
    assert "pw" not in repr(shown) and "t0k3n" not in repr(shown)
    assert "whsec" not in repr(
        load_delivery_config(hook.model_copy(update={"delivery_secret": SecretStr(SECRET)}))
    )
