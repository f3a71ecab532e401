"""``leadlawk demo`` reads the leads' websites through the websites replica: its table shows the
primary email with its verdict and a site verdict, and the export carries them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_table_shows_emails_and_site_verdicts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PAGESPEED_API_KEY")}
    result = subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "demo"], cwd=tmp_path, capture_output=True, text=True,
        timeout=120, env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[-4:] == ["site", "email", "verdict", "qualified"]
    site_at = lines[0].index("  site ") + 2  # not the "site" in "website"
    email_at = lines[0].index("  email ") + 2
    verdict_at = lines[0].index("  verdict ") + 2
    rows = [line for line in lines[2:] if line[:3].strip().isdigit()]
    verdicts = {line[site_at:email_at].split()[0] for line in rows if line[site_at:email_at].strip()}
    assert "ok" in verdicts
    assert verdicts <= {"ok", "dead", "parked", "blocked"}
    assert any("@" in line[email_at:verdict_at] for line in rows)
    # The primary address with its verdict (docs/email-verdicts.md): always a deliverable domain.
    shown = [line[verdict_at:].split()[0] for line in rows if "@" in line[email_at:verdict_at]]
    assert "deliverable" in shown
    assert set(shown) <= {"deliverable", "no_mail_domain", "disposable"}
    assert "websites replica (proxy) at http://127.0.0.1:" in result.stderr
    exported = subprocess.run(
        [sys.executable, "-m", "leadlawk_daemon", "export", "--format", "jsonl"], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env={**env, "PYTHONPATH": str(ROOT)},
    )
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert '"site_status":"ok"' in exported.stdout
    assert '"site_emails":"' in exported.stdout
    assert '"primary_email_status":"deliverable_domain"' in exported.stdout
