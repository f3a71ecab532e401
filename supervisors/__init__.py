"""The supervisor behaviours: OTP strategies, restart types, intensity and backoff."""
