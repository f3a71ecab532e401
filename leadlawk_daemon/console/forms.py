"""The console's submit form: form fields to a job spec, and the validator's problems to fields.

The form builds the same JSON a client would send to ``POST /jobs`` and hands it to the one job
spec validator (:func:`leadlawk_daemon.jobspec.parse_job_spec`); each problem the validator names
by its path (``limit: …``, ``area.bbox: …``, ``pagespeed.max_score: …``) is shown next to the form
field that path belongs to, and a problem no field owns above the form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from leadlawk_daemon.jobspec import SITE_BUILDERS, SITE_STATUSES, JobSpec, JobSpecError, parse_job_spec

__all__ = ["SITE_BUILDERS", "SITE_STATUSES", "FormResult", "field_of", "spec_from_form"]

# A validator path's first segments -> the form field showing its problem.
_FIELD_OF_PATH = {
    "query": "query",
    "queries": "query",
    "location": "location",
    "locations": "location",
    "limit": "limit",
    "coverage": "coverage",
    "area": "area_kind",
    "area.bbox": "bbox",
    "area.center": "center",
    "area.radius_km": "radius_km",
    "area.polygon": "area_kind",
    "min_rating": "min_rating",
    "min_reviews": "min_reviews",
    "website": "website",
    "pagespeed": "pagespeed",
    "pagespeed.enabled": "pagespeed",
    "pagespeed.strategies": "strategies",
    "pagespeed.max_score": "max_score",
    "max_runtime_s": "max_runtime_s",
    "priority": "priority",
    "independent_only": "independent_only",
    "max_branches": "max_branches",
    "site.status": "site_status",
    "site.built_with": "built_with",
    "site.older_than_year": "older_than_year",
    "site.require_email": "require_email",
    "site.no_https": "no_https",
    "site.no_mobile_viewport": "no_mobile_viewport",
    "site.email": "email_deliverable",
    "site.exclude_free_mail": "exclude_free_mail",
    "id": "",
}
_PATH = re.compile(r"^([A-Za-z_]+(?:\.[A-Za-z_]+)?)(?:\[\d+\])?:\s*(.*)$", re.DOTALL)


@dataclass
class FormResult:
    spec: JobSpec | None = None
    # field name -> its problems; "" for problems no field owns.
    errors: dict[str, list[str]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)


def field_of(problem: str) -> tuple[str, str]:
    """The form field a validator problem belongs to ("" for none) and the problem in words."""
    match = _PATH.match(problem)
    if match is None:
        return "", problem
    path, message = match.group(1), match.group(2)
    for candidate in (path, path.split(".", 1)[0]):
        if candidate in _FIELD_OF_PATH:
            return _FIELD_OF_PATH[candidate], message
    return "", problem


def _text(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name, "").strip()
    return value or None


def _number(result: FormResult, form: Mapping[str, str], name: str, *, integer: bool = False) -> float | int | None:
    text = _text(form, name)
    if text is None:
        return None
    try:
        return int(text) if integer else float(text)
    except ValueError:
        result.add(name, f"must be {'a whole number' if integer else 'a number'} (got {text[:40]!r})")
        return None


def _numbers(result: FormResult, form: Mapping[str, str], name: str, count: int) -> list[float] | None:
    text = _text(form, name)
    if text is None:
        return None
    try:
        values = [float(part) for part in text.replace(";", ",").split(",")]
    except ValueError:
        values = []
    if len(values) != count:
        result.add(name, f"must be {count} numbers separated by commas (got {text[:60]!r})")
        return None
    return values


def spec_from_form(
    form: Mapping[str, str], checked: Mapping[str, list[str]], *, max_bytes: int, max_area_km2: float
) -> FormResult:
    """``form``: one value per field; ``checked``: every value of the check-box groups."""
    result = FormResult(values={**form, **{k: list(v) for k, v in checked.items()}})
    raw: dict[str, Any] = {}
    for name in ("query", "location", "website", "coverage"):
        if (text := _text(form, name)) is not None:
            raw[name] = text
    for name in ("limit", "min_reviews", "priority", "max_branches"):
        if (number := _number(result, form, name, integer=True)) is not None:
            raw[name] = number
    if form.get("independent_only", "") == "on":
        raw["independent_only"] = True
    if (rating := _number(result, form, "min_rating")) is not None:
        raw["min_rating"] = rating
    if (runtime := _number(result, form, "max_runtime_s")) is not None:
        raw["max_runtime_s"] = runtime
    kind = form.get("area_kind", "")
    if raw.get("coverage") == "area" or kind in ("bbox", "near"):
        if kind == "bbox":
            if (box := _numbers(result, form, "bbox", 4)) is not None:
                raw["area"] = {"bbox": box}
            elif "bbox" not in result.errors:
                result.add("bbox", "is required for an area inside a box (south, west, north, east)")
        elif kind == "near":
            center = _numbers(result, form, "center", 2)
            radius = _number(result, form, "radius_km")
            if center is None and "center" not in result.errors:
                result.add("center", "is required for an area around a point (latitude, longitude)")
            if center is not None:
                raw["area"] = {"center": center, **({"radius_km": radius} if radius is not None else {})}
        raw.setdefault("coverage", "area")
    psi: dict[str, Any] = {"enabled": form.get("pagespeed", "") == "on"}
    if strategies := checked.get("strategies"):
        psi["strategies"] = list(strategies)
    if (score := _number(result, form, "max_score")) is not None:
        psi["max_score"] = score
    raw["pagespeed"] = psi
    site: dict[str, Any] = {}
    for flag in ("require_email", "no_https", "no_mobile_viewport"):
        if form.get(flag, "") == "on":
            site[flag] = True
    if statuses := checked.get("site_status"):
        site["status"] = list(statuses)
    if builders := checked.get("built_with"):
        site["built_with"] = list(builders)
    if (year := _number(result, form, "older_than_year", integer=True)) is not None:
        site["older_than_year"] = year
    if form.get("email_deliverable", "") == "on":  # email verdicts (docs/email-verdicts.md)
        site["email"] = "deliverable"
    if form.get("exclude_free_mail", "") == "on":
        site["exclude_free_mail"] = True
    if site:
        raw["site"] = site
    try:
        spec = parse_job_spec(raw, max_bytes, max_area_km2=max_area_km2)
    except JobSpecError as exc:
        for problem in exc.problems:
            name, message = field_of(problem)
            if name == "area_kind" and ("bbox" in result.errors or "center" in result.errors):
                continue  # "area is required": the box or point the form could not read, said beside it
            if name not in result.errors or message not in result.errors[name]:
                result.add(name, message if name else problem)
        return result
    if result.errors:
        return result
    result.spec = spec
    return result
