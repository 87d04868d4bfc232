"""Form pieces shared by the pages that bind a workflow's applications and set its blocks' variables (a template's
instantiation, a workflow's upgrade and its own page): each variable as a labelled field, each needed application as a
<select> of the account's registered ones, and a schema's or a service's refusal as errors keyed by form field."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import marshmallow as ma
from flask import url_for
from werkzeug.datastructures import MultiDict

from canvas.applications import service as applications
from canvas.catalog.definition import ChainEntry, TemplateDefinition
from canvas.console.resources import (
    acting_account_id,
    blp,
    console_page_exists,
    field_errors,
)
from canvas.errors import BadRequestError, CanvasError
from canvas.execution.blocks.base import VariableSpec
from canvas.execution.registry import get_block
from canvas.extensions import services
from canvas.json_input import decode_json

# The registered applications a binding <select> offers: an account has a handful of each kind; a bound keeps one
# page fast even for an account that registered thousands.
APPLICATION_CHOICES = 200
APPLICATION_FIELD = "applications.{}"  # the service names a binding's errors so: the <select> has that name
VARIABLE_FIELD = "variable.{}.{}"  # uniqueBlockId, variable name
BLOCK_VARIABLES_FIELD = "chain[{}].variables"  # the service's name for a block's variables (by position)


@blp.app_template_filter("variable_text")
def shown(value: Any) -> str:
    """A variable's value as a form field holds it: text as it is, anything else as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- binding applications --------------------------------------------------------------------------------------------

@dataclass
class ApplicationChoice:
    """One application a template needs, and the acting account's registered applications of that kind."""

    short_name: str
    label: str  # the application's name
    registered: list = field(default_factory=list)
    total: int = 0
    register_url: str | None = None

    @property
    def field(self) -> str:
        return APPLICATION_FIELD.format(self.short_name)


def application_choices(session, short_names) -> list[ApplicationChoice]:  # noqa: ANN001
    catalog = services().application_catalog
    choices = []
    for short_name in short_names:
        spec = catalog.get_by_short_name(short_name)
        choice = ApplicationChoice(short_name, spec.name if spec else short_name)
        if spec is not None:
            choice.registered, choice.total = applications.slice_of_registered(
                session, acting_account_id(), 0, APPLICATION_CHOICES, uuid.UUID(spec.id))
            choice.register_url = url_if_page_exists("console.register_application", application_id=spec.id)
        choices.append(choice)
    return choices


def url_if_page_exists(endpoint: str, **values: Any) -> str | None:
    """A link to another area's page, or none while that page is not part of the console."""
    return url_for(endpoint, **values) if console_page_exists(endpoint) else None


def chosen_applications(choices: list[ApplicationChoice], form: MultiDict) -> dict[str, str]:
    """shortName -> the registered application chosen; a kind left unchosen is left out, for the service to name."""
    return {choice.short_name: form[choice.field] for choice in choices if form.get(choice.field)}


# --- instantiating ---------------------------------------------------------------------------------------------------

@dataclass
class VariableField:
    block_id: str
    name: str
    spec: VariableSpec
    template_value: Any

    @property
    def template_text(self) -> str:
        """The template's value, as the field first shows it."""
        return shown(self.template_value)

    @property
    def field(self) -> str:
        return VARIABLE_FIELD.format(self.block_id, self.name)

    @property
    def options(self) -> list[str] | None:
        """A <select>'s values for an enumeration or a boolean, "" (unset) first when the template sets none; None
        for free text."""
        values = list(self.spec.choices) or ([True, False] if self.spec.type == "boolean" else [])
        if not values:
            return None
        return ([""] if self.template_text == "" else []) + [shown(value) for value in values]

    @property
    def multiline(self) -> bool:
        return self.spec.type in ("array", "object") or "\n" in self.template_text or len(self.template_text) > 80

    def value(self, text: str) -> Any:
        """The typed value of what the field holds (JSON but for text variables); the service checks its type."""
        if self.spec.type == "string":
            return text
        try:
            return decode_json(text)  # the one decoder: nesting and NUL characters are refused, not recursed into
        except ValueError:
            if self.spec.type == "any":
                return text
            raise BadRequestError(f"{self.name}: '{text}' is not a valid {self.spec.type} (write it as JSON)",
                                  field=self.field) from None


def variable_blocks(definition: TemplateDefinition) -> list[dict]:
    """Per block of the template: every variable its block type declares, with the template's value."""
    return [{"number": number, "entry": entry, "error_field": BLOCK_VARIABLES_FIELD.format(number - 1),
             "fields": variable_fields(entry)} for number, entry in enumerate(definition.chain, start=1)]


def variable_fields(entry: ChainEntry) -> list[VariableField]:
    declared = get_block(entry.block).variables
    return [VariableField(entry.unique_block_id, name, spec, entry.variables.get(name, spec.default))
            for name, spec in declared.items()]


def chain_overrides(blocks: list[dict], form: MultiDict) -> tuple[list[dict], dict[str, str]]:
    """The chain of a Workflow POST: each block with the variables changed from the template's values (a value left
    as the template has it is no override: a later template version may change it), and the fields not readable."""
    chain, errors = [], {}
    for block in blocks:
        variables = {}
        for variable in block["fields"]:
            try:
                changed = _changed_value(variable, form.get(variable.field))
            except BadRequestError as error:
                errors.update(field_errors(error))
                continue
            if changed is not _UNCHANGED:
                variables[variable.name] = changed
        chain.append({"uniqueBlockId": block["entry"].unique_block_id, "variables": variables})
    return chain, errors


_UNCHANGED = object()


def _changed_value(variable: VariableField, text: str | None) -> Any:
    """The field's value when it differs from the template's, else _UNCHANGED (an empty field of a typed variable
    too: it cannot mean a value)."""
    if text is None:
        return _UNCHANGED
    text = text.replace("\r\n", "\n")  # a browser sends a <textarea>'s line ends as CR LF
    if text == variable.template_text or (text == "" and variable.spec.type != "string"):
        return _UNCHANGED
    value = variable.value(text)
    return _UNCHANGED if value == variable.template_value else value


class FormErrors(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


@contextmanager
def as_form_errors() -> Iterator[None]:
    """A request schema's or a service's refusal as the form's errors, keyed by the field they name."""
    try:
        yield
    except ma.ValidationError as error:
        raise FormErrors(schema_errors(error.messages)) from None
    except CanvasError as error:
        raise FormErrors(field_errors(error)) from None


def schema_errors(messages: Any, path: tuple[str, ...] = ()) -> dict[str, str]:
    """marshmallow's nested messages by the dotted name of their field (`name`, `applications.FTP`)."""
    if isinstance(messages, dict):
        found = {}
        for key, nested in messages.items():
            # a Dict field nests its key's and value's messages under "key" / "value": the field is the entry
            found.update(schema_errors(nested, path if key in ("key", "value") else (*path, str(key))))
        return found
    text = " ".join(str(message) for message in messages) if isinstance(messages, list) else str(messages)
    name = ".".join(path) or "form"
    return {name: f"{name}: {text}" if path else text}
