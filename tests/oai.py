"""Twilio's OpenAPI descriptions as JSON Schemas, to check request parameters and response bodies.

The four specs live in ``shared/twilio-oai/`` beside the repository. Schemas come out
self-contained: ``$ref`` into ``#/components/schemas`` resolved inline, OpenAPI's ``nullable``
turned into a ``"null"`` type, ``x-`` extensions and other OpenAPI-only keys dropped. Formats are
checked only for the few this module knows (see `FORMAT_CHECKER`); others, such as Twilio's
``phone-number`` (Lookup echoes whatever it was given), are ignored.

Twilio's specs mark nullability unevenly: their own examples return null for properties the schema
does not call nullable (Lookup's unrequested data packages, most ``error_code``s). A response
property is therefore also nullable wherever one of the operation's own response examples shows it
null. Paths may be given as templates (``/v2/PhoneNumbers/{PhoneNumber}``) or concrete
(``/v2/PhoneNumbers/+15005550006``).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "twilio-oai"
SPEC_FILES = (
    "twilio_api_v2010.json",
    "twilio_lookups_v2.json",
    "twilio_verify_v2.json",
    "twilio_studio_v2.json",
)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string", "pattern": r"^https://www\.twilio\.com/docs/errors/\d+$"},
        "status": {"type": "integer"},
    },
    "required": ["code", "message", "more_info", "status"],
}

# Keys that are OpenAPI's, not JSON Schema's (``nullable`` is converted before it is dropped).
_OPENAPI_ONLY = frozenset(
    {"nullable", "example", "examples", "discriminator", "xml", "externalDocs"}
)

Schema = dict[str, Any]


@functools.cache
def load_spec(name: str) -> dict[str, Any]:
    """One spec file, parsed; cached (``load_spec.cache_clear()`` empties the cache).

    A checkout without ``shared/`` beside it (a clone elsewhere) skips the tests that need the
    specs; CI (``CI=true``) has it, and there a missing spec fails."""
    if not SPEC_DIR.is_dir() and os.environ.get("CI") != "true":
        pytest.skip(f"{SPEC_DIR} is not beside the repo")
    spec: dict[str, Any] = json.loads((SPEC_DIR / name).read_text(encoding="utf-8"))
    return spec


@dataclass(frozen=True)
class Operation:
    spec_name: str
    template: str
    method: str
    definition: dict[str, Any]
    path_params: Mapping[str, str]
    """Values of the path parameters when the operation was found from a concrete path."""

    @property
    def spec(self) -> dict[str, Any]:
        return load_spec(self.spec_name)


@functools.cache
def _path_index() -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    index = []
    for name in SPEC_FILES:
        for template in load_spec(name)["paths"]:
            regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
            index.append((name, template, re.compile(regex)))
    return tuple(index)


def find_operation(path: str, method: str) -> Operation:
    """The operation for a template or concrete path; KeyError when no spec describes it."""
    method = method.lower()
    for name, template, regex in _path_index():
        if path == template:
            params: Mapping[str, str] = {}
        else:
            match = regex.fullmatch(path)
            if match is None:
                continue
            params = match.groupdict()
        definition = load_spec(name)["paths"][template].get(method)
        if definition is not None:
            return Operation(name, template, method, definition, params)
    raise KeyError(f"no Twilio spec describes {method.upper()} {path}")


def to_json_schema(schema: Any, spec: Mapping[str, Any], _stack: tuple[str, ...] = ()) -> Any:
    """An OpenAPI 3.0 schema as a self-contained JSON Schema (see the module docstring)."""
    if isinstance(schema, list):
        return [to_json_schema(item, spec, _stack) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in _stack:
            raise ValueError(f"recursive schema through {ref}")
        if not ref.startswith("#/components/schemas/"):
            raise ValueError(f"unsupported $ref {ref}")
        target = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        resolved = to_json_schema(target, spec, (*_stack, ref))
        return _allow_null(resolved) if schema.get("nullable") else resolved
    converted = {
        key: to_json_schema(value, spec, _stack) if key != "properties" else value
        for key, value in schema.items()
        if not key.startswith("x-") and key not in _OPENAPI_ONLY
    }
    if "properties" in converted:
        converted["properties"] = {
            name: to_json_schema(sub, spec, _stack) for name, sub in schema["properties"].items()
        }
    return _allow_null(converted) if schema.get("nullable") else converted


def _allow_null(schema: Schema) -> Schema:
    schema = dict(schema)
    kind = schema.get("type")
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list):
        schema["type"] = kind if "null" in kind else [*kind, "null"]
    elif "enum" not in schema and _constrains(schema):
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def _constrains(schema: Schema) -> bool:
    return any(key in schema for key in ("anyOf", "oneOf", "allOf", "properties", "items", "not"))


def _nullable_where_examples_are(schema: Schema, values: Sequence[Any]) -> Schema:
    if not values:
        return schema
    if any(value is None for value in values):
        schema = _allow_null(schema)
    present = [value for value in values if value is not None]
    target = schema["anyOf"][0] if "anyOf" in schema and len(schema) == 1 else schema
    properties = target.get("properties")
    if properties:
        for name, sub in list(properties.items()):
            nested = [v[name] for v in present if isinstance(v, dict) and name in v]
            properties[name] = _nullable_where_examples_are(sub, nested)
    items = target.get("items")
    if isinstance(items, dict):
        elements = [e for v in present if isinstance(v, list) for e in v]
        target["items"] = _nullable_where_examples_are(items, elements)
    return schema


def _require_all_properties(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_require_all_properties(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _require_all_properties(value) for key, value in schema.items()}
    if "properties" in schema:
        result["properties"] = {
            name: _require_all_properties(sub) for name, sub in schema["properties"].items()
        }
        result["required"] = sorted(set(schema.get("required", ())) | set(schema["properties"]))
    return result


def _success_response(operation: Operation, status: int | None) -> tuple[int, dict[str, Any]]:
    responses = operation.definition["responses"]
    codes = [int(code) for code in responses if code.isdigit() and 200 <= int(code) < 300]
    code = status if status is not None else min(codes)
    if str(code) not in responses:
        raise KeyError(f"{operation.template} describes no {code} response")
    return code, responses[str(code)]["content"]["application/json"]


def response_schema(
    path: str, method: str, status: int | None = None, *, strict: bool = True
) -> Schema:
    """The JSON Schema of an operation's success response (its first 2xx unless `status`).

    With `strict`, every object lists all its properties as required: a body must carry each
    property the spec names, null where allowed.
    """
    operation = find_operation(path, method)
    _, content = _success_response(operation, status)
    schema: Schema = to_json_schema(content["schema"], operation.spec)
    examples = [example["value"] for example in content.get("examples", {}).values()]
    schema = _nullable_where_examples_are(copy.deepcopy(schema), examples)
    return _require_all_properties(schema) if strict else schema


def response_properties(path: str, method: str, status: int | None = None) -> set[str]:
    """Names of the top-level properties of the success response."""
    schema = response_schema(path, method, status, strict=False)
    return set(schema.get("properties", {}))


def validate_response(
    path: str, method: str, body: Any, status: int | None = None, *, strict: bool = True
) -> None:
    """Raise jsonschema.ValidationError unless `body` fits the operation's success response."""
    _validate(body, response_schema(path, method, status, strict=strict))


def validate_error(body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` is a Twilio error body."""
    _validate(body, ERROR_SCHEMA)


def request_schema(path: str, method: str) -> Schema:
    """The parameters an operation takes: the form body for POST, the query for GET.

    Unknown parameter names are rejected (``additionalProperties: false``), and the "one of"
    groups Twilio keeps in ``x-twilio.conditional`` (From or MessagingServiceSid; Body, MediaUrl
    or ContentSid; Url, Twiml or ApplicationSid) become ``anyOf`` of ``required``.
    """
    operation = find_operation(path, method)
    definition = operation.definition
    if "requestBody" in definition:
        content = definition["requestBody"]["content"]
        raw = content.get("application/x-www-form-urlencoded") or next(iter(content.values()))
        schema: Schema = dict(to_json_schema(raw["schema"], operation.spec))
    else:
        query = [p for p in definition.get("parameters", ()) if p.get("in") == "query"]
        schema = {
            "type": "object",
            "properties": {p["name"]: to_json_schema(p["schema"], operation.spec) for p in query},
            "required": [p["name"] for p in query if p.get("required")],
        }
    schema["additionalProperties"] = False
    groups = definition.get("x-twilio", {}).get("conditional", [])
    by_snake = {_snake(name): name for name in schema.get("properties", {})}
    if groups:
        schema["allOf"] = [
            {"anyOf": [{"required": [by_snake[name]]} for name in group if name in by_snake]}
            for group in groups
        ]
    return schema


def path_params_schema(path: str, method: str) -> Schema:
    operation = find_operation(path, method)
    params = [p for p in operation.definition.get("parameters", ()) if p.get("in") == "path"]
    return {
        "type": "object",
        "properties": {p["name"]: to_json_schema(p["schema"], operation.spec) for p in params},
        "required": [p["name"] for p in params if p.get("required")],
    }


def validate_request(path: str, method: str, params: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless the wire parameters fit the operation.

    `params` maps names to strings (or lists of strings for repeated keys), as sent; values are
    converted to the schema's integer, number, boolean and array types before validation. A
    concrete `path` also has its path parameters checked (an account SID's pattern, say).
    """
    schema = request_schema(path, method)
    properties = schema.get("properties", {})
    typed = {name: _coerce(value, properties.get(name, {})) for name, value in params.items()}
    _validate(typed, schema)
    operation = find_operation(path, method)
    if operation.path_params:
        _validate(dict(operation.path_params), path_params_schema(path, method))


def _coerce(value: Any, schema: Schema) -> Any:
    kind = schema.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind}
    if "array" in kinds:
        values = value if isinstance(value, list) else [value]
        return [_coerce(v, schema.get("items", {})) for v in values]
    if not isinstance(value, str):
        return value
    if "boolean" in kinds and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if "integer" in kinds and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "number" in kinds:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


# -- formats -----------------------------------------------------------------------------------


def _is_iso8601(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.tzinfo is not None and "T" in value


def _is_rfc2822(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return parsedate_to_datetime(value).tzinfo is not None


def _is_uri(value: object) -> bool:
    # Twilio's v2010 list envelopes give relative URIs ("/2010-04-01/...") under format uri.
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return (parts.scheme in ("http", "https") and bool(parts.netloc)) or value.startswith("/")


def _is_currency(value: object) -> bool:
    return not isinstance(value, str) or re.fullmatch(r"[A-Z]{3}", value) is not None


FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time", raises=ValueError)(_is_iso8601)
FORMAT_CHECKER.checks("date-time-rfc-2822", raises=(TypeError, ValueError))(_is_rfc2822)
FORMAT_CHECKER.checks("uri")(_is_uri)
FORMAT_CHECKER.checks("currency")(_is_currency)


def _validate(instance: Any, schema: Schema) -> None:
    validator = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error
