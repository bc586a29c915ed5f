"""The declarative source, built from the manifest that ships inside this package."""

from pathlib import Path
from typing import Any, List, Mapping, Optional

from airbyte_cdk.models import AirbyteStateMessage, ConfiguredAirbyteCatalog
from airbyte_cdk.sources.declarative.yaml_declarative_source import YamlDeclarativeSource

_PACKAGE_DIR = Path(__file__).resolve().parent


def manifest_path() -> Path:
    """The manifest inside the installed wheel, or at the root of a source checkout (editable install).

    Always an absolute path: YamlDeclarativeSource would otherwise open a `manifest.yaml` in the
    current directory first, and a stray file there would decide what runs.
    """
    for candidate in (_PACKAGE_DIR / "manifest.yaml", _PACKAGE_DIR.parent / "manifest.yaml"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"manifest.yaml is missing from {_PACKAGE_DIR}: the package was built without it")


class SourceMixpanel(YamlDeclarativeSource):
    def __init__(
        self,
        catalog: Optional[ConfiguredAirbyteCatalog] = None,
        config: Optional[Mapping[str, Any]] = None,
        state: Optional[List[AirbyteStateMessage]] = None,
        config_path: Optional[str] = None,
    ) -> None:
        super().__init__(
            path_to_yaml=str(manifest_path()),
            catalog=catalog,
            config=config,
            state=state,
            config_path=config_path,
        )
