"""Text that users chose (a workflow's name, a file's name) in a header line of an HTTP answer or an e-mail: a
header is one line, which a line break would end (werkzeug and the e-mail package refuse one with an error), so
control characters and Unicode's line separators are replaced."""
from __future__ import annotations

import re

_NOT_IN_A_HEADER = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str, replacement: str = " ") -> str:
    return _NOT_IN_A_HEADER.sub(replacement, text)
