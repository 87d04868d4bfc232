"""Credentials are encrypted at rest, never shown, never logged; key rotation re-encrypts them safely."""
from __future__ import annotations

import json
import logging
import uuid

import pytest
from sqlalchemy import text

from canvas.secrets import SecretBox
from canvas.secrets.rotation import rotate_all

FTP_APP = "5f814909-01ea-4395-96ee-5ba7614128fc"
SFTP_SHORT_NAME = "SFTP"
SMTP_SHORT_NAME = "SMTP"


def _app_id(client, headers, short_name: str) -> str:
    return next(app["id"] for app in client.get("/api/Applications", headers=headers).json
                if app["shortName"] == short_name)


def test_no_secret_reaches_a_log_line_an_answer_or_the_database_in_plaintext(
        app, client, org, ftp_server, sftp_server, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [ftp_server.password, sftp_server.password, smtp_server.password, "Wrong-Secret-9876"]
    answers = []

    def call(method: str, url: str, **kwargs):
        response = getattr(client, method)(url, headers=org.admin_headers, **kwargs)
        answers.append(response.get_data(as_text=True))
        return response

    registrations = [
        (FTP_APP, ftp_server.credentials()),
        (_app_id(client, org.admin_headers, SFTP_SHORT_NAME), sftp_server.credentials()),
        (_app_id(client, org.admin_headers, SMTP_SHORT_NAME), smtp_server.credentials(fromAddress="canvas@test.example")),
    ]
    ids = []
    for application_id, credentials in registrations:
        answer = call("post", "/api/RegApplication", json={"applicationId": application_id,
                                                           "credentialsJson": json.dumps(credentials)})
        assert answer.status_code == 200, answer.json
        ids.append(answer.json)
    failed = call("post", "/api/RegApplication", json={
        "applicationId": FTP_APP, "credentialsJson": json.dumps(ftp_server.credentials(password=secrets[-1]))})
    assert failed.status_code == 400
    call("get", "/api/RegApplications")
    for registered_id in ids:
        call("get", f"/api/RegApplication/{registered_id}")
        call("post", "/api/VerifyRegApplication", json={"id": registered_id})
    call("post", "/api/UpdateRegApplication",
         json={"id": ids[0], "credentialsJson": json.dumps({"password": secrets[-1]})})

    logged = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    for secret in secrets:
        assert secret not in logged
        assert all(secret not in answer for answer in answers)
    with app.extensions["canvas"].db.engine.connect() as connection:
        stored = [str(row) for row in connection.execute(text("SELECT * FROM registered_application"))]
    assert len(stored) == 3
    assert all(secret not in row for row in stored for secret in secrets)


def _store(app, box: SecretBox, count: int) -> list[uuid.UUID]:
    from canvas.models import RegisteredApplication
    from tests.conftest import Org

    org = Org(app, f"Rot{uuid.uuid4().hex[:6]}")
    ids = []
    with app.extensions["canvas"].db.transaction() as session:
        for number in range(count):
            registered = RegisteredApplication(
                account_id=uuid.UUID(org.admin_id), application_id=uuid.UUID(FTP_APP), short_name="FTP",
                tag_text=f"r{number}", credentials_ciphertext=box.encrypt_json({"password": f"pw-{number}"}))
            session.add(registered)
            session.flush()
            ids.append(registered.id)
    return ids


def _read_all(app, box: SecretBox, ids: list[uuid.UUID]) -> list[dict]:
    from canvas.models import RegisteredApplication

    with app.extensions["canvas"].db.sessions() as session:
        return [box.decrypt_json(session.get(RegisteredApplication, rid).credentials_ciphertext) for rid in ids]


def test_rotation_from_key_a_to_key_b(app):
    key_a, key_b = SecretBox.generate_key(), SecretBox.generate_key()
    ids = _store(app, SecretBox([key_a]), 5)
    report = rotate_all(app.extensions["canvas"].db, SecretBox([key_b, key_a]), batch_size=2)
    assert report.rotated == 5
    expected = [{"password": f"pw-{number}"} for number in range(5)]
    assert _read_all(app, SecretBox([key_b, key_a]), ids) == expected
    assert _read_all(app, SecretBox([key_b]), ids) == expected
    again = rotate_all(app.extensions["canvas"].db, SecretBox([key_b, key_a]), batch_size=2)
    assert (again.rotated, again.already_current) == (0, 5)


def test_interrupted_rotation_resumed_gives_the_same_result(app):
    key_a, key_b = SecretBox.generate_key(), SecretBox.generate_key()
    ids = _store(app, SecretBox([key_a]), 5)

    class Interrupted(Exception):
        pass

    def interrupt(_report):
        raise Interrupted

    with pytest.raises(Interrupted):
        rotate_all(app.extensions["canvas"].db, SecretBox([key_b, key_a]), batch_size=2, after_batch=interrupt)
    with pytest.raises(Exception):  # half-rotated: key B alone cannot read everything yet
        _read_all(app, SecretBox([key_b]), ids)
    resumed = rotate_all(app.extensions["canvas"].db, SecretBox([key_b, key_a]), batch_size=2)
    assert (resumed.rotated, resumed.already_current) == (3, 2)
    assert _read_all(app, SecretBox([key_b]), ids) == [{"password": f"pw-{number}"} for number in range(5)]
