# The two commands the README promises, and the pieces they are made of.
.PHONY: demo check setup lint types test chaos fuzz bench

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

# The fuzz suites (tests/test_fuzz_*.py: every parser of outside text) with 2,000 generated inputs per
# property; `make check` runs the same suites with bounded examples (tests/linearity.py's default).
fuzz: setup
	LEADLAWK_FUZZ_EXAMPLES=2000 .venv/bin/pytest -q -p no:cacheprovider tests/test_fuzz_*.py

bench: setup
	.venv/bin/python bench/actors.py
