"""Submitting a job to the durable stream: what ``leadlawk submit`` does when Redis is configured."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis

from leadlawk_daemon.intake.stream import FIELD, stream_key
from leadlawk_daemon.jobspec import DEFAULT_MAX_AREA_KM2, parse_job_spec

__all__ = ["submit_to_stream"]

DEFAULT_MAX_BYTES = 65_536


async def submit_to_stream(
    redis: aioredis.Redis,
    prefix: str,
    spec_dict: Mapping[str, Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_area_km2: float = DEFAULT_MAX_AREA_KM2,
) -> str:
    """XADD a job spec; returns its id. The spec is validated here first (raising
    :class:`~leadlawk_daemon.jobspec.JobSpecError`) so a user hears about a typo at once, and it
    is sent with its id filled in, so the caller can follow the job it just submitted.
    """
    spec = parse_job_spec(spec_dict, max_bytes, max_area_km2=max_area_km2)
    await redis.xadd(stream_key(prefix), {FIELD: orjson.dumps(spec.to_dict())})
    return spec.id
