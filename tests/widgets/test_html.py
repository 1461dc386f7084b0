"""save_html writes one standalone page: inline bokeh JavaScript, tables, images, widgets."""

from __future__ import annotations

import re

import holoviews as hv
import ipywidgets as widgets
import pandas as pd
import pytest
from PIL import Image

from workbench.widgets.html import save_html


def test_page_is_standalone_and_holds_every_part(tmp_path):
    frame = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.25]})
    parts = [
        "loss <falls>",
        frame,
        hv.Curve(frame, "epoch", "loss"),
        Image.new("RGB", (3, 2), (255, 0, 0)),
        widgets.VBox([widgets.HTML("<i>epoch 3</i>"), widgets.IntProgress(value=3, max=10, description="fit")]),
    ]
    page = save_html(tmp_path / "report.html", parts, title="Run 1").read_text()

    assert "<title>Run 1</title>" in page
    assert "loss &lt;falls&gt;" in page  # text is escaped
    assert "<td>0.25</td>" in page  # the table
    assert "Bokeh.embed" in page and "Bokeh.set_log_level" in page  # plot with BokehJS inlined
    assert re.findall(r"<script[^>]*\bsrc=", page) == []  # nothing fetched
    assert "data:image/png;base64," in page
    assert "<i>epoch 3</i>" in page and '<progress value="3" max="10">' in page


def test_page_without_plots_has_no_bokeh(tmp_path):
    page = save_html(tmp_path / "table.html", pd.Series([1, 2], name="x")).read_text()
    assert "<title>table</title>" in page and "Bokeh" not in page


def test_unknown_part_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="cannot render a part of type object"):
        save_html(tmp_path / "x.html", [object()])
