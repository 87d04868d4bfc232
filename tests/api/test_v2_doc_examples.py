"""The worked examples of docs/v2.md, replayed: every fenced ```sh block of its "Worked examples" section, in order.
Shell variables are expanded as a shell would (not inside single quotes); `NAME=value` sets one (HOST, EMAIL,
SECRET and CALLBACK_URL are this test's: its org's admin and a local HTTP server), `NAME=$(curl ... | jq -r PATH)`
keeps a value of the answer; each curl command (-X, -u, -H, -d, -g, -s) becomes a test-client request, answered
with the status of the comment under it (`# 201`), and the values it names (`# 200, .data.attributes.status is
"succeeded"`). A `canvas worker` runs what is queued, as a reader's would, after every request."""
from __future__ import annotations

import base64
import json
import re
import shlex
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.wrappers import Response

from tests.conftest import Org
from tests.integration.run_helpers import work_off

DOC = Path(__file__).resolve().parents[2] / "docs" / "v2.md"
SECTION = "## Worked examples"
ASSIGNED = re.compile(r"^([A-Za-z_]\w*)=\$\((.*)\)$", re.DOTALL)
PLAIN_ASSIGNMENT = re.compile(r"^([A-Za-z_]\w*)=(\S*)$")
STATUS = re.compile(r"^#\s*(\d{3})\b(.*)$")
EXPECTATION = re.compile(r"(\.[\w.\[\]]+) is (\"(?:[^\"\\]|\\.)*\"|-?\d+|true|false|null)")

pytestmark = pytest.mark.usefixtures("clean_run_queue")


def worked_example_blocks() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"docs/v2.md has no '{SECTION}' section"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.MULTILINE)[0]
    return re.findall(r"^```sh\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)


def _complete(text: str) -> bool:
    if text.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(text)
    except ValueError:  # an open quote: the -d body goes on
        return False
    return True


def commands(block: str) -> list[tuple[str, str | None]]:
    """(command, the comment line under it) for each command of a block."""
    lines, found, index = block.splitlines(), [], 0
    while index < len(lines):
        if not lines[index].strip() or lines[index].lstrip().startswith("#"):
            index += 1
            continue
        end = index
        while not _complete("\n".join(lines[index:end + 1])):
            end += 1
        comment = lines[end + 1].strip() if end + 1 < len(lines) and lines[end + 1].lstrip().startswith("#") else None
        found.append(("\n".join(lines[index:end + 1]), comment))
        index = end + 1
    return found


def expand(text: str, variables: dict) -> str:
    """$NAME and ${NAME} outside single quotes, as sh does; an unknown name is a mistake of the doc."""
    out, index, single, double = [], 0, False, False
    while index < len(text):
        char = text[index]
        if char == "'" and not double:
            single = not single
        elif char == '"' and not single:
            double = not double
        elif char == "\\" and not single:
            out.append(text[index:index + 2])
            index += 2
            continue
        elif char == "$" and not single:
            match = re.match(r"\$(?:\{(\w+)\}|(\w+))", text[index:])
            if match:
                name = match.group(1) or match.group(2)
                assert name in variables, f"${name} is used before the examples set it"
                out.append(variables[name])
                index += match.end()
                continue
        out.append(char)
        index += 1
    return "".join(out)


def jq(document, path: str):
    """`jq -r .a.b[0].c` (the paths the examples use)."""
    value = document
    for name, position in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        value = value[name] if name else value[int(position)]
    return value


class Shell:
    def __init__(self, app, client, variables: dict):
        self.app, self.client, self.variables = app, client, variables
        self.given = set(variables)  # the test's values win over the doc's placeholders

    def run(self, command: str, comment: str | None) -> None:
        assigned = ASSIGNED.match(command.strip())
        if assigned:
            name, inner = assigned.groups()
            curl, _, path = inner.rpartition("| jq -r ")
            document = self.curl(curl, command, comment)
            self.variables[name] = str(jq(document, path.strip()))
            return
        plain = PLAIN_ASSIGNMENT.match(command.strip())
        if plain:
            if plain.group(1) not in self.given:
                self.variables[plain.group(1)] = expand(plain.group(2), self.variables)
            return
        self.curl(command, command, comment)

    def curl(self, text: str, command: str, comment: str | None):
        tokens = shlex.split(expand(text, self.variables).replace("\\\n", " "))
        assert tokens[0] == "curl", command
        method, url, headers, body, index = None, None, {}, None, 1
        while index < len(tokens):
            token = tokens[index]
            if token == "-X":
                method, index = tokens[index + 1], index + 2
            elif token == "-u":
                headers["Authorization"] = "Basic " + base64.b64encode(tokens[index + 1].encode()).decode()
                index += 2
            elif token == "-H":
                name, _, value = tokens[index + 1].partition(":")
                headers[name.strip()], index = value.strip(), index + 2
            elif token == "-d":
                body, index = tokens[index + 1], index + 2
            elif token in ("-s", "-g"):
                index += 1
            else:
                assert not token.startswith("-"), f"the test does not know curl's {token}: {command}"
                url, index = token, index + 1
        method = method or ("POST" if body is not None else "GET")
        parts = urlsplit(url)
        assert parts.path.startswith("/v2/"), command
        answer = self.client.open(parts.path, method=method, query_string=parts.query, data=body, headers=headers)
        work_off(self.app)  # the reader's `canvas worker`

        assert comment and STATUS.match(comment), f"no '# <status>' comment under: {command}"
        status, rest = STATUS.match(comment).groups()
        assert answer.status_code == int(status), (command, answer.status_code, answer.get_json())
        document = answer.get_json()
        for path, expected in EXPECTATION.findall(rest):
            value = json.loads(expand(expected, self.variables)) if expected.startswith('"') else json.loads(expected)
            assert jq(document, path) == value, (command, path, jq(document, path))
        return document


def test_the_worked_examples_of_docs_v2_answer_as_they_say(make_app, http_server):
    app = make_app(CALLBACK_RETRY_BASE_SECONDS=0)
    org = Org(app, "Acme")
    from canvas.models import Account

    with app.extensions["canvas"].db.transaction() as session:
        email = session.get(Account, uuid.UUID(org.admin_id)).email
    http_server.route("/canvas", lambda request: Response(status=204))
    shell = Shell(app, app.test_client(), {"HOST": "http://127.0.0.1:8080", "EMAIL": email,
                                           "SECRET": org.admin_headers["SecretKey"],
                                           "CALLBACK_URL": http_server.url("/canvas")})
    blocks = worked_example_blocks()
    assert len(blocks) >= 5
    replayed = 0
    for block in blocks:
        for command, comment in commands(block):
            shell.run(command, comment)
            replayed += "curl" in command
    assert replayed >= 10
    for name in ("CREDENTIAL", "FLOW", "CALLBACK", "RUN", "HOOK"):
        assert shell.variables.get(name), f"the examples never set ${name}"

    # what CALLBACK_URL received: a signed summary of each of the two runs (docs/v2.md, "Callbacks")
    received = [request for request in http_server.requests if request.path == "/canvas"]
    assert len(received) == 2
    assert {request.json()["flow_id"] for request in received} == {shell.variables["FLOW"]}
    assert [request.json()["trigger"] for request in received][-1] == "webhook"
    for request in received:
        assert request.headers["X-Canvas-Event"] == "run.succeeded"
        signature = dict(part.split("=", 1) for part in request.headers["X-Canvas-Signature"].split(","))
        assert set(signature) == {"t", "v1"}


def test_the_worked_examples_keep_their_own_conventions():
    """Every request has its status comment; no block uses a shell feature the replay would misread."""
    for block in worked_example_blocks():
        for command, comment in commands(block):
            if "curl" in command:
                assert comment and STATUS.match(comment), command
                assert "|" not in command or ASSIGNED.match(command.strip()), command


def test_the_readme_v2_example_answers_as_it_says(app, client, org):
    """The short example of the README's v2 section, with a File Hub credential made beforehand."""
    from tests.api.workflow_helpers import file_hub_app

    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.split(r"^## ", readme.split("## The v2 (JSON:API) dialect", 1)[1], maxsplit=1,
                       flags=re.MULTILINE)[0]
    [block] = re.findall(r"^```sh\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    with app.extensions["canvas"].db.transaction() as session:
        from canvas.models import Account

        email = session.get(Account, uuid.UUID(org.admin_id)).email
    shell = Shell(app, client, {"HOST": "http://127.0.0.1:8080", "EMAIL": email,
                                "SECRET": org.admin_headers["SecretKey"],
                                "CREDENTIAL": file_hub_app(client, org.admin_headers)})
    for command, comment in commands(block):
        shell.run(command, comment)
    execution = client.get(f"/v2/executions?filter[flow]={shell.variables['FLOW']}",
                           headers={"Authorization": "Basic " + base64.b64encode(
                               f"{email}:{org.admin_headers['SecretKey']}".encode()).decode()}).json
    assert execution["data"][0]["attributes"]["status"] == "succeeded"
