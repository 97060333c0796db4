"""`mailer demo` against a `mailer dev` stack: deliveries, bounces, a complaint and the
suppressions come back through the local mailbox simulator, SNS webhook and events worker,
and a reader unsubscribes by mail through the emulator's receiving path."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from mailer.config import Settings
from mailer.local.demo import run_demo
from mailer.local.devstack import DevStack, StackConfig
from tests.fixtures.api import free_port


def test_demo_shows_the_feedback_loop_close(
    settings: Settings, _migrated: None, tmp_path: Path
) -> None:
    # the test PostgreSQL and Redis stand for the embedded ones; SES is the stack's own
    config = StackConfig(
        base_dir=tmp_path,
        api_port=free_port(),
        ses_port=free_port(),
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )
    stack = DevStack(config, log=lambda line: None)
    output = io.StringIO()
    try:
        info = stack.start()
        assert info["sns_cert_dir"].startswith(str(tmp_path))
        code = run_demo(tmp_path, contacts=60, timeout=180, console=Console(file=output, width=200))
    finally:
        stack.stop()
    text = output.getvalue()
    assert code == 0, text
    assert "feedback loop closed: 3 addresses suppressed" in text
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in text.splitlines()
        if line.count("│") == 3
    }
    assert rows["delivered"] == "58" and rows["bounced"] == "2" and rows["complained"] == "1"
    suppressed = [line for line in text.splitlines() if "@simulator.amazonses.com" in line]
    assert any("bounce+" in s and "all" in s for s in suppressed)
    assert any("suppressionlist+" in s and "OnAccountSuppressionList" in s for s in suppressed)
    assert any("complaint+" in s and "marketing" in s for s in suppressed)
    # unsubscribe by mail: a reader answered the campaign's List-Unsubscribe mailto, the
    # emulator received it as an SES receipt rule would, and the webhook and the events
    # worker unsubscribed exactly that contact
    [line] = [t for t in text.splitlines() if t.startswith("unsubscribe by mail: ")]
    reader = line.split()[3]
    # the run's own success@ address: a kept database loses no demo contact to a run
    assert reader.startswith("success+demo") and reader.endswith("@simulator.amazonses.com")
    assert "wrote to unsubscribe+…@unsubscribe.mailer.test" in line
    [row] = [t for t in text.splitlines() if reader in t and t.count("│") == 5]
    assert [c.strip() for c in row.split("│")[1:5]] == [reader, "marketing", "unsubscribe", "1"]
    assert f"{reader} unsubscribed by mail" in text
    # outgoing webhooks: a receiver of the demo's heard the test event and the campaign
    # (the worker's webhooks queue delivers to loopback under `mailer dev`), all signed
    assert "every signature verified" in text, text
    assert rows["webhook.test"] == "1" and rows["campaign.completed"] == "1"
    assert rows["message.sent"] == "60" and rows["campaign.started"] == "1"
