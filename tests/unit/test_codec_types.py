"""The codec's types beyond JSON: written, then read back as the declared type."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from statekeeper.codec import decode_as, decode_value, encode_value, parameter_type, result_type
from statekeeper.errors import ErrorRecord, InvalidValue

UTC = datetime.UTC


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass(frozen=True)
class Payment:
    id: uuid.UUID
    amount: decimal.Decimal
    at: datetime.datetime
    receipt: bytes
    colour: Colour = Colour.RED


class Order(BaseModel):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    number: int
    payments: list[Payment]
    signature: bytes
    due: datetime.date | None = None


PAYMENT = Payment(
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("12.30"),
    datetime.datetime(2026, 12, 1, 9, 30, 15, 250000, tzinfo=UTC),
    b"\x00\xff\xfe binary",
)
ORDER = Order(number=7, payments=[PAYMENT], signature=b"\x89PNG", due=datetime.date(2027, 1, 31))


def round_trip(value: Any, hint: Any) -> Any:
    return decode_as(encode_value("", value, 1 << 20), hint, "the value")


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (PAYMENT, Payment),
        (ORDER, Order),
        ([PAYMENT, PAYMENT], list[Payment]),
        ({"a": PAYMENT}, dict[str, Payment]),
        (b"\x00\x01\xff", bytes),
        (datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime.datetime),
        (datetime.date(2026, 2, 28), datetime.date),
        (datetime.time(23, 59, 1), datetime.time),
        (uuid.UUID(int=5), uuid.UUID),
        (decimal.Decimal("0.1000000000000000000000001"), decimal.Decimal),
        (Colour.BLUE, Colour),
        ((1, "two"), tuple[int, str]),
        ({3, 1, 2}, set[int]),
        (None, Payment | None),
    ],
)
def test_values_come_back_as_the_declared_type(value: Any, hint: Any) -> None:
    back = round_trip(value, hint)
    assert back == value and type(back) is type(value)


def test_without_a_declared_type_the_json_form_comes_back() -> None:
    data = encode_value("", PAYMENT, 1 << 20)
    assert decode_as(data, None, "x") == decode_value("x", data)
    assert decode_as(data, Any, "x") == {
        "id": "12345678-1234-5678-1234-567812345678",
        "amount": "12.30",
        "at": "2026-12-01T09:30:15.250000Z",
        "receipt": "AP_-IGJpbmFyeQ==",
        "colour": "red",
    }


@given(st.binary(max_size=200))
def test_any_bytes_round_trip(data: bytes) -> None:
    assert round_trip(data, bytes) == data


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_round_trips_exactly(number: decimal.Decimal) -> None:
    back = round_trip(number, decimal.Decimal)
    assert back == number and str(back) == str(number)


@given(st.datetimes(timezones=st.just(UTC)))
def test_any_aware_datetime_round_trips(when: datetime.datetime) -> None:
    assert round_trip(when, datetime.datetime) == when


def test_a_value_that_does_not_fit_names_the_subject_and_the_field_never_the_value() -> None:
    data = encode_value("", {"id": "not-a-uuid-secret-42", "amount": "1"}, 1 << 20)
    with pytest.raises(InvalidValue) as caught:
        decode_as(data, Payment, "result of step 'charge'")
    message = caught.value.message
    assert message.startswith("result of step 'charge' is not a Payment: ")
    assert "id:" in message and "at:" in message
    assert "secret" not in message


def test_unknown_types_are_refused_by_name() -> None:
    class Opaque:
        pass

    with pytest.raises(InvalidValue, match=r"is not JSON-serializable.*Opaque"):
        encode_value("k", {"thing": Opaque()}, 1 << 20)


def test_a_model_with_default_bytes_configuration_refuses_binary_bytes() -> None:
    class Plain(BaseModel):
        blob: bytes

    assert round_trip(Plain(blob=b"text"), Plain) == Plain(blob=b"text")
    with pytest.raises(InvalidValue, match="not JSON-serializable"):
        encode_value("k", Plain(blob=b"\xff"), 1 << 20)


def test_nan_inside_a_dataclass_is_refused() -> None:
    @dataclasses.dataclass
    class Reading:
        value: float

    with pytest.raises(InvalidValue, match="not JSON-serializable"):
        encode_value("k", Reading(float("nan")), 1 << 20)


async def charge(order: Order, retries: int = 3) -> Payment:
    return PAYMENT


def untyped(order, retries):  # type: ignore[no-untyped-def]
    return None


def test_declared_types_are_read_from_the_function() -> None:
    assert result_type(charge) is Payment
    assert parameter_type(charge, 0) is Order
    assert parameter_type(charge, 1) is int
    assert parameter_type(charge, 2) is None
    assert result_type(untyped) is None and parameter_type(untyped, 0) is None
    assert result_type(len) is None


def test_a_hint_that_does_not_resolve_counts_as_none() -> None:
    namespace: dict[str, Any] = {}
    exec("def odd(x: 'NoSuchType') -> 'AlsoMissing':\n    return x", namespace)
    odd = namespace["odd"]

    assert result_type(odd) is None and parameter_type(odd, 0) is None


def test_error_records_keep_type_message_and_traceback_apart() -> None:
    empty: dict[str, int] = {}
    try:
        empty["missing"]
    except KeyError as error:
        record = ErrorRecord.of(error)
    assert (record.type, record.message) == ("KeyError", "'missing'")
    assert record.traceback is not None and "KeyError: 'missing'" in record.traceback
    assert ErrorRecord.from_json(record.to_json()) == record
    assert str(record) == "KeyError: 'missing'"


def test_error_records_are_bounded_and_legacy_text_reads_as_a_message() -> None:
    record = ErrorRecord.made("Big", "m" * 10_000, "t" * 100_000)
    assert len(record.message) == 4000 and record.message.endswith("...")
    assert record.traceback is not None and len(record.traceback) == 16000
    assert ErrorRecord.from_json("lease expired on attempt 3") == ErrorRecord(
        "Error", "lease expired on attempt 3"
    )
    assert ErrorRecord.from_json("{not json") == ErrorRecord("Error", "{not json")
