"""Stored block outputs as HTTP answers, for the Canvas API and the web console alike: the bytes streamed from the
blob store through the server's file wrapper, which closes the stream however the answer ends (sent, cut off, or a
HEAD that sends no body)."""
from __future__ import annotations

from flask import Response, send_file

from canvas.header_text import one_line
from canvas.models import BlockOutput
from canvas.storage.blob import BlobStore


def output_download(store: BlobStore, output: BlockOutput, name: str | None) -> Response:
    """The output's bytes, type and size; named as an attachment when `name` is given. werkzeug's send_file writes
    Content-Disposition as RFC 6266 has it: a quoted ASCII `filename`, and `filename*` in UTF-8 when the name has
    other characters (a header is Latin-1 on the wire: written as it is, such a name failed the answer). A file's
    name comes from a block's settings: a line break in it becomes "_"."""
    response = send_file(store.open(output.blob_key), mimetype=output.content_type, as_attachment=name is not None,
                         download_name=None if name is None else one_line(name, "_"),
                         conditional=False)
    response.content_length = output.size
    return response
