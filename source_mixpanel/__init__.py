"""Airbyte source for Mixpanel, declared in manifest.yaml."""

from source_mixpanel.source import SourceMixpanel

__all__ = ["SourceMixpanel"]
