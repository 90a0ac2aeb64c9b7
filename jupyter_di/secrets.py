"""Where secrets live: outside the notebook, referred to by name.

Cells say ``{{ secret('shop_pg_password') }}``; the value comes from the
environment (``JUPYTER_DI_SECRET_SHOP_PG_PASSWORD``) or from a per-user secrets
file (``~/.jupyter_di/secrets.json`` by default, mode 0600).  Why a file of our
own rather than the notebook: the notebook is shared and versioned; the
secrets file is neither.

Every value ``get`` hands out is remembered by ``redaction`` (by value, in the
forms a driver may print it), so no message of this process shows it: errors,
warnings, progress lines, logs, a Singer tap's stderr.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from .errors import ConfigError
from .redaction import remember

ENV_PREFIX = "JUPYTER_DI_SECRET_"
STALE_COPY_SECONDS = 60


def default_path() -> Path:
    override = os.environ.get("JUPYTER_DI_SECRETS_FILE")
    return Path(override) if override else Path.home() / ".jupyter_di" / "secrets.json"


class SecretStore:
    """A small JSON file of name -> value with owner-only permissions."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_path()

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}

    def get(self, name: str) -> str:
        env_name = ENV_PREFIX + name.upper()
        if env_name in os.environ:
            value = os.environ[env_name]
        else:
            values = self._load()
            if name not in values:
                raise ConfigError(
                    f"secret {name!r} is not set.",
                    fix=f"set it in the block's credentials panel, with `jupyter-di secret set {name}`, or in the environment variable {env_name}.",
                )
            value = values[name]
        remember(value)
        return value

    def names(self) -> list[str]:
        return sorted(self._load())

    def set(self, name: str, value: str) -> None:
        values = self._load()
        values[name] = value
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stale in self.path.parent.glob(".secrets-*"):  # a copy of every secret, left by a set() killed mid-write
            try:
                if time.time() - stale.stat().st_mtime > STALE_COPY_SECONDS:
                    stale.unlink()
            except OSError:
                pass
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".secrets-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(values, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, name: str) -> None:
        values = self._load()
        if values.pop(name, None) is not None:
            self.path.write_text(json.dumps(values, indent=1, sort_keys=True), "utf-8")
            os.chmod(self.path, 0o600)
