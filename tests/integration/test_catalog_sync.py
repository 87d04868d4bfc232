"""The template catalog as files: validation at load, idempotent sync, new versions beside old ones."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
import yaml

from canvas.catalog.loader import CatalogCheckError, check_catalog, sync_catalog_files
from tests.process_tools import canvas_env, run_canvas

SHIPPED = Path(__file__).resolve().parents[2] / "templates_catalog"
TEMPLATE_ID = "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e11"


def template(version: str = "1.0.0", state: str = "Published", expression: str = "$", **changes) -> dict:
    body = {
        "id": TEMPLATE_ID, "name": "Catalog test", "description": "from a file", "version": version, "state": state,
        "applications": [],
        "chain": [
            {"uniqueBlockId": "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e01", "blockName": "Records",
             "block": "records.from_variable", "variables": {"records": [{"a": 1}]}},
            {"uniqueBlockId": "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e02", "blockName": "Map",
             "block": "jsonata.transform", "variables": {"expression": expression}},
        ],
    }
    body.update(changes)
    return body


@pytest.fixture()
def catalog(tmp_path) -> Path:
    root = tmp_path / "catalog"
    shutil.copytree(SHIPPED / "applications", root / "applications")
    (root / "templates").mkdir()
    return root


def write(catalog: Path, body: dict, name: str = "test.yaml") -> Path:
    path = catalog / "templates" / name
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def settings_for(app, catalog: Path) -> dict:
    return {**app.config["CANVAS_SETTINGS"], "CATALOG_DIR": str(catalog)}


@pytest.mark.parametrize(
    ("change", "entry"),
    [
        pytest.param({"chain": [{"uniqueBlockId": str(uuid.uuid4()), "blockName": "X", "block": "no.such"}]},
                     "chain[0].block: unknown block 'no.such'", id="unknown-block"),
        pytest.param({"applications": ["NOPE"]}, "applications[0]: unknown application 'NOPE'",
                     id="unknown-application"),
        pytest.param({"chain": [{"uniqueBlockId": "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e01", "blockName": "R",
                                 "block": "records.from_variable", "variables": {"recordz": []}}]},
                     "chain[0].variables: unknown variable 'recordz'", id="undeclared-variable"),
        pytest.param({"chain": [{"uniqueBlockId": "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e01", "blockName": "R",
                                 "block": "records.from_variable", "variables": {"records": "many"}}]},
                     "chain[0].variables: variable 'records' must be an array", id="wrong-variable-type"),
        pytest.param({"chain": [{"uniqueBlockId": "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e01", "blockName": "A",
                                 "block": "noop"},
                                {"uniqueBlockId": "3c9f5a52-7d0e-4f57-8c8e-0f5b1d2a9e01", "blockName": "B",
                                 "block": "noop"}]},
                     "chain[1].uniqueBlockId: duplicate uniqueBlockId", id="duplicate-block-id"),
        pytest.param({"version": "one"}, "version: 'one' is not a semantic version", id="bad-version"),
    ],
)
def test_a_bad_template_file_stops_the_load_naming_file_and_entry(app, catalog, change, entry):
    path = write(catalog, template(**change), "broken.yaml")
    with pytest.raises(CatalogCheckError) as refused:
        check_catalog(settings_for(app, catalog))
    assert str(path) in str(refused.value) and entry in str(refused.value)


def test_canvas_catalog_check_exits_non_zero_with_the_problem(catalog, tmp_path):
    write(catalog, template(applications=["NOPE"]), "broken.yaml")
    env = canvas_env(tmp_path / "data", CANVAS_CATALOG_DIR=str(catalog))
    checked = run_canvas("catalog", "check", env=env)
    assert checked.returncode == 1 and "broken.yaml" in checked.stderr and "NOPE" in checked.stderr
    (catalog / "templates" / "broken.yaml").unlink()
    assert run_canvas("catalog", "check", env=env).returncode == 0


def test_sync_is_idempotent_and_new_versions_keep_the_old_ones(app, client, org, catalog):
    settings = settings_for(app, catalog)
    database = app.extensions["canvas"].db
    write(catalog, template())
    assert "1 created" in sync_catalog_files(database, settings)
    assert "0 created, 0 new versions, 0 drafts updated, 1 unchanged" in sync_catalog_files(database, settings)
    workflow_id = client.post("/api/Workflow", json={"workflowTemplateId": TEMPLATE_ID, "applications": {}},
                              headers=org.admin_headers).json
    write(catalog, template(version="1.0.0", expression="{'b': a}"))
    with pytest.raises(CatalogCheckError, match="1.0.0 is already published with other content"):
        sync_catalog_files(database, settings)
    write(catalog, template(version="1.1.0", expression="{'b': a}"))
    assert "1 new versions" in sync_catalog_files(database, settings)
    versions = client.get(f"/api/WorkflowTemplateVersions/{TEMPLATE_ID}", headers=org.admin_headers).json
    assert [entry["version"] for entry in versions] == ["1.0.0", "1.1.0"]
    workflow = client.get(f"/api/Workflow/{workflow_id}", headers=org.admin_headers).json
    assert workflow["templateVersion"] == "1.0.0" and workflow["chain"][1]["variables"]["expression"] == "$"
    newer = client.post("/api/Workflow", json={"workflowTemplateId": TEMPLATE_ID, "applications": {}},
                        headers=org.admin_headers).json
    assert client.get(f"/api/Workflow/{newer}", headers=org.admin_headers).json["templateVersion"] == "1.1.0"


def test_the_shipped_catalog_is_valid(app):
    assert "catalog OK" in check_catalog(app.config["CANVAS_SETTINGS"])
