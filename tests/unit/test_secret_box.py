"""SecretBox: Fernet encryption at rest, key rotation, and the generated key file."""
from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from canvas.secrets import SecretBox, SecretDecryptError
from canvas.secrets import box as box_module

KEY_A = SecretBox.generate_key()
KEY_B = SecretBox.generate_key()


def test_round_trip_of_text_bytes_and_json():
    box = SecretBox([KEY_A])
    assert box.decrypt(box.encrypt("pässword")) == "pässword".encode()
    assert box.decrypt(box.encrypt(b"\x00\xff")) == b"\x00\xff"
    assert box.decrypt_json(box.encrypt_json({"port": 21, "user": "ø"})) == {"port": 21, "user": "ø"}
    assert isinstance(box.encrypt("x"), str)


def test_same_plaintext_gives_different_tokens():
    box = SecretBox([KEY_A])
    assert box.encrypt("x") != box.encrypt("x")


def test_rotation_from_a_through_b_a_to_b_alone():
    token_a = SecretBox.from_setting(KEY_A, Path("/nonexistent")).encrypt("secret")

    both = SecretBox.from_setting(f"{KEY_B},{KEY_A}", Path("/nonexistent"))
    assert both.decrypt(token_a) == b"secret"
    assert not both.is_current(token_a)
    rotated = both.rotate(token_a)
    assert both.is_current(rotated)

    only_b = SecretBox.from_setting(KEY_B, Path("/nonexistent"))
    assert only_b.decrypt(rotated) == b"secret"
    assert only_b.is_current(rotated)
    with pytest.raises(SecretDecryptError):
        only_b.decrypt(token_a)


def test_rotate_keeps_an_already_current_token_readable():
    box = SecretBox([KEY_B, KEY_A])
    token = box.encrypt("x")
    assert box.is_current(token)
    assert box.decrypt(box.rotate(token)) == b"x"


def test_first_key_encrypts():
    token = SecretBox([KEY_B, KEY_A]).encrypt("x")
    assert SecretBox([KEY_B]).decrypt(token) == b"x"
    with pytest.raises(SecretDecryptError):
        SecretBox([KEY_A]).decrypt(token)


@pytest.mark.parametrize("token", ["not-a-token", "", "gAAAAA" + "x" * 80])
def test_undecryptable_token_raises_without_quoting_it(token):
    box = SecretBox([KEY_A])
    with pytest.raises(SecretDecryptError) as caught:
        box.decrypt(token)
    assert token not in str(caught.value) or token == ""
    with pytest.raises(SecretDecryptError):
        box.rotate(token)
    assert box.is_current(token) is False


def test_token_of_other_key_message_does_not_contain_token():
    token = SecretBox([KEY_B]).encrypt("x")
    with pytest.raises(SecretDecryptError) as caught:
        SecretBox([KEY_A]).decrypt(token)
    assert token not in str(caught.value)


def test_no_keys_is_refused():
    with pytest.raises(ValueError):
        SecretBox([])


def test_a_single_string_is_not_taken_as_a_list_of_characters():
    with pytest.raises(TypeError):
        SecretBox(KEY_A)  # type: ignore[arg-type]


def test_repr_shows_no_key():
    assert KEY_A not in repr(SecretBox([KEY_A]))


def test_setting_tolerates_whitespace(tmp_path):
    box = SecretBox.from_setting(f"  {KEY_B} ,\n {KEY_A}\n", tmp_path)
    assert box.decrypt(SecretBox([KEY_A]).encrypt("x")) == b"x"
    assert SecretBox([KEY_B]).decrypt(box.encrypt("x")) == b"x"
    assert not (tmp_path / "secret.key").exists()


@pytest.mark.parametrize(
    ("setting", "position"),
    [
        ("not-a-key", "key 1 of 1"),
        (f"{KEY_A},c2hvcnQ=", "key 2 of 2"),  # valid base64, wrong length
        (f"{KEY_A},{KEY_B},!!!***", "key 3 of 3"),
        (f"{KEY_A},,{KEY_B}", "key 2 of 3"),
        (f"{KEY_A},", "key 2 of 2"),
    ],
    ids=["garbage", "wrong-length", "third-bad", "empty-middle", "trailing-comma"],
)
def test_malformed_key_in_setting_names_its_position_not_its_value(tmp_path, setting, position):
    with pytest.raises(ValueError) as caught:
        SecretBox.from_setting(setting, tmp_path)
    message = str(caught.value)
    assert "CANVAS_SECRET_KEYS" in message
    assert position in message
    bad_entry = setting.split(",")[int(position.split()[1]) - 1].strip()
    if bad_entry:
        assert bad_entry not in message
    assert KEY_A not in message and KEY_B not in message
    # The underlying decoding error is not chained: it could quote part of the key.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


@pytest.mark.parametrize("setting", [None, "", "   "])
def test_key_file_is_generated_with_0600_and_a_warning(tmp_path, caplog, setting):
    data_dir = tmp_path / "data"
    caplog.set_level(logging.WARNING, logger="canvas.secrets")
    previous_umask = os.umask(0)  # the mode must come from os.open, not from a friendly umask
    try:
        box = SecretBox.from_setting(setting, data_dir)
    finally:
        os.umask(previous_umask)

    key_file = data_dir / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    stored_key = key_file.read_text().strip()
    assert SecretBox([stored_key]).decrypt(box.encrypt("x")) == b"x"

    warnings = [record for record in caplog.records if record.name == "canvas.secrets"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert str(key_file) in message
    assert "unreadable" in message and "CANVAS_SECRET_KEYS" in message
    assert stored_key not in message


def test_key_file_is_reused_on_second_call_without_a_warning(tmp_path, caplog):
    token = SecretBox.from_setting(None, tmp_path).encrypt("x")
    caplog.clear()
    caplog.set_level(logging.WARNING, logger="canvas.secrets")
    again = SecretBox.from_setting(None, tmp_path)
    assert again.decrypt(token) == b"x"
    assert caplog.records == []


def test_existing_key_file_may_hold_several_keys(tmp_path):
    (tmp_path / "secret.key").write_text(f"{KEY_B},{KEY_A}\n")
    box = SecretBox.from_setting(None, tmp_path)
    assert box.decrypt(SecretBox([KEY_A]).encrypt("x")) == b"x"
    assert SecretBox([KEY_B]).decrypt(box.encrypt("y")) == b"y"


def test_setting_wins_over_key_file(tmp_path):
    (tmp_path / "secret.key").write_text(KEY_A)
    token = SecretBox.from_setting(KEY_B, tmp_path).encrypt("x")
    assert SecretBox([KEY_B]).decrypt(token) == b"x"


def test_malformed_key_file_names_the_file_not_the_key(tmp_path, monkeypatch):
    monkeypatch.setattr(box_module, "KEY_FILE_WAIT_SECONDS", 0)
    key_file = tmp_path / "secret.key"
    key_file.write_text("garbage-key-material")
    with pytest.raises(ValueError) as caught:
        SecretBox.from_setting(None, tmp_path)
    assert str(key_file) in str(caught.value)
    assert "key 1 of 1" in str(caught.value)
    assert "garbage-key-material" not in str(caught.value)


def test_empty_key_file_is_refused_after_the_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(box_module, "KEY_FILE_WAIT_SECONDS", 0.05)
    (tmp_path / "secret.key").write_text("")
    with pytest.raises(ValueError, match="is empty"):
        SecretBox.from_setting(None, tmp_path)


def test_reader_waits_for_a_key_file_another_process_is_still_writing(tmp_path):
    key_file = tmp_path / "secret.key"
    key_file.write_text("")  # created by the winner, not yet written

    def finish_writing():
        time.sleep(0.2)
        key_file.write_text(KEY_A + "\n")

    writer = threading.Thread(target=finish_writing)
    writer.start()
    try:
        box = SecretBox.from_setting(None, tmp_path)
    finally:
        writer.join()
    assert SecretBox([KEY_A]).decrypt(box.encrypt("x")) == b"x"


def _start_box_and_report(data_dir: str, barrier, results) -> None:
    barrier.wait()
    box = SecretBox.from_setting(None, Path(data_dir))
    results.put(box.encrypt("same"))


def test_processes_starting_at_once_end_up_with_the_same_key(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = 6
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_start_box_and_report, args=(str(tmp_path), barrier, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    tokens = [results.get(timeout=30) for _ in range(workers)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    stored_key = (tmp_path / "secret.key").read_text().strip()
    only_stored = SecretBox([stored_key])
    assert all(only_stored.decrypt(token) == b"same" for token in tokens)
    assert [path.name for path in tmp_path.iterdir()] == ["secret.key"]


def test_generate_key_gives_distinct_usable_keys():
    first, second = SecretBox.generate_key(), SecretBox.generate_key()
    assert first != second
    assert isinstance(first, str) and len(first) == 44
    SecretBox([first, second])
