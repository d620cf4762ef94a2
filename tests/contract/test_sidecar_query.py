"""The sidecar's state query API (Dapr alpha1), on SQLite and PostgreSQL: every filter
operator against a reference evaluator of the typing rules, sorts, keyset paging, the
app's keys only, expiry, bytes values, encrypted stores and hostile queries."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.keyring import Keyring
from statekeeper.sidecar.components import Component, Resources
from statekeeper.sidecar.context import Sidecar, SidecarConfig
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.http_app import create_sidecar_http
from statekeeper.sidecar.query import QueryResult, run_query
from statekeeper.sidecar.state import DaprState, DeleteItem, SaveItem
from statekeeper.sidecar.values import stored_bytes, stored_json
from tests.conftest import FakeClock

STORE = "statestore"


def resources(namespace: str) -> Resources:
    metadata = {"statekeeperNamespace": namespace}
    return Resources((Component(STORE, "state.statekeeper", metadata),))


@pytest.fixture
def dapr(app: App, namespace: str) -> DaprState:
    return DaprState(app, resources(namespace), "myapp")


async def save(state: DaprState, docs: dict[str, Any], **metadata: str) -> None:
    items = [
        SaveItem(key, stored_json(value), metadata=dict(metadata)) for key, value in docs.items()
    ]
    await state.save(STORE, items)


async def query(state: DaprState, document: dict[str, Any]) -> QueryResult:
    return await run_query(state, STORE, document, {})


async def keys(state: DaprState, document: dict[str, Any]) -> list[str]:
    return [item.key for item in (await query(state, document)).results]


async def every_page(state: DaprState, document: dict[str, Any], limit: int) -> list[str]:
    """The keys of every page of ``document``, following tokens."""
    seen: list[str] = []
    token: str | None = None
    for _ in range(1000):
        page = {"limit": limit, **({"token": token} if token else {})}
        result = await query(state, {**document, "page": page})
        assert len(result.results) <= limit
        seen.extend(item.key for item in result.results)
        token = result.token
        if token is None:
            return seen
    raise AssertionError("paging did not end")


# --- a reference evaluator of the rules (storage/state_query.py) ----------------------

MISSING = object()


def at(doc: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return MISSING
        doc = doc[part]
    return doc


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "container"


def equal(found: Any, value: Any) -> bool:
    return found is not MISSING and kind(found) == kind(value) and found == value


OPS = {"GT": lambda a, b: a > b, "GTE": lambda a, b: a >= b,
       "LT": lambda a, b: a < b, "LTE": lambda a, b: a <= b}  # fmt: skip


def matches(doc: Any, node: dict[str, Any]) -> bool:
    ((op, operand),) = node.items()
    if op == "AND":
        return all(matches(doc, part) for part in operand)
    if op == "OR":
        return any(matches(doc, part) for part in operand)
    ((key, value),) = operand.items()
    found = at(doc, key)
    if found is MISSING:
        return False
    if op == "EQ":
        return equal(found, value)
    if op == "NEQ":
        return not equal(found, value)
    if op == "IN":
        return any(equal(found, v) for v in value)
    return kind(found) == kind(value) and OPS[op](found, value)


def sort_values(doc: Any, key: str) -> tuple[int, float, str]:
    found = at(doc, key)
    rank = {"null": 0, "number": 1, "string": 2, "container": 3, "bool": 4}
    if found is MISSING:
        return (0, 0, "")
    number = found if kind(found) == "number" else 1 if found is True else 0
    return (rank[kind(found)], number, found if isinstance(found, str) else "")


def reference(docs: dict[str, Any], document: dict[str, Any]) -> list[str]:
    chosen = [
        k for k, d in docs.items() if "filter" not in document or matches(d, document["filter"])
    ]
    sort = document.get("sort", [])

    def compare(a: str, b: str) -> int:
        for entry in sort:
            left, right = sort_values(docs[a], entry["key"]), sort_values(docs[b], entry["key"])
            if left != right:
                sign = -1 if entry.get("order") == "DESC" else 1
                return sign * (-1 if left < right else 1)
        return -1 if a < b else 1 if a > b else 0

    return sorted(chosen, key=functools.cmp_to_key(compare))


# --- documents -------------------------------------------------------------------------

SCALARS = [None, True, False, 0, 1, 2, -1, 1.5, 2.0, 10, "a", "b", "B", "", "ä", "a'b", "10", "é"]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.7 or depth > 1:
        return rng.choice(SCALARS)
    if roll < 0.85:
        return {"x": random_value(rng, depth + 1), "y": random_value(rng, depth + 1)}
    return [random_value(rng, depth + 1)]


def random_doc(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice(SCALARS)  # not an object: no path reaches into it
    doc = {}
    for field in ("n", "s", "o"):
        if rng.random() < 0.85:
            doc[field] = random_value(rng)
    return doc


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    roll = rng.random()
    if depth < 3 and roll < 0.25:
        op = rng.choice(["AND", "OR"])
        return {op: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    key = rng.choice(["n", "s", "o", "o.x", "o.y", "o.x.x", "missing"])
    op = rng.choice(["EQ", "NEQ", "GT", "GTE", "LT", "LTE", "IN"])
    if op == "IN":
        return {op: {key: rng.sample(SCALARS, rng.randint(1, 4))}}
    if op in OPS:
        return {op: {key: rng.choice([v for v in SCALARS if kind(v) in ("number", "string")])}}
    return {op: {key: rng.choice(SCALARS)}}


def random_sort(rng: random.Random) -> list[dict[str, str]]:
    keys = rng.sample(["n", "s", "o", "o.x", "missing"], rng.randint(1, 3))
    return [{"key": k, "order": rng.choice(["ASC", "DESC"])} for k in keys]


@pytest.fixture
async def corpus(dapr: DaprState) -> dict[str, Any]:
    rng = random.Random(11)
    docs = {f"k{n:03d}": random_doc(rng) for n in range(120)}
    docs["fixed"] = {"n": 2.0, "s": "", "o": {"x": "ä", "y": {"x": 1}}}
    await save(dapr, docs)
    return docs


# --- the operators, against the reference ------------------------------------------------


@pytest.mark.parametrize(
    "node",
    [
        {"EQ": {"s": "a"}}, {"EQ": {"n": 1}}, {"EQ": {"n": 2}}, {"EQ": {"n": True}},
        {"EQ": {"n": None}}, {"EQ": {"s": "a'b"}}, {"EQ": {"o.x": "ä"}},
        {"NEQ": {"s": "a"}}, {"NEQ": {"n": 0}}, {"NEQ": {"n": False}},
        {"GT": {"n": 1}}, {"GTE": {"n": 1}}, {"LT": {"n": 1.5}}, {"LTE": {"n": -1}},
        {"GT": {"s": "a"}}, {"GTE": {"s": "B"}}, {"LT": {"s": "b"}}, {"LTE": {"s": ""}},
        {"GT": {"o.y": 0}}, {"IN": {"s": ["a", "b", 1]}}, {"IN": {"n": [1, None, True, "10"]}},
        {"IN": {"o.x": [2.0, "é"]}},
        {"AND": [{"GTE": {"n": 0}}, {"LT": {"n": 10}}]},
        {"OR": [{"EQ": {"s": "a"}}, {"AND": [{"EQ": {"o.x": 1}}, {"NEQ": {"n": 2}}]}]},
    ],
)  # fmt: skip
async def test_each_operator_matches_the_reference(
    dapr: DaprState, corpus: dict[str, Any], node: dict[str, Any]
) -> None:
    expected = reference(corpus, {"filter": node})
    assert await keys(dapr, {"filter": node}) == expected
    assert expected  # the corpus exercises each one


async def test_random_queries_match_the_reference(dapr: DaprState, corpus: dict[str, Any]) -> None:
    rng = random.Random(7)
    for _ in range(60):
        document: dict[str, Any] = {"filter": random_filter(rng)}
        if rng.random() < 0.6:
            document["sort"] = random_sort(rng)
        assert await keys(dapr, document) == reference(corpus, document), document


async def test_numbers_compare_by_value_and_strings_by_code_point(dapr: DaprState) -> None:
    await save(dapr, {"int": {"v": 2}, "float": {"v": 2.0}, "text": {"v": "2"},
                      "big": {"v": 10}, "upper": {"v": "Z"}, "lower": {"v": "a"}})  # fmt: skip
    assert await keys(dapr, {"filter": {"EQ": {"v": 2}}}) == ["float", "int"]
    assert await keys(dapr, {"filter": {"EQ": {"v": "2"}}}) == ["text"]
    assert await keys(dapr, {"filter": {"GT": {"v": 3}}}) == ["big"]  # not "10" < "3"
    assert await keys(dapr, {"filter": {"GT": {"v": "Y"}}}) == ["lower", "upper"]
    assert await keys(dapr, {"filter": {"LT": {"v": "a"}}}) == ["text", "upper"]


async def test_nested_paths_reach_members_not_array_items(dapr: DaprState) -> None:
    await save(dapr, {
        "deep": {"a": {"b": {"c": {"d": "x"}}}},
        "list": {"a": [{"b": 1}], "i": ["x"]},
        "digit": {"i": {"0": "x"}},
        "odd": {"a b": {"it's": 1}, "a.b": 2},
    })  # fmt: skip
    assert await keys(dapr, {"filter": {"EQ": {"a.b.c.d": "x"}}}) == ["deep"]
    assert await keys(dapr, {"filter": {"EQ": {"i.0": "x"}}}) == ["digit"]
    assert await keys(dapr, {"filter": {"EQ": {"a b.it's": 1}}}) == ["odd"]
    assert await keys(dapr, {"filter": {"EQ": {"a.b": 2}}}) == []  # a dot always walks


# --- sort and paging ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "sort",
    [
        [{"key": "n"}], [{"key": "n", "order": "DESC"}], [{"key": "s", "order": "ASC"}],
        [{"key": "s", "order": "DESC"}, {"key": "n"}], [{"key": "o.x", "order": "DESC"}],
        [{"key": "missing"}], [{"key": "o"}, {"key": "s", "order": "DESC"}, {"key": "n"}],
    ],
)  # fmt: skip
async def test_sorts_and_every_page_match_the_reference(
    dapr: DaprState, corpus: dict[str, Any], sort: list[dict[str, str]]
) -> None:
    document = {"sort": sort}
    expected = reference(corpus, document)
    assert await keys(dapr, document) == expected
    for limit in (1, 7, 50):
        assert await every_page(dapr, document, limit) == expected


async def test_paging_without_a_sort_is_by_key(dapr: DaprState, corpus: dict[str, Any]) -> None:
    document = {"filter": {"NEQ": {"s": "a"}}}
    expected = reference(corpus, document)
    assert expected == sorted(expected)
    assert await every_page(dapr, document, 4) == expected
    assert await every_page(dapr, {}, 13) == sorted(corpus)


async def test_ties_are_broken_by_key(dapr: DaprState) -> None:
    await save(dapr, {f"t{n}": {"group": n % 2, "name": "same"} for n in range(10)})
    found = await keys(dapr, {"sort": [{"key": "name"}, {"key": "group", "order": "DESC"}]})
    assert found == ["t1", "t3", "t5", "t7", "t9", "t0", "t2", "t4", "t6", "t8"]


async def test_pages_neither_repeat_nor_skip_rows_that_stayed_put(dapr: DaprState) -> None:
    await save(dapr, {f"p{n:02d}": {"rank": n} for n in range(20)})
    document: dict[str, Any] = {"sort": [{"key": "rank", "order": "DESC"}], "page": {"limit": 5}}
    first = await query(dapr, document)
    assert [i.key for i in first.results] == [f"p{n:02d}" for n in range(19, 14, -1)]
    # Rows arrive before and after the position, and one row the page showed leaves.
    await save(dapr, {"early": {"rank": 100}, "late": {"rank": -5}})
    await dapr.delete(STORE, DeleteItem("p19"))
    rest: list[str] = []
    token = first.token
    while token:
        page = await query(dapr, {**document, "page": {"limit": 5, "token": token}})
        rest.extend(i.key for i in page.results)
        token = page.token
    assert rest == [f"p{n:02d}" for n in range(14, -1, -1)] + ["late"]


async def test_a_token_works_only_for_its_query(dapr: DaprState, corpus: dict[str, Any]) -> None:
    document = {"sort": [{"key": "n"}], "page": {"limit": 2}}
    token = (await query(dapr, document)).token
    assert token is not None
    other = {"sort": [{"key": "s"}], "page": {"limit": 2, "token": token}}
    with pytest.raises(DaprError) as refused:
        await query(dapr, other)
    assert refused.value.code == "ERR_STATE_QUERY" and refused.value.http_status == 400
    assert "another query" in refused.value.message
    # The page size may change between pages.
    again = await query(dapr, {"sort": [{"key": "n"}], "page": {"limit": 50, "token": token}})
    assert [i.key for i in again.results] == reference(corpus, document)[2:52]


def forged(token: str, change: Any) -> str:
    """``token`` with its body changed by ``change`` (a token is base64 of JSON: anyone
    can forge one, so the values it carries are checked and bound, never trusted)."""
    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    change(body)
    raw = json.dumps(body).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def setter(index: int, value: Any) -> Any:
    def change(body: list[Any]) -> None:
        body[index] = value

    return change


FORGERIES = [
    setter(2, "\x00"), setter(2, 5), setter(2, "' OR 1=1 --"), setter(2, "zzz"),
    setter(3, []), setter(3, [[1, "1", ""], [1, "1", ""]]), setter(3, [[9, "1", ""]]),
    setter(3, [[True, "1", ""]]), setter(3, [[1, "1e99999", ""]]), setter(3, [[1, "x", ""]]),
    setter(3, [[1, "9" * 30, ""]]), setter(3, [[1, "1e999", ""]]), setter(3, [[1, "-1e-999", ""]]),
    setter(3, [[2, "0", "a\x00"]]), setter(3, [[2, "0", "' OR 1=1 --"]]), setter(3, [[2, 0, ""]]),
    setter(3, [["1", "0", ""]]), setter(3, [[1, "1", None]]), setter(3, "x"), setter(0, 2),
    setter(3, [[1, "1" * 4400, ""]]), setter(3, [[1, "-" + "9" * 4999, ""]]),
]  # fmt: skip


@pytest.mark.parametrize("change", FORGERIES, ids=range(len(FORGERIES)))
async def test_forged_tokens_are_refused_or_read_as_positions(
    dapr: DaprState, corpus: dict[str, Any], change: Any
) -> None:
    document: dict[str, Any] = {"sort": [{"key": "n", "order": "DESC"}], "page": {"limit": 3}}
    token = (await query(dapr, document)).token
    assert token is not None
    page = {"limit": 3, "token": forged(token, change)}
    try:
        result = await query(dapr, {**document, "page": page})
    except DaprError as refused:
        assert refused.http_status == 400 and refused.code == "ERR_STATE_QUERY"
        return
    assert len(result.results) <= 3
    assert all(item.key in corpus for item in result.results)


# --- whose keys, which values ---------------------------------------------------------------


async def test_only_this_apps_keys_come_back_without_their_prefix(
    app: App, namespace: str, dapr: DaprState
) -> None:
    other = DaprState(app, resources(namespace), "otherapp")
    prefixed = DaprState(app, resources(namespace), "myapp2")
    await save(dapr, {"mine": {"v": 1}})
    await save(other, {"theirs": {"v": 1}, "mine": {"v": 1}})
    await save(prefixed, {"near": {"v": 1}})
    await app.in_namespace(namespace).state.put("myapp|", {"v": 1})  # just below the range
    await app.in_namespace(namespace).state.put("myapp|}", {"v": 1})  # just above it
    result = await query(dapr, {"filter": {"EQ": {"v": 1}}})
    assert [(i.key, i.value) for i in result.results] == [("mine", {"v": 1})]
    assert await keys(other, {}) == ["mine", "theirs"]


async def test_expired_items_are_never_returned(dapr: DaprState, clock: FakeClock) -> None:
    await save(dapr, {"brief": {"v": 1}}, ttlInSeconds="10")
    await save(dapr, {"lasting": {"v": 1}})
    assert await keys(dapr, {"filter": {"EQ": {"v": 1}}}) == ["brief", "lasting"]
    clock.advance(11)
    assert await keys(dapr, {"filter": {"EQ": {"v": 1}}}) == ["lasting"]
    assert await keys(dapr, {"sort": [{"key": "v"}]}) == ["lasting"]


async def test_bytes_values_match_no_filter(dapr: DaprState) -> None:
    items = [SaveItem("blob", stored_bytes(b"\xff\x00 binary")),
             SaveItem("wrapped", stored_json({"$bytes": "AAAA"})),
             SaveItem("doc", stored_json({"v": "AAAA"}))]  # fmt: skip
    await dapr.save(STORE, items)
    assert await keys(dapr, {"filter": {"EQ": {"v": "AAAA"}}}) == ["doc"]
    assert await keys(dapr, {"filter": {"NEQ": {"v": "x"}}}) == ["doc"]
    listed = {i.key: i.value for i in (await query(dapr, {})).results}
    assert listed["blob"] == {"$bytes": "/wAgYmluYXJ5"}  # listed, as stored
    for key in ("$bytes", "$json.x"):
        with pytest.raises(DaprError) as refused:
            await query(dapr, {"filter": {"EQ": {key: "AAAA"}}})
        assert refused.value.http_status == 400


async def test_values_holding_nul_are_skipped_alike_on_both_backends(dapr: DaprState) -> None:
    await save(dapr, {"nul": {"v": "a\x00b", "w": 1}, "plain": {"v": "ab", "w": 1}})
    assert await keys(dapr, {"filter": {"EQ": {"w": 1}}}) == ["plain"]


async def test_an_encrypted_store_refuses_queries(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=keyring
    ) as app:
        dapr = DaprState(app, resources(namespace), "myapp")
        await save(dapr, {"secret": {"v": 1}})
        with pytest.raises(DaprError) as refused:
            await query(dapr, {"filter": {"EQ": {"v": 1}}})
    assert refused.value.code == "ERR_STATE_QUERY" and refused.value.http_status == 400
    assert "encrypted" in refused.value.message


# --- hostile queries -------------------------------------------------------------------------

LEAF: dict[str, Any] = {"EQ": {"a": 1}}
HOSTILE = [
    [], "x", {"filter": []}, {"filter": {}}, {"filter": {"EQ": {"a": 1}, "NEQ": {"a": 1}}},
    {"filter": {"LIKE": {"a": "%"}}}, {"filter": {"EQ": {"a": {"b": 1}}}},
    {"filter": {"EQ": {"a": [1]}}}, {"filter": {"EQ": {}}}, {"filter": {"EQ": {"": 1}}},
    {"filter": {"EQ": {"a..b": 1}}}, {"filter": {"EQ": {'a"b': 1}}},
    {"filter": {"EQ": {"a\\b": 1}}}, {"filter": {"EQ": {"a\nb": 1}}},
    {"filter": {"EQ": {"x" * 600: 1}}}, {"filter": {"EQ": {".".join("a" * 40): 1}}},
    {"filter": {"GT": {"a": True}}}, {"filter": {"LT": {"a": None}}},
    {"filter": {"EQ": {"a": 2**70}}}, {"filter": {"EQ": {"a": "nul\x00"}}},
    {"filter": {"IN": {"a": []}}}, {"filter": {"IN": {"a": "x"}}},
    {"filter": {"IN": {"a": list(range(1001))}}}, {"filter": {"AND": []}},
    {"filter": {"OR": {"EQ": {"a": 1}}}},
    {"filter": functools.reduce(lambda inner, _: {"AND": [inner]}, range(9), LEAF)},
    {"filter": {"OR": [{"EQ": {"a": n}} for n in range(101)]}},
    {"sort": {"key": "a"}}, {"sort": [{"key": "a", "order": "SIDEWAYS"}]}, {"sort": ["a"]},
    {"sort": [{"order": "ASC"}]}, {"sort": [{"key": f"k{n}"} for n in range(5)]},
    {"page": 3}, {"page": {"limit": -1}}, {"page": {"limit": 1001}}, {"page": {"limit": 2.5}},
    {"page": {"limit": True}}, {"page": {"token": 5}}, {"page": {"token": "not base64!"}},
    {"page": {"token": "W10"}}, {"page": {"token": "WzEsIngiLCJrIixbXV0"}},
]  # fmt: skip


@pytest.mark.parametrize("document", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_queries_get_a_400(
    dapr: DaprState, corpus: dict[str, Any], document: Any
) -> None:
    with pytest.raises(DaprError) as refused:
        await query(dapr, document)
    assert refused.value.http_status == 400, refused.value.message
    assert refused.value.code == "ERR_STATE_QUERY"


@pytest.mark.parametrize(
    "value",
    ["'; DROP TABLE sk_state; --", "' OR '1'='1", '"', "\\", "$.a", "?1", "$1", "{filter}",
     "x' COLLATE \"C", "\u202e", "😀", "a" * 5000],
)  # fmt: skip
async def test_hostile_values_and_paths_are_only_data(dapr: DaprState, value: str) -> None:
    key = value.replace(".", "_").replace('"', "q").replace("\\", "b")[:200]
    await save(dapr, {"hit": {"v": value, key: 1}, "miss": {"v": "other"}})
    assert await keys(dapr, {"filter": {"EQ": {"v": value}}}) == ["hit"]
    assert await keys(dapr, {"filter": {"IN": {"v": [value, "zzz"]}}}) == ["hit"]
    assert await keys(dapr, {"filter": {"EQ": {key: 1}}}) == ["hit"]
    assert await keys(dapr, {"sort": [{"key": key, "order": "DESC"}]}) == ["hit", "miss"]
    assert await keys(dapr, {"filter": {"GTE": {"v": value}}}) == (
        ["hit", "miss"] if value <= "other" else ["hit"]
    )


async def test_fuzzed_documents_never_fail_otherwise_than_400(dapr: DaprState) -> None:
    await save(dapr, {"a": {"a": 1, "b": "x"}})
    rng = random.Random(3)
    atoms: list[Any] = [None, True, 0, -1, 2**64, 1e308, "", "a", "a.b", "EQ", "AND", "ASC",
                        "limit", "token", "\x00", "'", "W10", [], {}]  # fmt: skip

    def junk(depth: int) -> Any:
        if depth > 4 or rng.random() < 0.4:
            return rng.choice(atoms)
        if rng.random() < 0.5:
            return [junk(depth + 1) for _ in range(rng.randint(0, 3))]
        names = ["filter", "sort", "page", "EQ", "IN", "GT", "AND", "OR", "key", "order",
                 "limit", "token", "a", "b"]  # fmt: skip
        return {rng.choice(names): junk(depth + 1) for _ in range(rng.randint(0, 3))}

    answered = 0
    for _ in range(400):
        document = junk(0)
        try:
            await query(dapr, document)
            answered += 1
        except DaprError as refused:
            assert refused.http_status == 400, (document, refused.message)
    assert answered > 0


async def test_fuzzed_member_names_are_found_or_refused(dapr: DaprState) -> None:
    """Random member names (any code point but surrogates): a name the rules allow
    finds its item, on both backends alike; any other is a 400, never a 5xx."""
    rng = random.Random(5)
    alphabet = "\"\\'$.[]*?:;`%_ \x00\x01\x1f\x7f\u00e9\u202e\uffff\U0001f600"

    def name() -> str:
        return "".join(
            rng.choice(alphabet) if rng.random() < 0.5 else chr(rng.randint(32, 0x2FFF))
            for _ in range(rng.randint(1, 8))
        )

    names = [name() for _ in range(60)]
    docs = {f"f{n:02d}": {member: n} for n, member in enumerate(names)}
    await save(dapr, docs)
    found = refused = 0
    for n, member in enumerate(names):
        parts = member.split(".")
        allowed = parts[0] not in ("$bytes", "$json") and all(
            part and not any(c in '"\\' or ord(c) < 32 or ord(c) == 127 for c in part)
            for part in parts
        )
        try:
            hits = await keys(dapr, {"filter": {"EQ": {member: n}}, "sort": [{"key": member}]})
        except DaprError as problem:
            assert problem.http_status == 400 and not allowed, (member, problem.message)
            refused += 1
            continue
        assert allowed, member
        assert hits == ([] if len(parts) > 1 else [f"f{n:02d}"]), member
        found += len(hits)
    assert found and refused


async def test_a_long_query_leaves_the_event_loop_free(
    app: App, namespace: str, dapr: DaprState
) -> None:
    rows = [(namespace, f"myapp||r{n:06d}", json.dumps({"v": n % 97}).encode(), "etag0000000a")
            for n in range(20_000)]  # fmt: skip
    sql = "INSERT INTO sk_state (namespace, key, value, etag) VALUES ({})"
    backend: Any = app.backend
    if backend.dialect == "sqlite":
        statement = sql.format("?, ?, ?, ?")
        await backend.writer.run(lambda c: c.executemany(statement, rows), "fill")
    else:
        async with backend.pool.acquire() as conn:
            await conn.executemany(sql.format("$1, $2, $3, $4"), rows)
    ticks = 0
    done = asyncio.Event()

    async def tick() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    result = await query(dapr, {"sort": [{"key": "v", "order": "DESC"}], "page": {"limit": 3}})
    done.set()
    await ticker
    assert [i.key for i in result.results] == ["r000096", "r000193", "r000290"]
    assert ticks > 10  # other work ran while the database sorted 20,000 values


# --- over HTTP -------------------------------------------------------------------------------


@pytest.fixture
async def http(app: App, namespace: str) -> AsyncIterator[httpx.AsyncClient]:
    sidecar = Sidecar(app, SidecarConfig(app_id="myapp", resources=resources(namespace)))
    transport = httpx.ASGITransport(app=create_sidecar_http(sidecar))
    async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
        yield client


async def test_the_http_route_answers_in_daprs_shape(
    http: httpx.AsyncClient, dapr: DaprState
) -> None:
    await save(dapr, {f"e{n}": {"person": {"org": "Dev Ops" if n % 2 else "Finance", "id": n},
                                "state": "WA"} for n in range(5)})  # fmt: skip
    await dapr.save(STORE, [SaveItem("raw", stored_bytes(b"\xff"))])
    url = f"/v1.0-alpha1/state/{STORE}/query"
    body = {"filter": {"EQ": {"person.org": "Dev Ops"}},
            "sort": [{"key": "person.id", "order": "DESC"}], "page": {"limit": 1}}  # fmt: skip
    first = await http.post(url, json=body)
    assert first.status_code == 200
    answer = first.json()
    assert answer["results"] == [
        {"key": "e3", "data": {"person": {"org": "Dev Ops", "id": 3}, "state": "WA"},
         "etag": answer["results"][0]["etag"]}
    ]  # fmt: skip
    assert answer["results"][0]["etag"] == (await dapr.get(STORE, "e3")).etag
    second = await http.put(url, json={**body, "page": {"limit": 1, "token": answer["token"]}})
    assert second.status_code == 200
    assert [r["key"] for r in second.json()["results"]] == ["e1"]
    assert "token" not in second.json()
    listed = (await http.post(url, json={"filter": {"IN": {"state": ["WA"]}}})).json()
    assert len(listed["results"]) == 5
    everything = (await http.post(url, json={})).json()["results"]
    assert {"key": "raw", "data": "/w==", "etag": everything[-1]["etag"]} == everything[-1]
    none = await http.post(url, json={"filter": {"EQ": {"state": "CA"}}})
    assert none.status_code == 204 and none.content == b""
    nested = json.dumps({"filter": {"EQ": {"a": {}}}}).encode()
    for bad, code in (
        (b"{", "ERR_MALFORMED_REQUEST"), (b"[]", "ERR_STATE_QUERY"), (nested, "ERR_STATE_QUERY")
    ):  # fmt: skip
        refused = await http.post(url, content=bad)
        assert refused.status_code == 400 and refused.json()["errorCode"] == code
    missing = await http.post("/v1.0-alpha1/state/nostore/query", json={})
    assert missing.status_code == 400
    assert missing.json()["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"


async def test_a_query_that_reads_too_long_is_stopped_with_a_400(app: App) -> None:
    """Past the backend's scan time limit a query stops (SQLite: interrupted; PostgreSQL:
    cancelled in the server) and answers ERR_STATE_QUERY 400, and the store still works."""
    component = Component("s", "state.x", {"statekeeperNamespace": app.namespace})
    state = DaprState(app, Resources((component,)), "a")
    await state.save("s", [SaveItem(f"k{n:05}", {"n": n, "t": "x" * 200}) for n in range(1000)])
    backend: Any = app.backend
    backend.scan_timeout = 0.000001
    try:
        with pytest.raises(DaprError) as stopped:
            await run_query(state, "s", {"sort": [{"key": "t"}, {"key": "n"}]}, {})
    finally:
        backend.scan_timeout = 10.0
    assert stopped.value.http_status == 400 and "seconds" in stopped.value.message
    assert len((await run_query(state, "s", {"page": {"limit": 5}}, {})).results) == 5
