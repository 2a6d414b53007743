"""A call's MachineDetection, as a row column or a job-wide parameter: Twilio's two values (any
case, sent as Twilio spells them); anything else rejects the row saying why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.intake.validation import InvalidRow, validate
from chalicelib.intake.validation.templates import JobParams

CALL = {"api": "calls", "To": "+14155550100", "From": "+15005550006", "Url": "https://e.com/t"}
WHY = "is not one of Enable, DetectMessageEnd"


@pytest.mark.parametrize(
    ("given_value", "sent"),
    [
        ("Enable", "Enable"),
        ("enable", "Enable"),
        (" DETECTMESSAGEEND ", "DetectMessageEnd"),
        ("DetectMessageEnd", "DetectMessageEnd"),
    ],
)
def test_machine_detection_in_a_row_is_sent_as_twilio_spells_it(
    given_value: str, sent: str
) -> None:
    request = validate({**CALL, "machinedetection": given_value})

    assert request.params["MachineDetection"] == sent


@pytest.mark.parametrize("bad", ["yes", "true", "Enabled", "DetectMessage", "1", "Enable,Enable"])
def test_machine_detection_of_another_value_rejects_the_row_saying_why(bad: str) -> None:
    with pytest.raises(InvalidRow) as caught:
        validate({**CALL, "MachineDetection": bad})

    assert str(caught.value) == f"MachineDetection {bad!r} {WHY}"


def test_machine_detection_of_the_job_applies_to_its_calls_and_a_row_may_override_it() -> None:
    job = JobParams({"MachineDetection": "enable"})

    assert validate(CALL, job_params=job).params["MachineDetection"] == "Enable"
    overridden = validate({**CALL, "MachineDetection": "DetectMessageEnd"}, job_params=job)
    assert overridden.params["MachineDetection"] == "DetectMessageEnd"
    # A message has no MachineDetection: the job's is not sent with it.
    message = {"To": "+14155550100", "From": "+15005550006", "Body": "hi"}
    assert "MachineDetection" not in validate(message, job_params=job).params


def test_a_bad_machine_detection_of_the_job_rejects_each_call_saying_why() -> None:
    with pytest.raises(InvalidRow, match=f"MachineDetection 'sometimes' {WHY}"):
        validate(CALL, job_params=JobParams({"MachineDetection": "sometimes"}))


def test_machine_detection_from_a_placeholder_is_checked_once_rendered() -> None:
    job = JobParams({"MachineDetection": "{{amd|Enable}}"})

    assert validate({**CALL, "amd": ""}, job_params=job).params["MachineDetection"] == "Enable"
    with pytest.raises(InvalidRow, match=f"MachineDetection 'maybe' {WHY}"):
        validate({**CALL, "amd": "maybe"}, job_params=job)


# Braces would make placeholders, which have their own tests.
@given(st.text(st.characters(exclude_characters="{}"), max_size=30))
def test_only_twilios_two_values_pass(value: str) -> None:
    try:
        request = validate({**CALL, "MachineDetection": value})
    except InvalidRow as error:
        assert WHY in str(error)
        assert value.strip().casefold() not in ("enable", "detectmessageend")
    else:
        sent = request.params.get("MachineDetection")
        # Blank counts as absent.
        assert sent in ("Enable", "DetectMessageEnd") or (sent is None and not value.strip())
