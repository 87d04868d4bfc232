"""/v2/components: the blocks a flow's nodes can run, as JSON:API `component` resources. A component's id is its
block key, the `command` of a graph node; its attributes say what a node of it takes: its fields (the block's
variables), what data it takes and gives, whether it changes the outside world and which application its
credential must be."""
from __future__ import annotations

from flask.views import MethodView

from canvas.applications.catalog import ApplicationCatalog
from canvas.catalog.definition import PLATFORM_KIND, serves
from canvas.errors import NotFoundError
from canvas.execution.blocks.base import Block, VariableSpec
from canvas.execution.registry import UnknownBlockError, all_blocks, get_block
from canvas.extensions import services
from canvas.v2 import jsonapi
from canvas.v2.graph import COMMAND_VERSIONS, command_forms
from canvas.v2.schemas import PAGE_PARAMETERS, doc
from canvas.web import Blueprint

blp = Blueprint("v2_components", __name__, url_prefix="/v2",
                description="v2 (JSON:API): components, the blocks a graph node's command names")


def component_link(key: str) -> str:
    return f"/v2/components/{key}"


def field_of(name: str, spec: VariableSpec) -> dict:
    field = {"name": name, "type": spec.type, "required": spec.required, "description": spec.description}
    if spec.default is not None:
        field["default"] = spec.default
    if spec.choices:
        field["choices"] = list(spec.choices)
    return field


def credentials_need(block_class: type[Block]) -> str:
    """Whether a node of the block needs `credentials_id`, as graph validation decides: File Hub blocks may use the
    platform's own File Hub (so their credential is optional), blocks without an application take none."""
    kind = block_class.application_kind
    return "none" if kind is None else "optional" if kind == PLATFORM_KIND else "required"


def applications_for(block_class: type[Block], catalog: ApplicationCatalog) -> list[dict]:
    """The catalog applications a node's credential may be of (a credential's `component` is one of these ids)."""
    kind = block_class.application_kind
    return [{"id": spec.id, "name": spec.name, "short_name": spec.short_name} for spec in catalog
            if kind is not None and serves(spec.kind, kind)]


def component_to_resource(block_class: type[Block], catalog: ApplicationCatalog) -> dict:
    attributes = {"title": block_class.title, "description": block_class.description,
                  "fields": [field_of(name, spec) for name, spec in block_class.variables.items()],
                  "takes": block_class.input_kind, "gives": block_class.output_kind,
                  "side_effects": block_class.side_effects, "application_kind": block_class.application_kind,
                  "credentials": credentials_need(block_class),
                  "applications": applications_for(block_class, catalog),
                  "commands": command_forms(block_class.key), "versions": list(COMMAND_VERSIONS)}
    return jsonapi.resource("component", block_class.key, attributes, self_link=component_link(block_class.key))


@blp.route("/components")
class Components(MethodView):
    @blp.doc(**doc(200, "A page of components (every block), by id", parameters=PAGE_PARAMETERS))
    def get(self):
        """List the components a graph node's command can name"""
        page = jsonapi.page_parameters()
        blocks = all_blocks()
        shown = blocks[page.offset:page.offset + page.size]
        catalog = services().application_catalog
        return jsonapi.document([component_to_resource(block, catalog) for block in shown],
                                meta=jsonapi.page_meta(page, len(blocks)), links=jsonapi.page_links(page, len(blocks)))


@blp.route("/components/<component_id>")
class ComponentById(MethodView):
    @blp.doc(**doc(200, "The component: fields, data taken and given, side effects, application, commands"))
    def get(self, component_id):
        """Get a component (a block) by its id, the block key"""
        try:
            block = get_block(component_id)
        except UnknownBlockError:
            raise NotFoundError(f"Unknown component {component_id} (GET /v2/components lists them)") from None
        return jsonapi.document(component_to_resource(block, services().application_catalog))
