"""Static HTML: save notebook output as one standalone file that opens offline.

Every widget and view in :mod:`workbench.widgets` can be shared as a plain HTML file
(``.save("report.html")``). :func:`save_html` writes such a file from a list of parts:

- bokeh models and HoloViews/hvplot objects become interactive plots whose JavaScript is
  *inlined* (``bokeh.resources.INLINE``), never fetched from a CDN, so the file works offline;
- pandas DataFrames and Series become HTML tables;
- PIL images become PNG ``data:`` URIs;
- ipywidgets become their static look (text, tables, images, progress bars, boxes);
- objects with a ``_html_parts_()`` method (the views of this package) contribute their parts;
- objects with ``_repr_html_`` are inserted as the HTML they render to; strings are text.
"""

from __future__ import annotations

import base64
import html
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["save_html"]

_EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=[^>]*>\s*</script>")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
{resources}
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }}
.wb-row {{ display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }}
.wb-column {{ display: flex; flex-direction: column; gap: 0.5em; }}
</style>
</head>
<body>
{heading}
{body}
</body>
</html>
"""


def save_html(path: str | Path, parts: Any, title: str | None = None) -> Path:
    """Write ``parts`` to ``path`` as one standalone HTML page that needs no network.

    Args:
        path: The file to write (overwritten if it exists).
        parts: One part or a sequence of parts (see the module docstring for what a part is).
        title: Page title, also shown as a heading; defaults to the file's stem.

    Returns:
        The path written.

    Raises:
        TypeError: If a part is of a kind that cannot be rendered.
    """
    path = Path(path)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string, got {type(title).__name__}")
    renderer = _Renderer()
    body = renderer.render(parts)
    page_title = title if title is not None else path.stem
    page = _PAGE.format(
        title=html.escape(page_title),
        resources=renderer.resources(),
        heading=f"<h1>{html.escape(page_title)}</h1>",
        body=body,
    )
    path.write_text(page, encoding="utf-8")
    return path


def image_data_uri(image: Any) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class _Renderer:
    """Turns parts into HTML, remembering whether bokeh's inline JavaScript is needed."""

    def __init__(self) -> None:
        self.uses_bokeh = False

    def resources(self) -> str:
        if not self.uses_bokeh:
            return ""
        from bokeh.resources import INLINE

        # Panel (imported by hvplot) adds a <script src> of a polyfill served by a Jupyter/Panel
        # server; a file has no server, and plain bokeh plots do not need it.
        return _EXTERNAL_SCRIPT.sub("", INLINE.render())

    def render(self, part: Any) -> str:
        if isinstance(part, str):
            return f"<p>{html.escape(part)}</p>"
        if hasattr(part, "_html_parts_"):
            return self.render(part._html_parts_())
        if isinstance(part, Sequence):
            return "\n".join(self.render(p) for p in part)
        for kind, render in self._kinds():
            if kind is not None and isinstance(part, kind):
                return render(part)
        if hasattr(part, "_repr_html_"):
            return part._repr_html_()
        raise TypeError(f"save_html cannot render a part of type {type(part).__name__}")

    def _kinds(self) -> list[tuple[type | None, Any]]:
        """(type, renderer) pairs; a library's types only when that library is imported."""
        import pandas as pd
        from bokeh.model import Model

        return [
            (_loaded_type("holoviews", "core", "Dimensioned"), self._holoviews),
            (Model, self._bokeh),
            (pd.DataFrame, lambda df: df.to_html(border=0)),
            (pd.Series, lambda s: s.to_frame().to_html(border=0)),
            (_loaded_type("PIL.Image", "Image"), self._image),
            (_loaded_type("ipywidgets", "Widget"), self._widget),
        ]

    def _bokeh(self, model: Any) -> str:
        from bokeh.embed import components

        self.uses_bokeh = True
        script, div = components(model)
        return f"{div}\n{script}"

    def _holoviews(self, obj: Any) -> str:
        import holoviews as hv

        return self._bokeh(hv.render(obj, backend="bokeh"))

    @staticmethod
    def _image(image: Any) -> str:
        return f'<img src="{image_data_uri(image)}" alt="image">'

    def _widget(self, widget: Any) -> str:
        import ipywidgets as w

        if isinstance(widget, w.Box):
            layout = "wb-column" if isinstance(widget, w.VBox) else "wb-row"
            return f'<div class="{layout}">{self.render(list(widget.children))}</div>'
        if isinstance(widget, (w.HTML, w.HTMLMath)):
            return f"<div>{widget.value}</div>"
        if isinstance(widget, w.Image):
            mime = f"image/{widget.format}"
            data = base64.b64encode(widget.value).decode("ascii")
            return f'<img src="data:{mime};base64,{data}" alt="image">'
        if isinstance(widget, (w.IntProgress, w.FloatProgress)):
            label = html.escape(widget.description)
            return f'<div>{label} <progress value="{widget.value}" max="{widget.max}"></progress></div>'
        if isinstance(widget, w.Button):
            return f"<button disabled>{html.escape(widget.description)}</button>"
        if isinstance(widget, w.Output):
            return self._output(widget)
        if hasattr(widget, "value"):
            label = html.escape(getattr(widget, "description", "") or "")
            return f"<div>{label} {html.escape(str(widget.value))}</div>"
        raise TypeError(f"save_html cannot render a {type(widget).__name__} widget")

    @staticmethod
    def _output(widget: Any) -> str:
        """An Output widget's captured outputs, as HTML when they have it, else as text."""
        pieces = []
        for output in widget.outputs:
            data = output.get("data", {})
            if "text/html" in data:
                pieces.append(data["text/html"])
            elif "image/png" in data:
                pieces.append(f'<img src="data:image/png;base64,{data["image/png"]}" alt="image">')
            elif "text/plain" in data or "text" in output:
                text = data.get("text/plain", output.get("text", ""))
                pieces.append(f"<pre>{html.escape(text)}</pre>")
        return "\n".join(pieces)


def _loaded_type(module: str, *names: str) -> type | None:
    """``module.names...`` if ``module`` is already imported, else None (nothing to match)."""
    obj = sys.modules.get(module)
    for name in names:
        if obj is None:
            return None
        obj = getattr(obj, name, None)
    return obj
