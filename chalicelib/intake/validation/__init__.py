"""Turn one record of a user's file into a CallRequest, or say exactly why it cannot be sent.

The parameters, their types and which are required come from Twilio's OpenAPI request schemas
(twilio_api_v2010 for Messages and Calls, twilio_lookups_v2, twilio_verify_v2, twilio_studio_v2),
transcribed into api_params so nothing loads a spec at run time.

Rules a user of the file format relies on:

- The ``api`` column picks the endpoint (messages, calls, lookup, verify, studio; any case); when it
  is absent or blank the row is a message.
- Other columns are Twilio's own parameter names, matched regardless of case (``to``, ``TO``).
  Lookup also takes ``To`` for ``PhoneNumber``, and Verify takes the spec's ``ServiceSid`` for
  ``VerifyServiceSid``.
- Columns that are not parameters of the chosen endpoint are ignored and never sent: files carry
  their own columns (customer_id, region) and one file can mix endpoints. The price is that a
  misspelt optional parameter is dropped without a word; a misspelt required one still fails as
  missing.
- Empty values, whitespace-only strings, JSON null and empty lists count as absent.
- Repeatable parameters (MediaUrl, StatusCallbackEvent, RecordingStatusCallbackEvent) take a JSON
  list or, in CSV, several values separated by whitespace; MediaUrl also by ``|``. Neither can
  appear unencoded in a URL, so splitting never cuts one. PersistentAction values hold spaces,
  so in CSV they are separated by line breaks.
- Phone numbers are sent in E.164 (phone_numbers has the rules). Only unambiguous rewriting is
  done: spaces, dashes, dots and parentheses are dropped, a ``(0)`` trunk prefix after the
  country code is dropped, and a leading ``00`` becomes ``+``. A number without a country code
  is read in the DEFAULT_REGION setting, and rejected when there is none, never guessed. A To or
  From must be a valid number by phonenumbers' metadata, and Twilio's test numbers (+1 500 555
  xxxx) always count as valid; Lookup's PhoneNumber need only be of a possible length, since
  Lookup says whether it is valid. A rejection names the column and says why:
  ``To: +1234567 is not a valid phone number (too short for +1)``.
  Message To/From also take channel addresses (``whatsapp:+1...``), From also short codes and
  alphanumeric sender IDs; call To/From also ``sip:`` and ``client:`` addresses.
- Values are sent as Twilio expects them: strings, booleans as ``true``/``false``, whole numbers
  without a fraction, JSON parameters (Studio's Parameters, Verify's RateLimits, ...) as a JSON
  string that must hold an object.
- No value may nest deeper than the readers' MAX_JSON_DEPTH, whether it is a JSON record's own
  object or a JSON string in a CSV cell: the depth is measured without recursing, before
  json.loads or json.dumps could.

The returned CallRequest holds canonical names only; for lookup, verify and studio it also holds
the path parameter (PhoneNumber, VerifyServiceSid, FlowSid) the sender puts in the URL.

Placeholders (`{{column}}`) are filled and job-wide parameters applied first, by templates, so
every rule above applies to what is sent. Each API's parameters are in api_params, each kind
of value's checks in value_checks (phone numbers' in phone_numbers), what is checked of a
record as a whole in row_checks, and the errors in exceptions. `normalise_number` is for a
number typed anywhere else (a suppression added by hand): the same rules, the same messages.
"""

from __future__ import annotations

from chalicelib.intake.validation.exceptions import InvalidNumber, InvalidRow
from chalicelib.intake.validation.phone_numbers import normalise_number
from chalicelib.intake.validation.row_checks import validate

__all__ = ["InvalidNumber", "InvalidRow", "normalise_number", "validate"]
