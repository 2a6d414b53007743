"""Why a record, or a phone number typed anywhere, cannot be sent: the messages a user reads."""

from __future__ import annotations

from chalicelib.errors import CallqueueError

PHONE_NUMBER = "a valid phone number"


class InvalidRow(CallqueueError):
    """A record that cannot become a request; str(error) is the reason shown to the user."""


class InvalidNumber(InvalidRow):
    """A value that is not a phone number Twilio would take. str(error) shows the value, what it
    should have been and why not (``+1234567 is not a valid phone number (too short for +1)``),
    led by the column once a row's check knows it (``To: +1234567 is ...``)."""

    def __init__(self, value: str, why: str, *, what: str = PHONE_NUMBER, column: str = "") -> None:
        lead = f"{column}: " if column else ""
        super().__init__(f"{lead}{shown(value)} is not {what} ({why})")
        self.value = value
        self.why = why
        self.what = what
        self.column = column

    def named(self, column: str) -> InvalidNumber:
        """The same error, led by the column the value came from."""
        return InvalidNumber(self.value, self.why, what=self.what, column=column)


def shown(value: str) -> str:
    """A value as a message quotes it: as typed, or as a Python literal when it is empty or holds
    spaces or unprintable characters, whose ends a reader could not otherwise see."""
    plain = value.isprintable() and value != "" and not any(char.isspace() for char in value)
    return value if plain else repr(value)
