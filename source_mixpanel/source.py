"""The declarative source, built from the manifest that ships inside this package."""

from pathlib import Path
from typing import Any, List, Mapping, Optional

import yaml
from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog
from airbyte_cdk.sources.declarative.concurrent_declarative_source import ConcurrentDeclarativeSource

_PACKAGE_DIR = Path(__file__).resolve().parent


def manifest_path() -> Path:
    """The manifest inside the installed wheel, or at the root of a source checkout (editable install).

    Always an absolute path: YamlDeclarativeSource would open a `manifest.yaml` in the current
    directory first, and a stray file there would decide what runs.
    """
    for candidate in (_PACKAGE_DIR / "manifest.yaml", _PACKAGE_DIR.parent / "manifest.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"manifest.yaml is missing from {_PACKAGE_DIR}: the package was built without it")


class SourceMixpanel(ConcurrentDeclarativeSource):
    """The manifest, loaded by absolute path, with the export read timeout taken from the config.

    Python for the timeout because the manifest schema takes only a number for read_timeout_in_seconds.
    """

    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        config_path: Optional[str] = None,
    ) -> None:
        manifest = yaml.safe_load(manifest_path().read_text())
        timeout = (config or {}).get("export_read_timeout")
        if timeout:
            manifest["definitions"]["export_requester"]["read_timeout_in_seconds"] = timeout
        super().__init__(catalog=catalog, config=config, state=state, source_config=manifest, config_path=config_path)
