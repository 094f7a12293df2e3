"""Secrets never printed: a URI's user:password and its token-like query parameters are replaced by ***."""

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"()<>,]+")
SECRET_PARAMS = re.compile(r"token|secret|password|passwd|signature|sig|key|credential|auth", re.IGNORECASE)


def redact(uri: str) -> str:
    """`http://user:pw@host/x?token=t` -> `http://***@host/x?token=***`; anything that is not a URI unchanged."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if not parts.scheme:
        return uri
    netloc, query = parts.netloc, parts.query
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if SECRET_PARAMS.search(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return uri  # nothing to hide (urlunsplit would also drop the `//` of an empty host: sqlite:////path)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URI in a message (a library's error that quotes the address it tried) redacted."""
    return URI.sub(lambda match: redact(match.group()), text)
