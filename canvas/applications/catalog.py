"""The application catalog: one YAML file per application under templates_catalog/applications/.

Loading validates every file completely and is all-or-nothing: a bad file raises CatalogError naming the file, the
entry (e.g. `credentialFields[2].Type`) and the problem, and no half-loaded catalog is ever returned.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

FIELD_TYPES = ("text", "password", "textarea", "number", "bool", "select")
KINDS = ("ftp", "sftp", "smtp", "sql", "rest", "filehub", "none")

_REQUIRED_APP_KEYS = ("id", "name", "shortName", "description", "tag", "kind", "credentialFields")
_OPTIONAL_APP_KEYS = ("vendorUrl", "isOAuthApp", "sessionTimeMins", "sessionSlidingExpiry", "verification")
_REQUIRED_FIELD_KEYS = ("ShortName", "Name", "Type")
# `Secret` is ours and never shown by the API: it marks a secret that the document displays as plain text
# (e.g. Talentsoft's client_secret), so that masking treats it like a password without changing its documented shape.
_OPTIONAL_FIELD_KEYS = ("Value", "Options", "Optional", "Desc", "Hidden", "Secret")
_APP_SHORT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_FIELD_SHORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CatalogError(Exception):
    """A catalog file is unusable. The message names the file, the entry and the problem."""

    def __init__(self, file: Path | str, entry: str, problem: str):
        super().__init__(f"{file}: {entry}: {problem}")
        self.file, self.entry, self.problem = str(file), entry, problem


@dataclass(frozen=True)
class CredentialField:
    short_name: str
    name: str
    type: str
    value: str = ""
    optional: bool = False
    desc: str = ""
    hidden: bool = False
    options: str | None = None  # "value|Label,value|Label" for select fields only
    secret: bool = False  # marked secret in the catalog even though the document shows it as plain text

    @property
    def is_secret(self) -> bool:
        return self.type == "password" or self.hidden or self.secret

    @property
    def option_values(self) -> tuple[str, ...]:
        return tuple(value for value, _label in parse_options(self.options or ""))

    def to_api(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "ShortName": self.short_name, "Name": self.name, "Type": self.type, "Value": self.value,
        }
        if self.type == "select":
            shown["Options"] = self.options
        shown.update({"Optional": self.optional, "Desc": self.desc, "Hidden": self.hidden})
        return shown


@dataclass(frozen=True)
class ApplicationSpec:
    id: str
    name: str
    short_name: str
    description: str
    kind: str
    tag: str = ""
    vendor_url: str = ""
    is_oauth_app: bool = False
    session_time_mins: int = 0
    session_sliding_expiry: bool = False
    # Extra settings for the verifier, `enabled` removed; None when the application is not verified.
    verification: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)
    credential_fields: tuple[CredentialField, ...] = ()

    @property
    def verification_enabled(self) -> bool:
        return self.verification is not None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(cf.short_name for cf in self.credential_fields)

    @property
    def secret_field_names(self) -> frozenset[str]:
        return frozenset(cf.short_name for cf in self.credential_fields if cf.is_secret)

    def credential_field(self, short_name: str) -> CredentialField | None:
        return next((cf for cf in self.credential_fields if cf.short_name == short_name), None)

    def to_api(self) -> dict[str, Any]:
        """The documented shape of one entry of GET /api/Applications."""
        return {
            "id": self.id,
            "name": self.name,
            "shortName": self.short_name,
            "description": self.description,
            "vendorUrl": self.vendor_url,
            "credentialFields": [cf.to_api() for cf in self.credential_fields],
            "credentialsJson": {cf.short_name: None for cf in self.credential_fields},
            "tag": self.tag,
            "sessionTimeMins": self.session_time_mins,
            "sessionSlidingExpiry": self.session_sliding_expiry,
        }


class ApplicationCatalog:
    """Immutable set of applications, looked up by id or shortName, iterated by name."""

    def __init__(self, specs: list[ApplicationSpec]):
        self._by_id = {spec.id: spec for spec in specs}
        self._by_short_name = {spec.short_name: spec for spec in specs}
        if len(self._by_id) != len(specs) or len(self._by_short_name) != len(specs):
            raise ValueError("application ids and shortNames must be unique")
        self._ordered = tuple(sorted(specs, key=lambda spec: (spec.name.casefold(), spec.short_name)))

    def get(self, application_id: str | uuid.UUID) -> ApplicationSpec | None:
        """The application with this id; ids compare as UUIDs, so case and braces do not matter."""
        try:
            canonical = str(uuid.UUID(str(application_id)))
        except ValueError:
            return None
        return self._by_id.get(canonical)

    def get_by_short_name(self, short_name: str) -> ApplicationSpec | None:
        return self._by_short_name.get(short_name)

    def __iter__(self) -> Iterator[ApplicationSpec]:
        return iter(self._ordered)

    def __len__(self) -> int:
        return len(self._ordered)

    def __contains__(self, application_id: object) -> bool:
        return isinstance(application_id, (str, uuid.UUID)) and self.get(application_id) is not None

    def to_api(self) -> list[dict[str, Any]]:
        return [spec.to_api() for spec in self._ordered]


def load_application_catalog(directory: Path) -> ApplicationCatalog:
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogError(directory, "directory", "does not exist or is not a directory")
    specs: list[ApplicationSpec] = []
    seen_ids: dict[str, Path] = {}
    seen_short_names: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")):
        spec = _load_file(path)
        _claim(seen_ids, spec.id, path, "id")
        _claim(seen_short_names, spec.short_name, path, "shortName")
        specs.append(spec)
    return ApplicationCatalog(specs)


def parse_options(options: str) -> list[tuple[str, str]]:
    """"live|Live Environment,test|Test Environment" -> [("live", "Live Environment"), ("test", "Test Environment")]."""
    pairs = []
    for item in options.split(","):
        value, separator, label = item.partition("|")
        if not separator or not value.strip() or not label.strip():
            raise ValueError(f"option {item.strip()!r} is not of the form value|Label")
        pairs.append((value.strip(), label.strip()))
    return pairs


def _claim(seen: dict[str, Path], key: str, path: Path, entry: str) -> None:
    if key in seen:
        raise CatalogError(path, entry, f"{key!r} is already used by {seen[key]}")
    seen[key] = path


# libyaml's parser where PyYAML was built with it (the wheels are): the pure-Python one took ~0.4 s of every app's
# start reading the catalog.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(SAFE_LOADER):
    """SafeLoader that refuses duplicate mapping keys, which PyYAML would otherwise silently overwrite."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # the base class reports unhashable keys itself
            if key in keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as stream:
            return yaml.load(stream, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(error, "problem", None) or str(error)
        raise CatalogError(path, where, f"YAML syntax error: {problem}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogError(path, "file", f"cannot be read: {error}") from None


def _load_file(path: Path) -> ApplicationSpec:
    document = _read_yaml(path)
    reader = _EntryReader(path, document, "(document)")
    reader.require_mapping()
    reader.refuse_unknown_keys(_REQUIRED_APP_KEYS + _OPTIONAL_APP_KEYS)
    return ApplicationSpec(
        id=_read_uuid(reader),
        name=reader.string("name", non_empty=True),
        short_name=reader.string("shortName", pattern=_APP_SHORT_NAME),
        description=reader.string("description"),
        kind=reader.choice("kind", KINDS),
        tag=reader.string("tag"),
        vendor_url=reader.string("vendorUrl", default=""),
        is_oauth_app=reader.boolean("isOAuthApp", default=False),
        session_time_mins=reader.non_negative_int("sessionTimeMins", default=0),
        session_sliding_expiry=reader.boolean("sessionSlidingExpiry", default=False),
        verification=_read_verification(reader),
        credential_fields=_read_fields(reader),
    )


def _read_uuid(reader: "_EntryReader") -> str:
    text = reader.string("id")
    try:
        canonical = str(uuid.UUID(text))
    except ValueError:
        canonical = None
    if canonical != text:
        reader.fail("id", f"{text!r} is not a lowercase UUID of the form 8-4-4-4-12")
    return text


def _read_verification(reader: "_EntryReader") -> Mapping[str, Any] | None:
    settings = reader.get("verification", default=None)
    if settings is None:
        return None
    if not isinstance(settings, dict):
        reader.fail("verification", "must be a mapping such as {enabled: true}")
    enabled = settings.get("enabled", False)
    if not isinstance(enabled, bool):
        reader.fail("verification.enabled", "must be true or false")
    if not enabled:
        return None
    return MappingProxyType({key: value for key, value in settings.items() if key != "enabled"})


def _read_fields(reader: "_EntryReader") -> tuple[CredentialField, ...]:
    entries = reader.get("credentialFields")
    if not isinstance(entries, list):
        reader.fail("credentialFields", "must be a list (empty when the application needs no credentials)")
    fields = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        credential_field = _read_field(_EntryReader(reader.path, entry, f"credentialFields[{index}]"))
        if credential_field.short_name in seen:
            reader.fail(f"credentialFields[{index}].ShortName", f"duplicate field {credential_field.short_name!r}")
        seen.add(credential_field.short_name)
        fields.append(credential_field)
    return tuple(fields)


def _read_field(reader: "_EntryReader") -> CredentialField:
    reader.require_mapping()
    reader.refuse_unknown_keys(_REQUIRED_FIELD_KEYS + _OPTIONAL_FIELD_KEYS)
    field_type = reader.choice("Type", FIELD_TYPES)
    return CredentialField(
        short_name=reader.string("ShortName", pattern=_FIELD_SHORT_NAME),
        name=reader.string("Name", non_empty=True),
        type=field_type,
        value=reader.string("Value", default=""),
        optional=reader.boolean("Optional", default=False),
        desc=reader.string("Desc", default=""),
        hidden=reader.boolean("Hidden", default=field_type == "password"),
        options=_read_options(reader, field_type),
        secret=reader.boolean("Secret", default=False),
    )


def _read_options(reader: "_EntryReader", field_type: str) -> str | None:
    if field_type != "select":
        if reader.has("Options"):
            reader.fail("Options", "is only allowed for Type select")
        return None
    if not reader.has("Options"):
        reader.fail("Options", "is required for Type select (\"value|Label,value|Label\")")
    options = reader.string("Options", non_empty=True)
    try:
        values = [value for value, _label in parse_options(options)]
    except ValueError as error:
        reader.fail("Options", str(error))
    if len(set(values)) != len(values):
        reader.fail("Options", "option values must be unique")
    return options


class _EntryReader:
    """Typed access to one YAML mapping; every failure becomes a CatalogError naming file and entry."""

    _MISSING = object()

    def __init__(self, path: Path, data: Any, entry: str):
        self.path, self.data, self.entry = path, data, entry

    def _name(self, key: str) -> str:
        return key if self.entry == "(document)" else f"{self.entry}.{key}"

    def fail(self, key: str, problem: str) -> None:
        raise CatalogError(self.path, self._name(key), problem)

    def require_mapping(self) -> None:
        if not isinstance(self.data, dict):
            raise CatalogError(self.path, self.entry, "must be a mapping of keys to values")

    def refuse_unknown_keys(self, allowed: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                self.fail(str(key), f"unknown key (allowed: {', '.join(allowed)})")

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = _MISSING) -> Any:
        if key in self.data:
            return self.data[key]
        if default is self._MISSING:
            self.fail(key, "is missing")
        return default

    def string(
        self, key: str, *, default: Any = _MISSING, non_empty: bool = False, pattern: re.Pattern | None = None
    ) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {type(value).__name__}")
        if (non_empty or pattern) and not value.strip():
            self.fail(key, "must not be empty")
        if pattern is not None and not pattern.match(value):
            self.fail(key, f"{value!r} must match {pattern.pattern}")
        return value

    def boolean(self, key: str, *, default: Any = _MISSING) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return value

    def non_negative_int(self, key: str, *, default: Any = _MISSING) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(key, "must be a whole number, 0 or more")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.get(key)
        if value not in choices:
            self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value
