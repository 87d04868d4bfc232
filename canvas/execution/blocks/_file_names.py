"""Checks of the variables that name files, for ``VariableSpec.text_check``: a name such as ``../../etc/passwd`` is
refused when a template or workflow is written, not by the first run that uses it."""
from __future__ import annotations

from canvas.storage.blob import key_problem


def file_name_problem(text: str) -> str | None:
    """A name inside a directory given elsewhere (filepath): a path, '.', '..' or a control character cannot work
    (a newline would even end an FTP command early)."""
    if any(ord(character) < 32 or ord(character) == 127 for character in text):
        return f"must not contain control characters such as a newline: {text!r}"
    if "/" in text or "\\" in text or text in (".", ".."):
        return f"must be a file name, not a path: {text!r}"
    return None


def file_hub_name_problem(text: str) -> str | None:
    """A File Hub name: folders separated by '/', inside the account's File Hub (empty: the block's default)."""
    problem = _relative_path_problem(text)
    return None if problem is None else f"must name a file inside the File Hub: {text!r} {problem}"


def output_file_name_problem(text: str) -> str | None:
    """The name a format block gives the file it makes; a later block may keep it in the File Hub under that name,
    so it may hold folders, but never leave them (empty: the block's default)."""
    problem = _relative_path_problem(text)
    return None if problem is None else f"must be a file name or a relative path: {text!r} {problem}"


def _relative_path_problem(text: str) -> str | None:
    return None if not text else key_problem(text)
