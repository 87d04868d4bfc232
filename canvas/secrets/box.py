"""Encryption of secrets at rest (registered-application credentials) with Fernet keys.

Several keys may be configured at once so that keys can be rotated without downtime: the first key encrypts, every
key decrypts, and `rotate` re-encrypts an old token under the first key. No key and no token ever appears in a log
line or an exception message.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

logger = logging.getLogger("canvas.secrets")

KEY_FILE_NAME = "secret.key"
SETTING_NAME = "CANVAS_SECRET_KEYS"
# A process that lost the race to create the key file waits this long for the winner to finish writing it.
KEY_FILE_WAIT_SECONDS = 5.0
_KEY_FILE_POLL_SECONDS = 0.02


class SecretDecryptError(Exception):
    """A stored secret cannot be decrypted with any configured key (wrong keys, or the token is damaged)."""

    def __init__(self) -> None:
        # Deliberately fixed: the token itself must never reach a log through this message.
        super().__init__("Stored secret cannot be decrypted with any configured key")


class SecretBox:
    """Fernet encryption through MultiFernet: the first key encrypts, all keys decrypt."""

    def __init__(self, keys: Sequence[str]):
        if isinstance(keys, (str, bytes)):
            raise TypeError("keys must be a sequence of keys, not a single string")
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernets = [_fernet_for(key, f"key {position}") for position, key in enumerate(keys, start=1)]
        self._multi = MultiFernet(self._fernets)

    def __repr__(self) -> str:
        return f"SecretBox(<{len(self._fernets)} key(s)>)"

    @classmethod
    def from_setting(cls, setting: str | None, data_dir: Path) -> "SecretBox":
        """Keys from CANVAS_SECRET_KEYS; without it, from (or generated into) data_dir/secret.key."""
        if setting is not None and setting.strip():
            return cls(parse_key_list(setting, source=SETTING_NAME))
        return cls(_read_or_create_key_file(Path(data_dir) / KEY_FILE_NAME))

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def encrypt(self, plaintext: bytes | str) -> str:
        if isinstance(plaintext, str):
            plaintext = plaintext.encode("utf-8")
        return self._multi.encrypt(plaintext).decode("ascii")

    def decrypt(self, token: str | bytes) -> bytes:
        try:
            return self._multi.decrypt(token)
        except InvalidToken:
            raise SecretDecryptError() from None

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":"), ensure_ascii=False))

    def decrypt_json(self, token: str | bytes) -> Any:
        return json.loads(self.decrypt(token))

    def rotate(self, token: str | bytes) -> str:
        """The same plaintext (and timestamp) encrypted under the first key."""
        try:
            return self._multi.rotate(token).decode("ascii")
        except InvalidToken:
            raise SecretDecryptError() from None

    def is_current(self, token: str | bytes) -> bool:
        """True when the first key already decrypts the token, so a resumed rotation can skip it."""
        try:
            self._fernets[0].decrypt(token)
        except InvalidToken:
            return False
        return True


def parse_key_list(text: str, *, source: str) -> list[str]:
    """Comma-separated keys, whitespace around each tolerated. Errors name the position, never the key."""
    entries = [entry.strip() for entry in text.split(",")]
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(f"{source}: key {position} of {len(entries)} is empty")
        _fernet_for(entry, f"{source}: key {position} of {len(entries)}")
    return entries


def _fernet_for(key: str | bytes, label: str) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        # `from None`: the underlying error may quote part of the key.
        raise ValueError(f"{label} is not a valid Fernet key (expected 32 url-safe base64-encoded bytes)") from None


def _read_or_create_key_file(path: Path) -> list[str]:
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if _create_key_file(path):
            logger.warning(
                "Generated a new secret key at %s. Losing this file makes stored credentials unreadable. "
                "Set %s in production.",
                path,
                SETTING_NAME,
            )
    return _read_key_file(path)


def _create_key_file(path: Path) -> bool:
    """Write a fresh key; False when another process created the file first (it then holds the key to use)."""
    try:
        # O_EXCL makes creation atomic between processes; the mode is given at creation so the key is never
        # readable by others, not even for the moment a chmod afterwards would leave open.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="ascii") as key_file:
        key_file.write(SecretBox.generate_key() + "\n")
        key_file.flush()
        os.fsync(key_file.fileno())
    return True


def _read_key_file(path: Path) -> list[str]:
    """The file's keys. A file that is empty or unreadable as keys may be one another process is still writing,
    so it is re-read until KEY_FILE_WAIT_SECONDS have passed."""
    deadline = time.monotonic() + KEY_FILE_WAIT_SECONDS
    while True:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        try:
            if not text:
                raise ValueError(f"{path} is empty: delete it to generate a new key, or set {SETTING_NAME}")
            return parse_key_list(text, source=str(path))
        except ValueError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(_KEY_FILE_POLL_SECONDS)
