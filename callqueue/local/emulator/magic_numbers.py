"""Twilio's test-credential magic numbers that more than one of the emulated APIs checks
(docs/iam/test-credentials); each API's own are beside it."""

VALID_FROM = "+15005550006"
INVALID_NUMBER = "+15005550001"
LANDLINE_NUMBER = "+15005550009"
