"""Python-language source/destination blocks: what their decorators returned, read-only.

Their configuration is code, so there is nothing to write back; the panel
resolves the block as a run would (in the background: the decorators may
discover) and shows the connector, the config with secrets masked, and the
streams with their settings.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ...connectors import registry
from ...integration.resolved import ResolvedBlock
from ...pipeline.block import Block
from ...redaction import MASK
from . import look
from .context import PanelContext
from .jobs import Jobs, Status, mask


def masked_config(resolved: ResolvedBlock) -> dict[str, Any]:
    try:
        secret_fields = set(registry.get(resolved.connector).secret_fields())
    except Exception:  # noqa: BLE001 - an unknown connector still shows its config
        secret_fields = set()
    used = {str(v) for v in resolved.secrets_used}
    out = {}
    for key, value in resolved.config.items():
        out[key] = MASK if key in secret_fields or (isinstance(value, str) and value in used) else value
    return out


def describe(resolved: ResolvedBlock, secrets: set[str]) -> str:
    config = mask(json.dumps(masked_config(resolved), indent=1, default=str), secrets)
    rows = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td><code>{html.escape(json.dumps(dict(settings), default=str))}</code></td></tr>"
        for name, settings in resolved.given.items()
    )
    return (
        f"<p>connector: <code>{html.escape(resolved.connector)}</code></p><pre>{html.escape(config)}</pre>"
        f"<table><thead><tr><th>stream</th><th>settings</th></tr></thead><tbody>{rows}</tbody></table>"
    )


class PythonBlockPanel:
    def __init__(self, block: Block, ctx: PanelContext) -> None:
        self.ctx = ctx
        self.jobs = Jobs()
        self.status = Status()
        self.view = look.html()
        self.header = look.html(
            f"<b>{html.escape(block.kind)} <code>{html.escape(block.name)}</code></b> "
            "<small>(a Python block: its decorators define the configuration; edit the code to change it)</small>"
        )
        self.widget = look.vbox([self.header, self.status, self.view])

        def shown(resolved: ResolvedBlock) -> str:
            self.view.value = describe(resolved, ctx.secret_values)
            return f"{len(resolved.streams)} streams."

        self.future = self.jobs.run(
            "Running the decorators", lambda: ctx.resolve(block), self.status, done=shown, secrets=lambda: ctx.secret_values
        )

    def close(self) -> None:
        self.jobs.close()
        for w in (self.header, self.status, self.view, self.widget):
            w.close()
