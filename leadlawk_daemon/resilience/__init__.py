"""Circuit breaker and retry, on an injected clock."""
