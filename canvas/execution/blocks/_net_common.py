"""Helpers shared by the network blocks: credentials, the outbound policy, timeouts, failure classification, secret
redaction, and records → file conversion through the format blocks (csv/json/xml.from_records)."""
from __future__ import annotations

import dataclasses
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import PurePosixPath

from canvas.applications.redaction import Redactor
from canvas.applications.values import flag_value, port_value, text_value
from canvas.execution.blocks._formats import with_extension
from canvas.execution.blocks.base import VariableSpec, expect_records, merged_variables
from canvas.execution.context import BlockContext, BlockError, TransientBlockError
from canvas.execution.data import BlockData, FileData
from canvas.network.failures import describe_network_error, first_line
from canvas.network.guard import BlockedAddressError, ConnectTimeoutError, NetworkPolicy

DEFAULT_TIMEOUT_SECONDS = 30.0
FILE_FORMATS = ("csv", "json", "xml")


def timeout_variable() -> VariableSpec:
    return VariableSpec("number", default=DEFAULT_TIMEOUT_SECONDS, description="Seconds to wait for the server.")


def policy_of(context: BlockContext) -> NetworkPolicy:
    # No policy given means the strict default (public addresses only), never "anything goes".
    return context.network_policy or NetworkPolicy()


def timeout_of(context: BlockContext) -> float:
    value = context.variables.get("timeout")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return DEFAULT_TIMEOUT_SECONDS


def credentials_of(context: BlockContext, block_key: str) -> dict:
    if not context.credentials:
        raise BlockError(f"{block_key} needs a registered application with credentials")
    return context.credentials


def required_field(credentials: Mapping, field: str) -> str:
    value = text_value(credentials, field)
    if not value:
        raise BlockError(f"the application's {field} field is empty")
    return value


def port_field(credentials: Mapping, default: int) -> int:
    port = port_value(credentials, default)
    if port is None:
        raise BlockError("the application's port must be a number between 1 and 65535")
    return port


flag = flag_value


def positive_int(context: BlockContext, name: str, default: int) -> int:
    value = context.variables.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BlockError(f"variable '{name}' must be a whole number of 0 or more")
    return value


# --- secrets -------------------------------------------------------------------------------------------------


def credential_redactor(credentials: Mapping | None, extra: Iterable[str] = ()) -> Redactor:
    """Hides credential values in text meant for users (server replies sometimes echo what they were sent)."""
    return Redactor.for_credentials(credentials, extra=extra)


@contextmanager
def network_failures(host: str, port: int, timeout: float, redact: Redactor) -> Iterator[None]:
    """Socket-level failures in plain words: a refused address is final, a network problem is transient."""
    try:
        yield
    except BlockError:
        raise
    except BlockedAddressError as error:
        raise BlockError(str(error)) from None
    except ssl.SSLCertVerificationError as error:  # a certificate does not fix itself: no point in retrying
        raise BlockError(describe_network_error(error, host, port, timeout) or "TLS failure") from None
    except (OSError, EOFError) as error:
        reason = describe_network_error(error, host, port, timeout) or f"connection lost: {first_line(error)}"
        failure = TransientBlockError(redact(reason))
        # No connection, nothing sent: a block with side effects may be run again (see the runner's retry rule).
        failure.retry_safe = isinstance(error, (ConnectionRefusedError, socket.gaierror, ConnectTimeoutError))
        raise failure from None


# --- files ---------------------------------------------------------------------------------------------------


def file_format_variable(default: str = "csv") -> VariableSpec:
    return VariableSpec("string", default=default, choices=FILE_FORMATS, description="csv, json or xml for records.")


def as_file(context: BlockContext, data: BlockData, fileformat: str, filename: str, block_key: str) -> FileData:
    """The input file as is, or the input records written as a csv/json/xml file by the matching format block."""
    if isinstance(data, FileData):
        return data
    records = expect_records(data, block_key)
    if fileformat not in FILE_FORMATS:
        raise BlockError(f"variable 'fileformat' must be one of {', '.join(FILE_FORMATS)}")
    from canvas.execution.registry import get_block  # the registry imports this package while loading it

    format_block = get_block(f"{fileformat}.from_records")
    variables = merged_variables(format_block, {"filename": with_extension(filename, "." + fileformat)})
    return format_block().run(dataclasses.replace(context, variables=variables), records)


def target_file_name(requested: str | None, data: BlockData, fileformat: str) -> str:
    """The name to give the file: `requested` with the format's (or the input file's) extension when it lacks it."""
    if isinstance(data, FileData):
        if not requested:
            return data.name
        extension = PurePosixPath(data.name).suffix
        return with_extension(requested, extension) if extension else requested
    return with_extension(requested or "records", "." + (fileformat or "csv"))
