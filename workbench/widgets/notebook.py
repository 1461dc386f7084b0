"""The notebook side of the widgets: plotting JavaScript loaded offline, and widgets that
answer while the kernel is busy (the dashboard's Stop button during a fit).

:func:`load_bokeh` puts BokehJS into the notebook once per kernel, inline, so plots draw
without a CDN; every plot is shown as a Bokeh widget (jupyter_bokeh).

A Jupyter kernel handles widget messages (a button click) on its main thread, and a running
``fit`` keeps that thread busy: a click would wait until the cell ends. ipykernel 7 runs
*subshells* (JEP 91): extra threads that handle shell messages concurrently with the main one,
and it routes a comm's incoming messages to the subshell the comm last published from
(``Comm._reply_subshell_for``). :func:`answer_while_busy` creates one subshell per kernel,
through the protocol's own ``create_subshell_request`` on the control channel, and points a
widget's comm at it, so the widget's handlers run while the main thread trains.

Publishing from the main thread points the comm back at the main shell, so call
:func:`answer_while_busy` again after changing the widget from the main thread. Where the kernel
has no subshells (another kernel, an older ipykernel) it returns False and the widget answers
when the cell ends, as widgets always did.
"""

from __future__ import annotations

import queue
import threading

import ipywidgets as widgets

from workbench.jupyter import current_kernel

__all__ = ["answer_while_busy", "load_bokeh"]

_bokeh_loaded = False  # BokehJS is in the notebook (put there by this kernel)
_subshell_lock = threading.Lock()
_subshell_ids: dict[int, str] = {}  # id(kernel) -> the subshell created for widgets


def load_bokeh() -> None:
    """Put BokehJS into the notebook once, as plain JavaScript output (works offline).

    A JavaScript output runs as soon as the page renders it, before the widgets displayed after
    it are drawn: a Bokeh widget (jupyter_bokeh) needs ``window.Bokeh`` when it is created,
    which a loader that fetches asynchronously (``hv.extension``) does not guarantee.
    """
    global _bokeh_loaded
    if not _bokeh_loaded:
        from bokeh.resources import Resources
        from IPython.display import Javascript, display

        code = "\n".join(Resources(mode="inline", components=["bokeh"]).js_raw)
        display(Javascript(f"(function() {{\n{code}\n}}).call(window);"))  # BokehJS registers on `this`
        _bokeh_loaded = True



def answer_while_busy(widget: widgets.Widget) -> bool:
    """Route ``widget``'s messages to a subshell of this kernel; False where that is impossible."""
    kernel = _current_kernel()
    comm = getattr(widget, "comm", None)
    if kernel is None or comm is None or not hasattr(comm, "_reply_subshell_for"):
        return False
    subshell_id = _widget_subshell(kernel)
    if subshell_id is None:
        return False
    comm._reply_subshell_id = subshell_id
    return True


def _current_kernel():
    """The ipykernel kernel running this code if it supports subshells, else None."""
    kernel = current_kernel()
    return kernel if getattr(kernel, "_supports_kernel_subshells", False) else None


def _widget_subshell(kernel) -> str | None:
    """The id of this kernel's widget subshell, created on first use (None if refused)."""
    with _subshell_lock:
        if id(kernel) not in _subshell_ids:
            subshell_id = _create_subshell(kernel)
            if subshell_id is None:
                return None
            _subshell_ids[id(kernel)] = subshell_id
        return _subshell_ids[id(kernel)]


def _create_subshell(kernel) -> str | None:
    """Ask the kernel for a subshell over its control channel, as a frontend would."""
    from ipykernel.connect import get_connection_file
    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=get_connection_file())
    client.load_connection_file()
    try:
        request = client.session.msg("create_subshell_request", {})
        client.control_channel.send(request)
        while True:
            reply = client.control_channel.get_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
                break
    except queue.Empty:  # no reply: the kernel keeps widgets on its main shell
        return None
    finally:
        client.stop_channels()
    content = reply["content"]
    return content.get("subshell_id") if content.get("status") == "ok" else None
