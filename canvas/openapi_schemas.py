"""OpenAPI descriptions of the answers that views build themselves (`jsonify`, streamed bytes), for flask-smorest's
`@blp.response(...)`, which documents a dict schema as it is and leaves the view's own Response untouched."""
from __future__ import annotations

GUID_ANSWER = {"type": "string", "format": "uuid", "description": "The new id, as a JSON string"}
TRUE_ANSWER = {"type": "boolean", "enum": [True]}
TEXT_ANSWER = {"type": "string"}
RUN_ACCEPTED_ANSWER = {"type": "string", "enum": ["Workflow will now run"]}
SCHEDULER_ANSWER = {"type": "string", "enum": ["Workflow Scheduler enabled", "Workflow Scheduler disabled"]}
INSTANTS_ANSWER = {"type": "array", "items": {"type": "string", "format": "date-time"},
                   "description": "ISO 8601 instants with the schedule's offset"}
ANY_OBJECT = {"type": "object"}
BYTES_ANSWER = {"type": "string", "format": "binary"}
# A stored output is records as JSON lines or a file as itself, in whatever type the file has
ANY_CONTENT = "*/*"

ENDPOINT_LIST_ANSWER = {"type": "array", "items": {
    "type": "object",
    "required": ["name", "parameters", "verb", "authenticate", "description", "returns"],
    "properties": {"name": {"type": "string"}, "parameters": {"type": "string"}, "verb": {"type": "string"},
                   "authenticate": {"type": "boolean"}, "description": {"type": "string"},
                   "returns": {"type": "string"}},
}}
DESCRIBE_ANSWER = {"type": "array", "items": {
    "type": "object",
    "required": ["typeName", "propertyName", "genericParameters", "isRequired"],
    "properties": {"typeName": {"type": "string"}, "propertyName": {"type": "string"},
                   "genericParameters": {"type": "string"}, "isRequired": {"type": "boolean"}},
}}
LOCATION_HEADER = {"Location": {"description": "Where the run can be followed: /api/WorkflowRun/<runId>",
                                "schema": {"type": "string"}}}
TOTAL_COUNT_HEADER = {"X-Total-Count": {"description": "How many there are in all pages",
                                        "schema": {"type": "integer"}}}
