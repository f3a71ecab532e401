"""The job spec as a client meets it: what is accepted, what defaults mean, how every rejection reads."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadlawk_daemon.jobspec import (
    DEFAULT_LIMIT,
    DEFAULT_MAX_RUNTIME_S,
    JobSpec,
    JobSpecError,
    PageSpeedSpec,
    new_job_id,
    parse_job_spec,
)
from leadlawk_daemon.logs import register_secret
from tests.linearity import examples

LIMIT = 65536


def problems_of(raw: Any, max_bytes: int = LIMIT) -> list[str]:
    with pytest.raises(JobSpecError) as caught:
        parse_job_spec(raw, max_bytes)
    return caught.value.problems


def test_the_documented_example_is_accepted_as_written() -> None:
    raw = (
        b'{"id": "optional-client-key", "query": "plumbers", "location": "Omaha, NE", "limit": 50,'
        b' "min_rating": 4.0, "min_reviews": 3, "website": "any",'
        b' "pagespeed": {"enabled": true, "strategies": ["mobile"], "max_score": 50}, "max_runtime_s": 1800}'
    )
    spec = parse_job_spec(raw, LIMIT)
    assert spec == JobSpec(
        id="optional-client-key",
        query="plumbers",
        location="Omaha, NE",
        limit=50,
        min_rating=4.0,
        min_reviews=3,
        website="any",
        pagespeed=PageSpeedSpec(enabled=True, strategies=("mobile",), max_score=50.0),
        max_runtime_s=1800.0,
    )
    assert not spec.is_batch
    assert spec.children() == ()


def test_a_bare_query_gets_the_documented_defaults_and_a_fresh_id() -> None:
    first = parse_job_spec('{"query": "plumbers"}', LIMIT)
    second = parse_job_spec('{"query": "plumbers"}', LIMIT)
    assert first.limit == DEFAULT_LIMIT == 50
    assert first.website == "any"
    assert first.pagespeed == PageSpeedSpec(enabled=True, strategies=("mobile",), max_score=None)
    assert first.max_runtime_s == DEFAULT_MAX_RUNTIME_S
    assert (first.location, first.min_rating, first.min_reviews) == (None, None, None)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", first.id)
    assert first.id != second.id


def test_generated_ids_sort_by_creation_time() -> None:
    ids = [new_job_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_a_dict_from_an_http_handler_is_validated_the_same_way() -> None:
    spec = parse_job_spec({"query": "dentists", "website": "required", "limit": 7}, LIMIT)
    assert (spec.query, spec.website, spec.limit) == ("dentists", "required", 7)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{}", ["query: is required (or 'queries' for a batch)"]),
        ('{"query": ""}', ['query: must not be empty (got "")']),
        ('{"query": "   "}', ['query: must not be empty (got "   ")']),
        ('{"query": 5}', ["query: must be a string, not integer (got 5)"]),
        ('{"query": "' + "x" * 201 + '"}', ["query: must be at most 200 characters (got 201)"]),
        ('{"query": "a", "location": 3}', ["location: must be a string, not integer (got 3)"]),
        ('{"query": "a", "limit": 900}', ["limit: must be between 1 and 500 (got 900)"]),
        ('{"query": "a", "limit": 0}', ["limit: must be between 1 and 500 (got 0)"]),
        ('{"query": "a", "limit": "5"}', ['limit: must be an integer, not string (got "5")']),
        ('{"query": "a", "limit": 5.0}', ["limit: must be an integer, not number (got 5.0)"]),
        ('{"query": "a", "limit": true}', ["limit: must be an integer, not boolean (got true)"]),
        ('{"query": "a", "min_rating": 5.5}', ["min_rating: must be between 0 and 5 (got 5.5)"]),
        ('{"query": "a", "min_rating": "4"}', ['min_rating: must be a number, not string (got "4")']),
        ('{"query": "a", "min_reviews": -1}', ["min_reviews: must be between 0 and 1000000000 (got -1)"]),
        # beyond 64 bits JSON integers decode as numbers, and are refused as such
        (
            '{"query": "a", "min_reviews": 99999999999999999999999}',
            ["min_reviews: must be an integer, not number (got 1e+23)"],
        ),
        (
            '{"query": "a", "website": "maybe"}',
            ["website: must be one of 'any', 'required', 'none' (got \"maybe\")"],
        ),
        ('{"query": "a", "pagespeed": true}', ["pagespeed: must be an object, not boolean (got true)"]),
        (
            '{"query": "a", "pagespeed": {"enabled": "yes"}}',
            ['pagespeed.enabled: must be true or false, not string (got "yes")'],
        ),
        (
            '{"query": "a", "pagespeed": {"strategies": []}}',
            ["pagespeed.strategies: must be a non-empty array of 'mobile' and/or 'desktop' (got [])"],
        ),
        (
            '{"query": "a", "pagespeed": {"strategies": ["mobile", "tablet"]}}',
            ["pagespeed.strategies[1]: must be 'mobile' or 'desktop' (got \"tablet\")"],
        ),
        (
            '{"query": "a", "pagespeed": {"strategies": ["mobile", "mobile"]}}',
            ['pagespeed.strategies[1]: is a duplicate (got "mobile")'],
        ),
        (
            '{"query": "a", "pagespeed": {"max_score": 101}}',
            ["pagespeed.max_score: must be between 0 and 100 (got 101)"],
        ),
        ('{"query": "a", "pagespeed": {"turbo": 1}}', ["pagespeed.turbo: unknown field"]),
        (
            '{"query": "a", "max_runtime_s": 0}',
            ["max_runtime_s: must be greater than 0 and at most 86400 (got 0)"],
        ),
        (
            '{"query": "a", "max_runtime_s": 100000}',
            ["max_runtime_s: must be between 0 and 86400 (got 100000)"],
        ),
        (
            '{"query": "a", "id": "has space"}',
            ["id: must be 1-64 characters of letters, digits, '_', '.' or '-' (got \"has space\")"],
        ),
        (
            '{"query": "a", "id": ""}',
            ["id: must be 1-64 characters of letters, digits, '_', '.' or '-' (got \"\")"],
        ),
        ('{"query": "a", "id": 12}', ["id: must be a string, not integer (got 12)"]),
        ('{"query": "a", "colour": "red"}', ["colour: unknown field"]),
        ('{"query": "a", "queries": ["b"]}', ["query: give either 'query' or 'queries', not both"]),
        (
            '{"query": "a", "location": "x", "locations": ["y"]}',
            ["location: give either 'location' or 'locations', not both"],
        ),
        ('{"queries": []}', ["queries: must hold between 1 and 100 entries (got 0)"]),
        ('{"queries": ["a", "a"]}', ['queries[1]: is a duplicate (got "a")']),
        ('{"queries": ["a", 2]}', ["queries[1]: must be a string, not integer (got 2)"]),
        (
            '{"query": "a", "locations": "Omaha"}',
            ['locations: must be an array of strings, not string (got "Omaha")'],
        ),
        ("[1, 2]", ["the job spec must be a JSON object (got array)"]),
        ('"plumbers"', ["the job spec must be a JSON object (got string)"]),
        ("null", ["the job spec must be a JSON object (got null)"]),
        (
            "",
            ["the job spec is not valid JSON: Input is a zero-length, empty document: line 1 column 1 (char 0)"],
        ),
        (b"\xff\xfe{}", ["the job spec is not UTF-8 text (bad byte at offset 0)"]),
    ],
)
def test_each_kind_of_bad_input_names_its_problem(raw: str | bytes, expected: list[str]) -> None:
    assert problems_of(raw) == expected


def test_broken_json_says_where() -> None:
    (problem,) = problems_of('{"query": "a",')
    assert problem.startswith("the job spec is not valid JSON:")
    assert "line 1" in problem


def test_every_problem_is_named_at_once() -> None:
    raw = {"limit": 900, "website": "x", "colour": 1, "pagespeed": {"max_score": -1, "strategies": ["x"]}}
    problems = problems_of(raw)
    assert sorted(p.split(":")[0] for p in problems) == sorted(
        [
            "colour",
            "query",
            "limit",
            "website",
            "pagespeed.strategies[0]",
            "pagespeed.max_score",
        ]
    )


def test_oversized_input_is_rejected_before_it_is_parsed() -> None:
    raw = b'{"query": "' + b"a" * 70_000 + b'"}'
    with pytest.raises(JobSpecError) as caught:
        parse_job_spec(raw, LIMIT)
    assert caught.value.too_large
    assert caught.value.problems == [f"the job spec is {len(raw)} bytes; the limit is {LIMIT} bytes"]
    # the limit is configurable: the same spec passes a larger one
    assert parse_job_spec(b'{"query": "a"}', 14).query == "a"
    assert problems_of(b'{"query": "a"}', 13) == ["the job spec is 14 bytes; the limit is 13 bytes"]


def test_a_secret_in_a_rejected_value_is_redacted() -> None:
    register_secret("s3cr3t-pagespeed-key")
    (problem,) = problems_of({"query": "a", "website": "https://x.test/?key=s3cr3t-pagespeed-key"})
    assert "s3cr3t" not in problem


def test_huge_offending_values_are_shortened_in_messages() -> None:
    (problem,) = problems_of({"query": "a", "website": "w" * 5000})
    assert len(problem) < 200


def test_a_batch_expands_into_one_child_per_pair_with_derived_ids() -> None:
    spec = parse_job_spec(
        {
            "id": "night-7",
            "queries": ["plumbers", "roofers"],
            "locations": ["Omaha, NE", "Lincoln, NE"],
            "limit": 9,
        },
        LIMIT,
    )
    assert spec.is_batch
    children = spec.children()
    assert [(c.id, c.query, c.location) for c in children] == [
        ("night-7.0", "plumbers", "Omaha, NE"),
        ("night-7.1", "plumbers", "Lincoln, NE"),
        ("night-7.2", "roofers", "Omaha, NE"),
        ("night-7.3", "roofers", "Lincoln, NE"),
    ]
    assert all(c.parent_id == "night-7" and c.limit == 9 and not c.is_batch for c in children)
    # resubmitting the batch yields the same children: the same ids, so nothing runs twice
    again = parse_job_spec(spec.to_dict(), LIMIT)
    assert [c.id for c in again.children()] == [c.id for c in children]


def test_a_batch_over_locations_alone_keeps_its_single_query() -> None:
    spec = parse_job_spec({"id": "b", "query": "vets", "locations": ["A", "B", "C"]}, LIMIT)
    assert [(c.id, c.query, c.location) for c in spec.children()] == [
        ("b.0", "vets", "A"),
        ("b.1", "vets", "B"),
        ("b.2", "vets", "C"),
    ]


def test_a_batch_is_bounded_and_its_children_ids_stay_valid() -> None:
    many = [f"q{i}" for i in range(100)]
    problems = problems_of({"queries": many, "locations": [f"l{i}" for i in range(11)]})
    assert problems == ["queries: a batch makes at most 1000 jobs (got 1100)"]
    (problem,) = problems_of({"id": "x" * 63, "queries": ["a", "b"]})
    assert problem.startswith("id: a batch's id must be at most 62 characters")
    spec = parse_job_spec({"id": "x" * 62, "queries": ["a", "b"]}, LIMIT)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", c.id) for c in spec.children())


def test_to_dict_is_the_canonical_spec_and_parses_back() -> None:
    spec = parse_job_spec('{"query": "a", "pagespeed": {"strategies": ["desktop", "mobile"]}}', LIMIT)
    stored = spec.to_dict()
    assert (stored["limit"], stored["pagespeed"]["strategies"]) == (50, ["desktop", "mobile"])
    assert parse_job_spec(orjson.dumps(stored), LIMIT) == spec
    child = parse_job_spec({"id": "p", "queries": ["a", "b"]}, LIMIT).children()[1]
    # a child's stored spec is a plain job; its parent is stored beside it, not inside it
    assert parse_job_spec(child.to_dict(), LIMIT) == replace(child, parent_id=None)


def test_priority_is_optional_0_to_9_default_5_and_its_errors_name_the_field() -> None:
    assert parse_job_spec({"query": "a"}, LIMIT).priority == 5
    assert "priority" not in parse_job_spec({"query": "a"}, LIMIT).to_dict()  # stored specs as before
    urgent = parse_job_spec({"query": "a", "priority": 9}, LIMIT)
    assert urgent.priority == 9
    assert parse_job_spec(urgent.to_dict(), LIMIT) == urgent
    assert parse_job_spec({"query": "a", "priority": 0}, LIMIT).priority == 0
    batch = parse_job_spec({"id": "b", "queries": ["a", "b"], "priority": 2}, LIMIT)
    assert [child.to_dict()["priority"] for child in batch.children()] == [2, 2]
    for bad, message in (
        (10, "priority: must be between 0 and 9 (got 10)"),
        (-1, "priority: must be between 0 and 9 (got -1)"),
        ("high", 'priority: must be an integer, not string (got "high")'),
        (5.0, "priority: must be an integer, not number (got 5.0)"),
        (True, "priority: must be an integer, not boolean (got true)"),
    ):
        with pytest.raises(JobSpecError) as rejected:
            parse_job_spec({"query": "a", "priority": bad}, LIMIT)
        assert rejected.value.problems == [message]


def outcome(raw: Any, max_bytes: int) -> tuple[JobSpec | None, list[str]]:
    """A spec or the problems: any other exception escapes and fails the test."""
    try:
        return parse_job_spec(raw, max_bytes), []
    except JobSpecError as exc:
        return None, exc.problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
spec_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=70), st.integers()),
        "query": json_values,
        "queries": st.lists(st.text(max_size=5), max_size=4),
        "location": json_values,
        "locations": st.lists(st.text(max_size=5), max_size=4),
        "limit": json_values,
        "min_rating": json_values,
        "min_reviews": json_values,
        "website": st.sampled_from(["any", "required", "none", "x"]) | json_values,
        "pagespeed": st.fixed_dictionaries(
            {},
            optional={"enabled": json_values, "strategies": json_values, "max_score": json_values},
        )
        | json_values,
        "max_runtime_s": json_values,
    },
)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(spec_like, json_values))
def test_any_json_is_either_a_valid_spec_or_a_named_rejection(value: Any) -> None:
    encoded = json.dumps(value).encode()
    for raw in (encoded, encoded.decode(), value):
        spec, problems = outcome(raw, LIMIT)
        if spec is None:
            assert problems
            assert all(isinstance(p, str) and p for p in problems)
        else:
            assert parse_job_spec(spec.to_dict(), LIMIT) == spec


@settings(max_examples=examples(400))
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_and_text_never_raise_anything_else(raw: bytes | str) -> None:
    spec, problems = outcome(raw, 200)
    assert spec is not None or problems


def test_submit_and_collect_take_a_priority() -> None:
    from leadlawk_daemon import cli, control

    for command in ("submit", "collect"):
        args = cli._parser().parse_args([command, "plumbers", "--priority", "8"])
        assert control.spec_from_options(args.query, priority=args.priority).priority == 8
    assert control.spec_from_options("plumbers").priority == 5
    with pytest.raises(control.ControlError, match=r"priority: must be between 0 and 9 \(got 12\)"):
        control.spec_from_options("plumbers", priority=12)
