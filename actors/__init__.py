"""The actor base: bounded mailboxes that survive restarts, redelivery and dead letters."""
