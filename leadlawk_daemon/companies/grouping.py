"""Leads into companies: a union-find over grouping keys, and ids that stay put across jobs.

Keys: ``domain:<registrable domain>`` of the lead's website (never a shared host's), and
``phone:<E.164>`` when that phone is listed at two or more different addresses (one phone at one
address is one business listed twice, or a clinic's several practitioners: no chain). Leads that
share a key are one company; a lead with no key is a company of its own.

Ids (docs/chains.md, "Stable ids"): a group whose leads already had ids keeps the id most of them
had (ties: the smallest id), so a company keeps its id as long as it keeps most of its branches. A
group with no id yet takes ``co_`` + 16 hex digits of SHA-256 of its smallest key, the same on every
machine. When a later job joins two groups, the merged group keeps the id of the larger, and the
other id is recorded as an alias of it (:attr:`Grouping.merged`), so an id a CRM was given still
leads somewhere. Grouping is deterministic: the same leads and the same previous ids give the same
answer, whatever their order.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from leadlawk_daemon.companies.domains import company_domain

__all__ = ["Assignment", "GroupedBy", "Grouping", "Member", "company_id_of", "group_companies"]

GroupedBy = Literal["domain", "phone", "domain+phone"]


@dataclass(frozen=True, slots=True)
class Member:
    """What grouping reads of one lead."""

    place_id: str
    website: str | None = None
    phone_e164: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    company_id: str
    company_size: int
    """Branches found: the leads of the company (1: independent)."""
    grouped_by: GroupedBy | None
    """Which kinds of key joined its leads; ``None`` for a company of one."""


@dataclass(slots=True)
class Grouping:
    assignments: dict[str, Assignment] = field(default_factory=dict)
    """Each lead's company, by place id."""
    merged: dict[str, str] = field(default_factory=dict)
    """Ids no lead holds any more → the id of the company that took most of their leads."""


def company_id_of(key: str) -> str:
    return "co_" + hashlib.sha256(key.encode()).hexdigest()[:16]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        root = self.parent.setdefault(item, item)
        while root != self.parent[root]:
            root = self.parent[root]
        while item != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # The smaller root wins: the structure (not only the answer) is order-independent.
            self.parent[max(ra, rb)] = min(ra, rb)


def _address_key(address: str | None, place_id: str) -> str:
    # An unknown address (a service-area business) is its own: it is no evidence of one place.
    return " ".join(address.casefold().split()) if address else f"?{place_id}"


def _keys(members: Iterable[Member]) -> dict[str, list[str]]:
    """Each lead's grouping keys."""
    members = list(members)
    by_phone: dict[str, set[str]] = defaultdict(set)
    for m in members:
        if m.phone_e164:
            by_phone[m.phone_e164].add(_address_key(m.address, m.place_id))
    keys: dict[str, list[str]] = {}
    for m in members:
        mine = []
        domain = company_domain(m.website)
        if domain is not None:
            mine.append(f"domain:{domain}")
        if m.phone_e164 and len(by_phone[m.phone_e164]) >= 2:
            mine.append(f"phone:{m.phone_e164}")
        keys[m.place_id] = mine
    return keys


def group_companies(members: Iterable[Member], previous: Mapping[str, str] | None = None) -> Grouping:
    """Every lead's company. ``previous``: the ids the leads were given before (place id → company
    id), which the groups keep where they can. CPU-bound and linear in the leads (near enough:
    union-find with path compression): call it off the event loop for a large store."""
    previous = previous or {}
    keys = _keys(members)
    uf = _UnionFind()
    for place_id, mine in keys.items():
        uf.find(f"place:{place_id}")
        for key in mine:
            uf.union(f"place:{place_id}", key)
    components: dict[str, list[str]] = defaultdict(list)
    for place_id in keys:
        components[uf.find(f"place:{place_id}")].append(place_id)

    def smallest_key(leads: list[str]) -> str:
        found = [k for p in leads for k in keys[p]]
        return min(found) if found else f"place:{min(leads)}"

    groups = sorted(components.values(), key=lambda leads: (-len(leads), smallest_key(leads)))
    out = Grouping()
    claimed: dict[str, list[str]] = {}
    for leads in groups:
        held = Counter(previous[p] for p in leads if p in previous)
        ranked = sorted(held, key=lambda cid: (-held[cid], cid))
        chosen = next((cid for cid in ranked if cid not in claimed), None)
        if chosen is None:
            candidates = sorted({k for p in leads for k in keys[p]} | {f"place:{p}" for p in leads})
            fresh = (company_id_of(k) for k in [smallest_key(leads), *candidates])
            chosen = next(cid for cid in fresh if cid not in claimed)
        claimed[chosen] = leads
        kinds = {k.partition(":")[0] for p in leads for k in keys[p]} if len(leads) > 1 else set()
        grouped_by: GroupedBy | None = (
            "domain+phone"
            if kinds == {"domain", "phone"}
            else "domain"
            if "domain" in kinds
            else "phone"
            if "phone" in kinds
            else None
        )
        for p in leads:
            out.assignments[p] = Assignment(chosen, len(leads), grouped_by)
    for old in sorted(set(previous.values()) - set(claimed)):
        heirs = Counter(
            out.assignments[p].company_id for p, cid in previous.items() if cid == old and p in out.assignments
        )
        if heirs:
            out.merged[old] = min(heirs, key=lambda cid: (-heirs[cid], cid))
    return out
