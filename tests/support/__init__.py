"""What several test modules share: fixtures (imported by ``tests/conftest.py``) and their helpers."""
