"""Security headers on every response, and safe header values built from data
(docs/server.md, "Security").

The dashboard's Content-Security-Policy allows scripts, styles, fonts and fetches from the
server itself only: no inline script, no `eval`, no plugin, no framing, no `<base>`. Its
pages keep their JSON configuration in a `<script type="application/json">` block, which is
data, not script. Images may also come from the map's tile server. The API documentation
at /docs is under the same policy: Swagger UI is vendored under static/vendor/swagger-ui
(a closed city network reaches no CDN) and its start-up script is static/docs.js, so that
page needs nothing from elsewhere either.
"""

import re
from urllib.parse import quote, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Swagger UI for /docs, vendored from npm's swagger-ui-dist (tools/vendor-web.sh).
SWAGGER_JS = "/static/vendor/swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "/static/vendor/swagger-ui/swagger-ui.css"
SWAGGER_FAVICON = "/static/vendor/swagger-ui/favicon-32x32.png"

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # the language switch goes back by the Referer
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def tile_source(url: str) -> str | None:
    """The CSP source for a tile URL template such as
    `https://{s}.tile.example.org/{z}/{x}/{y}.png` (→ `https://*.tile.example.org`); the
    scheme alone when the host is not a plain name with at most a `{s}` label; None when
    there are no tiles."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        return None
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never a user:password@ into a header
    labels = netloc.split(".")
    if labels and labels[0] == "{s}":
        labels[0] = "*"
    host = ".".join(labels)
    if not re.fullmatch(r"(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?",
                        host):
        return f"{scheme}:"
    return f"{scheme}://{host}"


def _policy(directives: dict[str, list[str]]) -> str:
    return "; ".join(f"{k} {' '.join(v)}" for k, v in directives.items())


def dashboard_policy(tile_url: str) -> str:
    tiles = tile_source(tile_url)
    return _policy({
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"] + ([tiles] if tiles else []),
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    })


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response, error pages included
    (create_app puts it outside Starlette's own error handling)."""

    def __init__(self, app: ASGIApp, tile_url: str) -> None:
        self.app = app
        self.main = [*COMMON.items(), ("Content-Security-Policy", dashboard_policy(tile_url))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.main
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in extra:
                    if k not in headers:
                        headers[k] = v
                if https and "Strict-Transport-Security" not in headers:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        await self.app(scope, receive, send_with_headers)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def attachment(filename: str, limit: int = 100) -> str:
    """A Content-Disposition for a download named after data (RFC 6266): a `filename` of
    safe ASCII characters only (others become "_"), and the real name, UTF-8 and
    percent-encoded, as `filename*` (RFC 8187) when it differs. Nothing in the name can
    end the quoted string or add a parameter; the header is always ASCII."""
    stem, dot, ext = filename.rpartition(".")
    if not dot:
        stem, ext = filename, ""
    stem, ext = stem[:limit], ext[:16]
    plain = _UNSAFE.sub("_", stem) + dot + _UNSAFE.sub("_", ext)
    real = stem + dot + ext
    value = f'attachment; filename="{plain}"'
    if real != plain:
        value += "; filename*=UTF-8''" + quote(real, safe="", errors="replace")
    return value
