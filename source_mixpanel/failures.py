"""The connector's own errors as Airbyte shows them: one sentence, and a failure type that says who has something to do.

The sentence is both the user's message and the internal one unless a more precise internal message is given, so
Airbyte's UI and its logs say the same thing.
"""

from typing import Optional

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException


def failure(kind: FailureType, message: str, internal_message: Optional[str] = None) -> AirbyteTracedException:
    return AirbyteTracedException(message=message, internal_message=internal_message or message, failure_type=kind)


def config_error(message: str, internal_message: Optional[str] = None) -> AirbyteTracedException:
    """The user has something to change in the config, the catalog or the state."""
    return failure(FailureType.config_error, message, internal_message)


def system_error(message: str) -> AirbyteTracedException:
    """Mixpanel answered what no read can use, or the connector broke its own rule."""
    return failure(FailureType.system_error, message)


def transient_error(message: str) -> AirbyteTracedException:
    """The next sync may succeed where this one could not."""
    return failure(FailureType.transient_error, message)
