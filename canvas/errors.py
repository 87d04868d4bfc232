"""Domain errors. Each carries its HTTP status; every dialect renders them in its own error shape.

Services raise these and never build HTTP answers themselves.
"""
from __future__ import annotations


class CanvasError(Exception):
    """Base of every error an API caller may see. `message` is safe to show: it never holds a secret."""

    status = 400
    title = "Bad Request"

    def __init__(self, message: str, *, field: str | None = None, parameter: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field  # body field at fault (JSON:API source.pointer)
        self.parameter = parameter  # query parameter at fault (JSON:API source.parameter)
        self.retry_after = retry_after  # seconds after which the same request may succeed (Retry-After)


class BadRequestError(CanvasError):
    status, title = 400, "Bad Request"


class ValidationError(BadRequestError):
    """A request value is malformed or not allowed; `field` names it."""


class AuthenticationError(CanvasError):
    status, title = 401, "Unauthorized"


class ForbiddenError(CanvasError):
    status, title = 403, "Forbidden"


class NotFoundError(CanvasError):
    status, title = 404, "Not Found"


class NotAcceptableError(CanvasError):
    status, title = 406, "Not Acceptable"


class ConflictError(CanvasError):
    status, title = 409, "Conflict"


class PayloadTooLargeError(CanvasError):
    status, title = 413, "Payload Too Large"


class UnsupportedMediaTypeError(CanvasError):
    status, title = 415, "Unsupported Media Type"


class UnprocessableError(CanvasError):
    status, title = 422, "Unprocessable Entity"


class ServiceUnavailableError(CanvasError):
    status, title = 503, "Service Unavailable"


class TooManyRequestsError(CanvasError):
    """A rate limit is reached; `retry_after` says when the same request will be counted in a fresh window."""

    status, title = 429, "Too Many Requests"
