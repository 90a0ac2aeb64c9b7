"""Panel widgets that share their Layout and style models.

Why: every ipywidget brings a ``Layout`` model and most a style model of their own, and a
notebook saved with widget state (JupyterLab with ``saveState`` on, Notebook 7, VS Code) keeps
every one of them: the executed quickstart carried 131 ``LayoutModel``s.  Widgets made here take
one shared model per distinct layout or style instead, so a panel's form costs one model per
control.  Nothing changes a shared model after it is made (the panels never assign
``widget.layout.x``), which is what makes sharing safe.
"""

from __future__ import annotations

from typing import Any, TypeVar

import ipywidgets as widgets

W = TypeVar("W", bound=widgets.DOMWidget)

_shared: dict[tuple[str, tuple[tuple[str, Any], ...]], widgets.Widget] = {}


def _one(cls: type[widgets.Widget], options: dict[str, Any]) -> Any:
    key = (cls.__name__, tuple(sorted(options.items())))
    found = _shared.get(key)
    if found is None or found.comm is None:  # never made, or closed (``Widget.close_all``)
        found = _shared[key] = cls(**options)
    return found


def layout(**options: Any) -> widgets.Layout:
    """The one ``Layout`` with these settings (``layout()`` is the default one)."""
    return _one(widgets.Layout, options)


def shared(cls: type[widgets.Widget], layout_: dict[str, Any] | None = None, style: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``layout=`` and (if ``cls`` has one) ``style=`` arguments for a widget of ``cls``: shared
    models with these settings."""
    out: dict[str, Any] = {"layout": layout(**(layout_ or {}))}
    trait = cls.class_traits().get("style")
    if trait is not None:
        out["style"] = _one(trait.klass, style or {})
    return out


def make(cls: type[W], *args: Any, layout_: dict[str, Any] | None = None, style: dict[str, Any] | None = None, **kwargs: Any) -> W:
    """``cls(*args, **kwargs)`` with a shared layout (``layout_`` settings) and, if the widget has
    one, a shared style of its own style class (``style`` settings)."""
    return cls(*args, **kwargs, **shared(cls, layout_, style))


def html(value: str = "", **kwargs: Any) -> widgets.HTML:
    return make(widgets.HTML, value, **kwargs)


def button(description: str, icon: str = "") -> widgets.Button:
    return make(widgets.Button, description=description, icon=icon)


def hbox(children: list[widgets.Widget], **kwargs: Any) -> widgets.HBox:
    return make(widgets.HBox, children, **kwargs)


def vbox(children: list[widgets.Widget] | None = None, **kwargs: Any) -> widgets.VBox:
    return make(widgets.VBox, children or [], **kwargs)
