"""``app.json`` (Heroku-style one-click deployment): what can be checked without the platform.

Checked: it is JSON; it names PostgreSQL and Redis add-ons whose attachments become DATABASE_URL and
REDIS_URL, a buildpack route to a Chromium that LEADLAWK_CHROMIUM points into, a web process like the
Procfile's, and every environment variable docs/interfaces.md lists is either set by the platform (PORT),
by an add-on, or declared here. Not checked: that the platform accepts it (no network here)."""

from __future__ import annotations

import json
import re

from leadlawk_daemon.settings import ENV_KEYS
from tests.daemon_process import ROOT

# The twelve-factor variables the daemon reads (docs/interfaces.md "Configuration").
INTERFACE_VARIABLES = set(ENV_KEYS)
PLATFORM_SET = {"PORT"}


def test_app_json_is_valid_and_covers_the_deployment() -> None:
    app = json.loads((ROOT / "app.json").read_text(encoding="utf-8"))
    assert {"name", "description", "buildpacks", "formation", "addons", "env", "scripts"} <= set(app)

    plans = {addon["plan"].split(":")[0]: addon.get("as") for addon in app["addons"]}
    assert plans == {"heroku-postgresql": "DATABASE", "heroku-redis": "REDIS"}
    from_addons = {f"{name}_URL" for name in plans.values()}

    buildpacks = [pack["url"] for pack in app["buildpacks"]]
    assert buildpacks[-1] == "heroku/python"  # the last buildpack sets the process's language
    assert any("chrome" in url for url in buildpacks[:-1])
    assert app["env"]["LEADLAWK_CHROMIUM"]["value"].startswith("/app/.chrome-for-testing/")

    declared = set(app["env"])
    assert declared | from_addons | PLATFORM_SET == INTERFACE_VARIABLES
    assert not declared & (from_addons | PLATFORM_SET)  # never overriding what the platform sets
    for name, spec in app["env"].items():
        assert spec["description"], name
    # A console open to the internet needs its token: generated, never a value in the repository.
    assert app["env"]["LEADLAWK_ADMIN_TOKEN"]["generator"] == "secret"
    assert "value" not in app["env"]["LEADLAWK_ADMIN_TOKEN"]
    assert "value" not in app["env"]["PAGESPEED_API_KEY"]

    procfile = (ROOT / "Procfile").read_text(encoding="utf-8")
    assert re.search(r"^web: leadlawk run$", procfile, re.MULTILINE)
    assert "web" in app["formation"]
    assert app["scripts"]["postdeploy"] == "leadlawk migrate"

