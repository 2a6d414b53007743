"""Placeholders and job-wide parameters: rendering (chalicelib.intake.validation.templates), its
place before validation (row_checks), the file's columns (rows.checked_rows) and the manifest."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import ConfigError
from chalicelib.core.schedule import Schedule
from chalicelib.core.segments import sms_segments
from chalicelib.intake.manifest import is_manifest, manifest_bytes, manifest_key, read_manifest
from chalicelib.intake.plan import plan
from chalicelib.intake.rows import Accepted, Rejected, checked_rows
from chalicelib.intake.validation import InvalidRow, validate
from chalicelib.intake.validation.templates import (
    BadParams,
    JobParams,
    MissingColumn,
    columns_of,
    job_params,
    parse_param,
    placeholders,
    render,
    render_text,
)

FROM = "+15005550006"
# Any text at all, emoji and unpaired surrogates aside (a file's UTF-8 cannot hold those).
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_ ]{0,11}", fullmatch=True).map(str.strip).filter(bool)


def rendered(template: str, **columns: Any) -> str:
    return render_text(template, columns_of(columns))


def test_render_fills_columns_by_name_without_regard_to_case_or_spaces() -> None:
    assert rendered("Hi {{ Name }}, {{CODE}}!", name="Ada", code="42") == "Hi Ada, 42!"
    assert render_text("{{first name}}", columns_of({" First Name ": "Zoë"})) == "Zoë"


def test_render_takes_a_default_for_a_missing_or_empty_column_and_rejects_without_one() -> None:
    assert rendered("Hi {{name|there}}", name="") == "Hi there"
    assert rendered("Hi {{name|there}}", name="  ") == "Hi there"
    assert rendered("Hi {{name|there}}") == "Hi there"
    assert rendered("Hi {{name|}}!", name=None) == "Hi !"
    with pytest.raises(InvalidRow, match=r"^placeholder \{\{name\}\}: column name is empty$"):
        rendered("Hi {{name}}", name="")
    with pytest.raises(InvalidRow, match=r"^placeholder \{\{name\}\}: the row has no column name$"):
        rendered("Hi {{name}}", code="1")


def test_render_writes_json_scalars_as_twilio_would_and_refuses_lists() -> None:
    assert rendered("{{n}} {{f}} {{b}}", n=3, f=2.0, b=True) == "3 2 true"
    with pytest.raises(InvalidRow, match=r"column tags holds a list, not text"):
        rendered("{{tags}}", tags=["a"])


def test_render_executes_nothing_and_reads_no_attribute() -> None:
    hostile = ["{{name.__class__}}", "{{__import__('os').system('x')}}", "{{name[0]}}"]
    for template in hostile:
        with pytest.raises(InvalidRow, match="the row has no column"):
            rendered(template, name="Ada")
    # Text that is not a placeholder is sent as it is.
    for text in ["{{}}", "{{ }}", "{ {name} }", "{{name}", "${name}", "{%name%}"]:
        assert rendered(text, name="Ada") == text


def test_render_leaves_a_placeholder_inside_a_value_as_it_is_written() -> None:
    assert rendered("Hi {{name}}", name="{{code}}", code="1") == "Hi {{code}}"
    assert rendered("{{a}}{{b}}", a="{{", b="b}}") == "{{b}}"


@given(value=TEXT.filter(lambda t: t.strip()), before=TEXT, after=TEXT)
def test_render_puts_any_value_in_once(value: str, before: str, after: str) -> None:
    # The literal parts have no braces, so the only placeholder is the one put there.
    before, after = before.replace("{", "("), after.replace("}", ")")
    assert rendered(before + "{{col}}" + after, col=value) == before + value + after


@given(
    parts=st.lists(
        st.one_of(
            TEXT.map(lambda t: ("text", re.sub("[{}]", "", t))), NAMES.map(lambda n: ("column", n))
        ),
        max_size=8,
    ),
    values=st.dictionaries(NAMES, TEXT.filter(lambda t: t.strip()), max_size=6),
)
def test_render_is_the_concatenation_of_its_parts(
    parts: list[tuple[str, str]], values: dict[str, str]
) -> None:
    template = "".join(p if kind == "text" else "{{" + p + "|-}}" for kind, p in parts)
    columns = columns_of(values)
    expected = "".join(
        p if kind == "text" else columns.get(p.strip().casefold(), "-") for kind, p in parts
    )
    assert render_text(template, columns) == expected
    assert [ph.column for ph in placeholders(template)] == [p for k, p in parts if k == "column"]


def test_render_goes_into_lists_and_json_objects_values_but_not_keys() -> None:
    columns = columns_of({"name": "Ada"})
    value = {"{{name}}": ["{{name}}", 1, {"k": "x {{name}}"}]}
    assert render(value, columns) == {"{{name}}": ["Ada", 1, {"k": "x Ada"}]}


def test_job_params_apply_to_rows_that_do_not_set_them() -> None:
    params = JobParams({"From": FROM, "Body": "Hi {{name}}"})
    own = validate({"To": "+14155550100", "Body": "Mine {{name}}", "name": "Ada"}, None, params)
    empty = validate({"To": "+14155550100", "body": " ", "name": "Ada"}, None, params)
    assert own.params == {"To": "+14155550100", "From": FROM, "Body": "Mine Ada"}
    assert empty.params == {"To": "+14155550100", "From": FROM, "Body": "Hi Ada"}


def test_placeholders_are_filled_before_values_are_checked() -> None:
    params = JobParams({"From": FROM, "To": "{{phone}}", "Body": "x"})
    request = validate({"phone": "+1 (415) 555-0100"}, None, params)
    assert request.params["To"] == "+14155550100"
    with pytest.raises(InvalidRow, match=r"^To: \+1555 is not a valid phone number"):
        validate({"phone": "+1555"}, None, params)
    # A body that renders empty is a missing body, as an empty column is.
    blank = JobParams({"From": FROM, "To": "+14155550100", "Body": "{{note|}}"})
    with pytest.raises(InvalidRow, match=r"^missing Body"):
        validate({"note": ""}, None, blank)


CASES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        {"api": "messages", "From": FROM, "To": "{{phone}}", "Body": "Hi {{name}} 🎉"},
        {"phone": "+14155550100", "name": "Ada"},
        {"To": "+14155550100", "Body": "Hi Ada 🎉"},
    ),
    (
        {"api": "calls", "From": FROM, "To": "{{phone}}", "Twiml": "<Say>Hi {{name}}</Say>"},
        {"phone": "+14155550100", "name": "Zoë"},
        {"Twiml": "<Say>Hi Zoë</Say>"},
    ),
    (
        {
            "api": "lookup",
            "PhoneNumber": "{{phone}}",
            "Fields": "{{fields|caller_name}}",
        },
        {"phone": "+14155550100", "fields": ""},
        {"PhoneNumber": "+14155550100", "Fields": "caller_name"},
    ),
    (
        {
            "api": "verify",
            "To": "{{phone}}",
            "Channel": "{{channel}}",
            "VerifyServiceSid": "VA" + "a" * 32,
        },
        {"phone": "+14155550100", "channel": "sms"},
        {"To": "+14155550100", "Channel": "sms"},
    ),
    (
        {
            "api": "studio",
            "To": "{{phone}}",
            "From": FROM,
            "FlowSid": "FW" + "b" * 32,
            "Parameters": {"greeting": "Hi {{name}}"},
        },
        {"phone": "+14155550100", "name": "日本"},
        {"Parameters": json.dumps({"greeting": "Hi 日本"}, ensure_ascii=False)},
    ),
]


@pytest.mark.parametrize(("params", "row", "expected"), CASES, ids=[c[0]["api"] for c in CASES])
def test_placeholders_render_in_every_apis_parameters(
    params: dict[str, Any], row: dict[str, Any], expected: dict[str, Any]
) -> None:
    request = validate(row, None, JobParams(params))
    assert request.api == params["api"]
    for name, value in expected.items():
        sent = request.params[name]
        if name == "Parameters":
            assert json.loads(str(sent)) == json.loads(value)
        else:
            assert sent == value


@given(name=TEXT.filter(lambda t: t.strip()))
def test_segments_are_counted_on_the_rendered_body(name: str) -> None:
    data = json.dumps({"name": name}).encode() + b"\n"
    params = JobParams({"From": FROM, "To": "+14155550100", "Body": "Hi {{name}}, welcome"})
    result = plan(io.BytesIO(data), "jsonl", Schedule(1, 1), params=params)
    assert result.valid == 1, result.rejects
    shown = result.preview[0]
    body = f"Hi {name}, welcome"
    assert shown["params"] == {"To": "+14155550100", "From": FROM, "Body": body}
    encoding, count = sms_segments(body)
    assert (shown["encoding"], shown["segments"]) == (encoding, count)
    assert result.segments[encoding] == count


def rows_of(data: bytes, fmt: Any, params: JobParams) -> list[Accepted | Rejected]:
    return list(checked_rows(io.BytesIO(data), fmt, None, params=params))


def test_a_template_naming_a_column_a_csv_file_lacks_fails_at_its_first_row() -> None:
    params = JobParams({"From": FROM, "To": "{{phone}}", "Body": "Hi {{first_name}}"})
    data = b"phone,name,code\n+14155550100,Ada,1\n"
    read = checked_rows(io.BytesIO(data * 1), "csv", None, params=params)
    with pytest.raises(
        MissingColumn, match=r"^column first_name is not in the file; it has: phone, name, code$"
    ):
        next(read)


def test_a_json_file_has_a_column_when_any_record_has_it() -> None:
    params = JobParams({"From": FROM, "To": "{{phone}}", "Body": "Hi {{name}}"})
    records = [{"phone": "+14155550100"}, {"phone": "+14155550101", "name": "Ada"}]
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    first, second = rows_of(data, "jsonl", params)
    assert isinstance(first, Rejected)
    assert first.reason == "placeholder {{name}}: the row has no column name"
    assert isinstance(second, Accepted)
    assert second.request.params["Body"] == "Hi Ada"
    lacking = "".join(json.dumps({"phone": "+14155550100"}) + "\n" for _ in range(3)).encode()
    with pytest.raises(MissingColumn, match=r"^column name is not in the file; it has: phone$"):
        rows_of(lacking, "jsonl", params)


def test_job_params_are_read_from_json_and_the_command_line() -> None:
    assert parse_param("Body=a=b {{x}}") == ("Body", "a=b {{x}}")
    for bad in ["Body", "=x"]:
        with pytest.raises(BadParams, match="expected NAME=VALUE"):
            parse_param(bad)
    assert job_params({"Timeout": 30, "Body": "x"}, "params").values == {"Timeout": 30, "Body": "x"}
    for raw, why in [([1], "JSON object"), ({" ": "x"}, "blank"), ({"A": [1]}, "A must be")]:
        with pytest.raises(BadParams, match=why):
            job_params(raw, "params")


def test_a_manifest_is_found_beside_its_file_or_by_name_and_read_strictly() -> None:
    assert manifest_key("in/calls.csv", {}) == ("in/calls.csv.job.json", False)
    assert manifest_key("calls.csv", {"manifest": "m/one.json"}) == ("m/one.json", True)
    assert is_manifest("in/calls.csv.JOB.json") and not is_manifest("in/calls.json")
    params = JobParams({"Body": "Grüße {{name}} 🚀"})
    assert read_manifest(manifest_bytes(params), "k")[0].values == params.values
    for data, why in [
        (b"\xff", "not UTF-8 JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"params": {}, "cps": 3}', "unknown keys: cps"),
        (b'{"params": {"Body": null}}', "Body must be a string"),
        (b" " * 70_000, "over 65,536 bytes"),
    ]:
        with pytest.raises(ConfigError, match=why):
            read_manifest(data, "k")


def test_plan_command_previews_rendered_rows_and_names_an_absent_column(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from callqueue.cli import main

    path = tmp_path / "list.csv"
    path.write_text("phone,name\n+14155550100,Zoë\n+14155550101,Ada\n", encoding="utf-8")
    common = ["plan", str(path), "--param", f"From={FROM}", "--param", "To={{phone}}"]

    assert main([*common, "--param", "Body=Hi {{name}}\nbye", "--json", "--preview", "1"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["preview"] == [
        {
            "row": 1,
            "api": "messages",
            "params": {"To": "+14155550100", "From": FROM, "Body": "Hi Zoë\nbye"},
            "encoding": "UCS-2",
            "segments": 1,
        }
    ]
    assert main([*common, "--param", "Body=Hi {{name}}\nbye"]) == 0
    text = capsys.readouterr().out
    assert "  row 2 (messages, 1 GSM-7 segment(s)):\n" in text
    assert "    Body: Hi Ada\\nbye\n" in text
    assert main([*common, "--param", "Body=Hi {{first_name}}"]) == 2
    assert capsys.readouterr().err.endswith(
        f"{path}: column first_name is not in the file; it has: phone, name\n"
    )


def test_test_send_readdresses_rows_and_refuses_a_bad_number_or_too_many_rows(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from callqueue.cli import main
    from callqueue.cli.test_send import readdressed
    from chalicelib.core.records import CallRequest

    to = "+14155550199"
    lookup = CallRequest("lookup", {"PhoneNumber": "+14155550100", "Fields": "caller_name"})
    call = CallRequest("calls", {"To": "sip:a@example.com", "From": FROM, "Url": "https://x.y"})
    assert readdressed(lookup, to).params == {"PhoneNumber": to, "Fields": "caller_name"}
    assert readdressed(call, to).params["To"] == to
    path = tmp_path / "list.csv"
    path.write_text("To,From,Body\n+14155550100,+15005550006,hi\n", encoding="utf-8")
    assert main(["test-send", str(path), "--to", "+1555"]) == 2
    assert "--to: +1555 is not a valid phone number" in capsys.readouterr().err
    assert main(["test-send", str(path), "--to", to, "--rows", "11"]) == 2
    assert "--rows is at most 10" in capsys.readouterr().err
    assert main(["test-send", str(path), "--to", to, "--param", "Body={{nope}}"]) == 2
    assert "column nope is not in the file; it has: To, From, Body" in capsys.readouterr().err


def test_a_row_sets_a_parameter_under_any_of_its_names() -> None:
    params = JobParams({"api": "lookup", "PhoneNumber": "+14155550100", "fields": "caller_name"})
    request = validate({"to": "+14155550101"}, None, params)
    assert request.api == "lookup"
    assert request.params == {"PhoneNumber": "+14155550101", "Fields": "caller_name"}
