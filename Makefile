# The two commands the README promises, and the pieces they are made of.
.PHONY: demo check setup lint types test chaos bench

# Set up and run the main job: the offline demo, end to end.
demo: setup
	.venv/bin/leadlawk demo

# Set up and run every check: lint, types, the whole test suite.
check: setup lint types test

setup:
	@scripts/setup.sh

lint:
	.venv/bin/ruff check .

types:
	.venv/bin/mypy

test:
	.venv/bin/pytest -q -p no:cacheprovider -m "not matrix"

# The fault-injection suite, with the whole fault matrix (every fault, every dependency, short and long).
chaos: setup
	.venv/bin/pytest -q -m "chaos or matrix" -p no:cacheprovider

bench: setup
	.venv/bin/python bench/actors.py
