"""Digests of finished jobs, delivered to configured destinations (docs/deliveries.md).

:mod:`.ledger` keeps the outbox and each schedule's ledger; :mod:`.digest` says what a digest
holds; :mod:`.signing` signs and verifies a webhook body; :mod:`.webhook`, :mod:`.email` and
:mod:`.filedrop` send one; :mod:`.service` makes and sends them in the daemon.
"""
