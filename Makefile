# The two commands the README promises, and the pieces they are made of.
.PHONY: demo check setup lint types test test-fast screenshot chaos fuzz bench

PYTEST = .venv/bin/pytest -q -p no:cacheprovider
# The suite's worker processes (pytest-xdist). Its tests wait on daemons, browsers and timers as much
# as they compute: on 2 cores, 3 workers kept the CPUs 85 % busy and 4 kept them 92 % busy, 15 % sooner
# (docs/testing.md has the figures).
TEST_WORKERS ?= 4
# Where make test-fast points the test servers: nothing listens there, so a unit test that
# reached for PostgreSQL or Redis would fail instead of quietly being slow.
NO_SERVICES = LEADLAWK_TEST_PG=postgresql://postgres@127.0.0.1:9/none LEADLAWK_TEST_REDIS=redis://127.0.0.1:9/0

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

# A module that shares one daemon or browser across its tests keeps them on one worker (loadgroup,
# the xdist_group marks tests/conftest.py applies); every other test goes wherever a worker is free.
# Then the tests marked alone (they measure the loop's lag) and linearity (CPU-time ratios of a parser at a
# size and its double, which three workers' contention pushed past 2.5x), one at a time on a quiet machine.
test:
	$(PYTEST) -n $(TEST_WORKERS) --dist loadgroup -m "not matrix and not alone and not long and not linearity" --durations=15
	$(PYTEST) -m "(alone or linearity) and not matrix and not long"

# The unit tests alone (marked fast by tests/conftest.py): no daemon, browser, PostgreSQL or Redis.
# Property and fuzz tests run a quarter of their examples here (15 per fuzz test); make check runs all.
test-fast:
	$(NO_SERVICES) LEADLAWK_PROPERTY_SHARE=0.25 LEADLAWK_FUZZ_EXAMPLES=15 $(PYTEST) -n 2 -m fast

# Refresh docs/console.png, the README's picture of the console; test runs never write it.
screenshot: setup
	LEADLAWK_SCREENSHOT=1 $(PYTEST) tests/test_console.py -k submitted_through_the_form

# The fault-injection suite, with the whole fault matrix (every fault, every dependency, short and long),
# and the long scenarios (mark long: the egress pool's proxy faults and fleet budget, a simulated day of
# schedules across three daemons), which make check leaves out.
chaos: setup
	.venv/bin/pytest -q -m "chaos or matrix or long" -p no:cacheprovider

# The fuzz suites (tests/test_fuzz_*.py: every parser of outside text) with 2,000 generated inputs per
# property; `make check` runs the same suites with bounded examples (tests/linearity.py's default).
fuzz: setup
	LEADLAWK_FUZZ_EXAMPLES=2000 .venv/bin/pytest -q -p no:cacheprovider tests/test_fuzz_*.py

bench: setup
	.venv/bin/python bench/actors.py
