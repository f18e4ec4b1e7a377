"""Files the gateway serves from its own package (``gateway/web/static/``): the status page's
script and stylesheet, and /docs' page, init script and vendored Swagger UI.

They ship in the wheel (pyproject's package-data) and are read on first use, then kept: the
Swagger UI bundle is 1.7 MB, read once per process rather than at import or per request.
"""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def static_file(name: str) -> bytes:
    """The bytes of ``static/<name>`` (``name`` may hold a subfolder: ``swagger-ui/LICENSE``)."""
    return resources.files("gateway.web").joinpath("static", *name.split("/")).read_bytes()
