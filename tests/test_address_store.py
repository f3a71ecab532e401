"""Address parts in the store, on both backends: stored, exported, and kept as one group when a lead
is seen again (Google's parts are never mixed with, or replaced by, a parse of another page's line)."""

from __future__ import annotations

from typing import Any

from leadlawk_daemon.store import Store
from tests.test_store import clock, db_url, listing, store  # noqa: F401  # both backends, a database per test

PARTS = ("street", "locality", "region", "postal_code", "country_code", "address_source", "kind")
GOOGLE = {"street": "Eakou 74", "locality": "Ilion", "region": None, "postal_code": "131 22", "country_code": "GR",
          "address_source": "google"}  # fmt: skip
PARSED = {"street": "Eakou 74", "locality": "Ilio", "region": "Attica", "postal_code": None, "country_code": "GR",
          "address_source": "parsed"}  # fmt: skip


async def _row(store: Store, place_id: str) -> dict[str, Any]:  # noqa: F811
    rows = {row["place_id"]: row for row in await store.lead_rows_for_export()}
    return {name: rows[place_id][name] for name in PARTS}


async def test_parts_are_stored_and_exported(store: Store) -> None:  # noqa: F811
    await store.upsert_leads([listing(1, **GOOGLE, phone_e164="+302102616578")])
    assert await _row(store, "ChIJ000001") == {**GOOGLE, "kind": "business"}
    await store.upsert_leads([listing(2, name="5024 S 110th St", kind="address")])
    assert (await _row(store, "ChIJ000002"))["kind"] == "address"


async def test_a_parse_seen_later_does_not_replace_or_mix_with_googles_parts(store: Store) -> None:  # noqa: F811
    await store.upsert_leads([listing(1, **GOOGLE)])
    await store.upsert_leads([listing(1, **PARSED)])
    assert await _row(store, "ChIJ000001") == {**GOOGLE, "kind": "business"}
    # A card that shows no address at all changes nothing either.
    await store.upsert_leads([listing(1)])
    assert await _row(store, "ChIJ000001") == {**GOOGLE, "kind": "business"}


async def test_googles_parts_seen_later_replace_a_parse_whole(store: Store) -> None:  # noqa: F811
    await store.upsert_leads([listing(1, **PARSED)])
    await store.upsert_leads([listing(1, **GOOGLE)])
    # The parse's region is not kept beside Google's parts, which have none.
    assert await _row(store, "ChIJ000001") == {**GOOGLE, "kind": "business"}
    newer = {**GOOGLE, "region": "Attica"}
    await store.upsert_leads([listing(1, **newer)])
    assert await _row(store, "ChIJ000001") == {**newer, "kind": "business"}
