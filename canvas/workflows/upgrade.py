"""Upgrading a workflow to a newer version of its template: a per-block preview, then a three-way merge of the old
template, the new template and the workflow's overrides, refused with a report where they conflict.

Blocks are matched by uniqueBlockId. A graph's edges (`inputs`) are structure, not settings a workflow overrides: they
come from the new version. When either version is a graph, each block of the preview also says whether its inputs
change (`inputsChanged`) and what they will be (`inputs`, by block number of the new version); a chain's preview is
as it always was."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from canvas.catalog import service as templates
from canvas.catalog.definition import (
    ChainEntry,
    TemplateDefinition,
    definition_from_json,
    inputs_for_display,
    version_key,
)
from canvas.errors import BadRequestError, ConflictError
from canvas.execution.graph import DEFAULT_FAILURE_POLICY, block_graph
from canvas.models import Workflow
from canvas.models.base import utcnow
from canvas.queueing.dispatch import active_run
from canvas.workflows import service as workflows


@dataclass
class BlockChange:
    uniqueBlockId: str
    blockName: str
    change: str  # kept | added | removed | replaced
    newDefaults: dict = field(default_factory=dict)
    keptOverrides: dict = field(default_factory=dict)
    conflicts: list = field(default_factory=list)
    graph: dict = field(default_factory=dict)  # inputsChanged, inputs: only when either version is a graph

    def to_api(self) -> dict:
        return {"uniqueBlockId": self.uniqueBlockId, "blockName": self.blockName, "change": self.change,
                "newDefaults": self.newDefaults, "keptOverrides": self.keptOverrides, "conflicts": self.conflicts,
                **self.graph}


@dataclass
class UpgradePlan:
    workflowId: str
    fromVersion: str
    toVersion: str
    blocks: list[BlockChange]
    newApplications: list[str]
    removedApplications: list[str]
    merged_overrides: dict[str, dict] = field(default_factory=dict, repr=False)
    new_definition: TemplateDefinition | None = field(default=None, repr=False)
    failure_policy: str = field(default=DEFAULT_FAILURE_POLICY, repr=False)  # the workflow's after the upgrade
    policy_changes: bool = field(default=False, repr=False)  # the new version changes the template's policy

    @property
    def conflicts(self) -> list[str]:
        return [f"{block.blockName} ({block.uniqueBlockId}): {conflict}"
                for block in self.blocks for conflict in block.conflicts]

    def to_api(self) -> dict:
        answer = {"workflowId": self.workflowId, "fromVersion": self.fromVersion, "toVersion": self.toVersion,
                  "canUpgrade": not self.conflicts, "conflicts": self.conflicts,
                  "newApplications": self.newApplications, "removedApplications": self.removedApplications,
                  "blocks": [block.to_api() for block in self.blocks]}
        if self.policy_changes:
            answer["failurePolicy"] = self.failure_policy
        return answer


def plan_upgrade(session: Session, workflow: Workflow, to_version: str | None) -> UpgradePlan:
    template = templates.find_visible_template(session, workflow.organization_id, workflow.template_id)
    target = templates.published_version(session, template, to_version)
    if version_key(target.version) <= version_key(workflow.template_version):
        raise BadRequestError(f"version: the workflow already uses {workflow.template_version}; "
                              f"{target.version} is not newer", field="version")
    old = workflows.workflow_definition(session, workflow)
    new = definition_from_json(target.definition)
    overrides = workflows.overrides_from_json(workflow.chain_overrides)
    plan = UpgradePlan(str(workflow.id), workflow.template_version, target.version, [],
                       [name for name in new.applications if name not in old.applications],
                       [name for name in old.applications if name not in new.applications], new_definition=new)
    for entry in new.chain:
        plan.blocks.append(_merge_block(old.entry(entry.unique_block_id), entry,
                                        overrides.get(entry.unique_block_id, {}), plan.merged_overrides))
    for entry in old.chain:
        if new.entry(entry.unique_block_id) is None:
            plan.blocks.append(_removed_block(entry, overrides.get(entry.unique_block_id, {})))
    if old.is_graph or new.is_graph:
        _report_inputs(plan.blocks, old, new)
    _merge_failure_policy(plan, workflow, old, new)
    return plan


def _report_inputs(blocks: list[BlockChange], old: TemplateDefinition, new: TemplateDefinition) -> None:
    """Per block: whether what feeds it changes (parents, mappers, conditions), and its inputs in the new version."""
    old_inputs, new_inputs = _effective_inputs(old), _effective_inputs(new)
    new_chain = new.to_json()["chain"]
    shown = {entry["uniqueBlockId"]: inputs for entry, inputs in zip(new_chain, inputs_for_display(new_chain))}
    for block in blocks:
        block.graph["inputsChanged"] = old_inputs.get(block.uniqueBlockId) != new_inputs.get(block.uniqueBlockId)
        if block.change != "removed":
            block.graph["inputs"] = shown[block.uniqueBlockId] if shown[block.uniqueBlockId] is not None else \
                _implicit_inputs(new_chain, block.uniqueBlockId)


def _effective_inputs(definition: TemplateDefinition) -> dict[str, list[tuple]]:
    """Block id -> what feeds it, as (parent id, mapper, condition), whether given in `inputs` or implied by order."""
    chain = definition.to_json()["chain"]
    graph = block_graph(chain)
    return {entry["uniqueBlockId"]: [(chain[edge.source - 1]["uniqueBlockId"], edge.settings.get("inputMapper"),
                                      edge.settings.get("inputCondition")) for edge in graph.parents(number)]
            for number, entry in enumerate(chain, start=1)}


def _implicit_inputs(chain: list[dict], block_id: str) -> list[dict]:
    """A chain's block is fed by the block before it (none for the first)."""
    number = next(number for number, entry in enumerate(chain, start=1) if entry["uniqueBlockId"] == block_id)
    return [{"fromBlock": number - 1}] if number > 1 else []


def _merge_failure_policy(plan: UpgradePlan, workflow: Workflow, old: TemplateDefinition,
                          new: TemplateDefinition) -> None:
    """The workflow follows its template's failure policy unless it chose another one itself."""
    current = workflow.failure_policy or DEFAULT_FAILURE_POLICY
    old_policy = old.failure_policy or DEFAULT_FAILURE_POLICY
    new_policy = new.failure_policy or DEFAULT_FAILURE_POLICY
    plan.policy_changes = old_policy != new_policy
    plan.failure_policy = new_policy if current == old_policy else current


def _merge_block(old: ChainEntry | None, new: ChainEntry, overrides: dict, merged: dict[str, dict]) -> BlockChange:
    if old is None:
        return BlockChange(new.unique_block_id, new.block_name, "added", newDefaults=dict(new.variables))
    change = BlockChange(new.unique_block_id, new.block_name, "kept" if old.block == new.block else "replaced")
    change.newDefaults = {name: value for name, value in new.variables.items()
                          if old.variables.get(name, _MISSING) != value and name not in overrides}
    declared = _declared_variables(new.block)
    for name, value in overrides.items():
        conflict = _override_conflict(name, value, old, new, declared)
        if conflict:
            change.conflicts.append(conflict)
        else:
            change.keptOverrides[name] = value
            merged.setdefault(new.unique_block_id, {})[name] = value
    return change


def _override_conflict(name: str, value: Any, old: ChainEntry, new: ChainEntry, declared: set[str]) -> str | None:
    if name not in declared:
        return f"the override of '{name}' no longer applies: the new version has no such variable"
    old_default, new_default = old.variables.get(name, _MISSING), new.variables.get(name, _MISSING)
    if old_default != new_default and value != new_default:
        return (f"'{name}' was overridden and the template changed its default too "
                f"({_show(old_default)} -> {_show(new_default)}); the override would hide that change")
    return None


def _removed_block(entry: ChainEntry, overrides: dict) -> BlockChange:
    change = BlockChange(entry.unique_block_id, entry.block_name, "removed")
    if overrides:
        change.conflicts.append(f"the block is removed but the workflow overrides {sorted(overrides)}")
    return change


def _declared_variables(block_key: str) -> set[str]:
    from canvas.execution.registry import get_block

    return set(get_block(block_key).variables)


def _show(value: Any) -> str:
    return "unset" if value is _MISSING else repr(value)


_MISSING = object()


def apply_upgrade(session: Session, actor: workflows.Actor, workflow_id: Any, to_version: str | None,
                  applications: dict | None) -> tuple[Workflow, UpgradePlan]:
    workflow = workflows.get_workflow(session, actor.account_id, workflow_id)
    if active_run(session, workflow.id) is not None:
        raise ConflictError(f"Workflow {workflow.id} has an active run; upgrade it when the run has ended")
    plan = plan_upgrade(session, workflow, to_version)
    if plan.conflicts:
        raise ConflictError("The upgrade conflicts with the workflow's overrides: " + "; ".join(plan.conflicts))
    before = workflows.audited_workflow(workflow)
    current = workflows.current_bindings(workflow)
    mapping = {name: current[name] for name in plan.new_definition.applications if name in current}
    mapping.update(applications or {})
    bindings = workflows.bind_applications(session, actor, plan.new_definition, mapping, workflow.id)
    workflows.parse_overrides(plan.new_definition, workflows.overrides_to_json(plan.merged_overrides))
    workflows.replace_bindings(session, workflow, bindings)
    workflow.template_version = plan.toVersion
    workflow.failure_policy = plan.failure_policy
    workflows.apply_overrides(workflow, plan.new_definition, plan.merged_overrides)
    workflow.date_modified = utcnow()
    workflows.record_workflow_change(session, "workflow.upgrade", workflow, before)
    return workflow, plan
