"""The egress policy where it cannot be talked around: in the connector, on the addresses connected to.

A check of the URL alone is not enough: a public name can resolve to 127.0.0.1, and a name checked
once can answer differently when resolved again to connect (DNS rebinding). So the check sits in
the two places every direct connection passes:

* :class:`PolicyResolver` wraps the real resolver and drops every answer the policy refuses
  (refusing the name when none is left). aiohttp connects to exactly the answers its resolver
  returned, including those it caches and those happy eyeballs races: they are the checked ones.
* the connector's socket factory checks the address each socket is about to connect to, so an IP
  literal (which aiohttp never hands to a resolver) and anything a future aiohttp resolves some
  other way meet the same rule before ``connect()``.

Through a forward proxy every socket goes to the proxy, which is configuration, not data: the
connector is then a plain one, and the policy is applied to each URL's host before it is sent
(:meth:`EgressPolicy.check_host`); the proxy resolves names and must refuse private answers itself
(``docs/egress-policy.md``).
"""

from __future__ import annotations

import socket
from ipaddress import ip_address
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.connector import SocketFactoryType

from leadlawk_daemon.sites.policy import EgressPolicy, EgressRefused

__all__ = ["PolicyResolver", "policy_connector"]


class PolicyResolver(AbstractResolver):
    """``inner``'s answers, less those the policy refuses; :class:`EgressRefused` when none is left.
    Closes ``inner`` only when it made it (aiohttp's default resolver)."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._owns_inner = inner is None
        self.inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        refused: list[str] = []
        for answer in answers:
            why = self.policy.refusal(ip_address(answer["host"].split("%", 1)[0]))
            if why is None:
                kept.append(answer)
            else:
                refused.append(why)
        if not kept and refused:
            raise EgressRefused(f"{host[:80]} → {refused[0]}")
        return kept

    async def close(self) -> None:
        if self._owns_inner:
            await self.inner.close()


def _guarded_socket_factory(policy: EgressPolicy) -> SocketFactoryType:
    def open_socket(addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, address = addr_info
        policy.check_address(ip_address(str(address[0]).split("%", 1)[0]))
        return socket.socket(family=family, type=kind, proto=proto)

    return open_socket


def policy_connector(*, limit: int, resolver: PolicyResolver | None) -> aiohttp.TCPConnector:
    """A connector that connects only where ``resolver``'s policy allows; with no resolver, one
    for a forward proxy (every socket goes to the proxy; the URLs are checked before they are
    sent). The caller closes ``resolver`` after the connector: aiohttp closes only its own."""
    if resolver is None:
        return aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300)
    return aiohttp.TCPConnector(
        limit=limit, ttl_dns_cache=300, resolver=resolver, socket_factory=_guarded_socket_factory(resolver.policy),
    )
