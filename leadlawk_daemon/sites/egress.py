"""The egress breaker: many different sites unreachable in a row means our network is down.

One site that does not answer is a fact about that site (dead). But when ``failure_threshold``
*different* sites in a row cannot be reached at all (DNS, refused, timeout) and none answered in
between, the common factor is our own egress (the network, or the proxy): that is an outage, and
the caller should pause rather than record every lead's site as dead. A site failing again while
the streak runs cannot tell us anything new and is not counted. When the breaker opens, the
reports of the streak are forgotten by ``on_outage`` (they were about us, not the sites).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from leadlawk_daemon.resilience.breaker import BreakerOpenError, BreakerState, CircuitBreaker
from leadlawk_daemon.sites.fetch import ProxyUnreachable
from leadlawk_daemon.sites.report import SiteReport

__all__ = ["EgressGuard", "EgressOutage"]


class EgressOutage(Exception):
    """Our own egress is failing (the breaker is open): retry the site later; it is not dead."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Unreachable(Exception):
    def __init__(self, report: SiteReport) -> None:
        super().__init__(report.reason or "unreachable")
        self.report = report


class _NotEgress:
    """An error of ``inspect()`` that says nothing about our egress, carried past the breaker."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class EgressGuard:
    def __init__(self, breaker: CircuitBreaker, on_outage: Callable[[list[str]], None] | None = None) -> None:
        self.breaker = breaker
        self._streak: list[str] = []
        self._on_outage = on_outage

    async def run(self, site: str, inspect: Callable[[], Awaitable[SiteReport]]) -> SiteReport:
        """``inspect()`` through the breaker; raises :class:`EgressOutage` while it is open."""

        async def attempt() -> SiteReport | _NotEgress:
            try:
                report = await inspect()
            except ProxyUnreachable:
                raise
            except Exception as exc:
                # A URL, a page or a charset that cannot be read, or a bug of ours: nothing about
                # our network, so it passes the breaker uncounted (eight bogus charsets in a row
                # once opened it and paused every job).
                return _NotEgress(exc)
            if report.unreachable:
                raise _Unreachable(report)
            return report

        if site in self._streak:
            self._refuse_if_open()
            return await inspect()
        try:
            outcome = await self.breaker.call(attempt)
        except _Unreachable as exc:
            self._streak.append(site)
            if self.breaker.state is BreakerState.OPEN:  # this failure opened it
                self._opened()
            return exc.report
        except BreakerOpenError as exc:
            raise EgressOutage(f"site egress is failing: {self.breaker.name} open", exc.retry_after) from None
        if isinstance(outcome, _NotEgress):
            raise outcome.error
        self._streak.clear()
        return outcome

    def _refuse_if_open(self) -> None:
        remaining = self.breaker.seconds_until_trial()
        if remaining > 0:
            raise EgressOutage(f"site egress is failing: {self.breaker.name} open", remaining)

    def _opened(self) -> None:
        streak, self._streak = self._streak, []
        if self._on_outage is not None:
            self._on_outage(streak)
