"""Page: the one HTML file both the dashboard and report.html are.

The page's script, stylesheet and skeleton ship in `autoresearch/web/` and are inlined here, so a
page needs nothing from the network. `html(data=None)` is the live dashboard's page (its script
polls `api/state`); `html(data=snapshot)` is a static, self-contained page with the data embedded.
"""

from __future__ import annotations

import json
import math
from importlib import resources


def _asset(name: str) -> str:
    return resources.files("autoresearch").joinpath("web", name).read_text(encoding="utf-8")


def finite(obj):
    """The object with every NaN or infinity as None: JSON has no such numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj) -> str:
    return json.dumps(finite(obj), separators=(",", ":"), allow_nan=False, default=str)


def _embed(obj) -> str:
    """JSON that is safe inside a <script> element (no `</script>`, no `<!--`)."""
    text = dumps(obj)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def html(data: dict | None = None, interval_ms: int = 2000) -> str:
    boot = {"live": data is None, "interval_ms": interval_ms, "data": data}
    page = _asset("page.html")
    # the data goes in last: it may contain anything, the markers included
    page = page.replace("/*STYLE*/", _asset("style.css"))
    page = page.replace("/*SCRIPT*/", _asset("app.js").replace("</", "<\\/"))
    return page.replace("/*BOOT*/", _embed(boot))
