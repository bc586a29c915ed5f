"""Airbyte source for Mixpanel, declared in manifest.yaml."""

import gc

# Importing the CDK makes about a million objects that live as long as the process; collecting while they are made
# only costs start-up time (about a tenth of it, docs/operations.md, Performance). entrypoint.py freezes them once the
# source is built.
_collecting = gc.isenabled()
gc.disable()
try:
    from source_mixpanel.source import SourceMixpanel
finally:
    if _collecting:
        gc.enable()

__all__ = ["SourceMixpanel"]
