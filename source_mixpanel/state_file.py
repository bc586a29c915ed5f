"""The --state file in every shape a user holds: what a read printed, the state Airbyte's UI shows, or the protocol's list.

Python because the CDK's read_state takes only a list of state messages (or a legacy object), and the command's files are
read before the manifest is. Shapes taken, each whole file or one JSON message per line (a read's stdout, every message
type mixed): a read's STATE messages, whole or as their `state` part; Airbyte's connection state ({"stateType",
"streamState": [{"streamDescriptor", "streamState"}]} or its "globalState"); the protocol's list of state objects.
The last state of each stream wins, as it would in Airbyte.
"""

import json
from typing import Any, Dict, Iterable, List, Mapping, Tuple

from airbyte_cdk.models import AirbyteStateMessage, AirbyteStateMessageSerializer

SHAPES = ("the STATE lines a read printed (one JSON message per line, other messages may be mixed in), a JSON array of "
          "those messages or of their state objects, or the connection state Airbyte's UI shows ({\"streamState\": [...]})")
STATE_TYPES = ("STREAM", "GLOBAL", "LEGACY")  # an AirbyteStateMessage's own type, as the protocol spells it


class NotAState(ValueError):
    """What in the file is not one of SHAPES, in words (Python: a file's shape is read before any manifest is)."""


def parse(text: str) -> List[AirbyteStateMessage]:
    """The state messages the text holds, the last per stream, in the order each stream first appeared."""
    try:
        documents: Iterable[Tuple[str, Any]] = [("the file", json.loads(text))] if text.strip() else []
    except ValueError:
        documents = list(_json_lines(text))
    latest: Dict[Any, AirbyteStateMessage] = {}
    for where, document in documents:
        for state in _states(where, document):
            latest[_key(state)] = _load(where, state)
    return list(latest.values())


def _json_lines(text: str) -> Iterable[Tuple[str, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield f"line {number}", json.loads(line)
        except ValueError as error:
            raise NotAState(f"line {number} is not JSON ({error.msg} at column {error.colno})") from None


def _states(where: str, document: Any) -> Iterable[Mapping[str, Any]]:
    """The state objects (AirbyteStateMessage's shape) a JSON document holds; other Airbyte messages hold none."""
    if document is None:
        return
    if isinstance(document, list):
        for item in document:
            yield from _states(where, item)
        return
    if not isinstance(document, Mapping):
        raise NotAState(f"{where} holds {type(document).__name__} {json.dumps(document)[:40]}, which is no state")
    kind = document.get("type")
    if kind == "STATE":  # a whole AirbyteMessage
        yield document.get("state")
    elif kind in STATE_TYPES or (kind is None and any(key in document for key in ("stream", "global", "data"))):
        yield document
    elif "stateType" in document or "streamState" in document or "globalState" in document:
        yield from _connection_state(where, document)
    elif not (isinstance(kind, str) and kind.isupper()):  # a RECORD, LOG, TRACE... message is passed over
        raise NotAState(f"{where} holds an object with neither a state nor an Airbyte message type (keys: "
                        f"{', '.join(list(document)[:5])})")


def _connection_state(where: str, document: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Airbyte's connection state, as its UI and API show it, as protocol state objects."""
    def per_stream(entries: Any) -> List[Mapping[str, Any]]:
        if not isinstance(entries, list) or not all(isinstance(e, Mapping) and "streamDescriptor" in e for e in entries):
            raise NotAState(f"{where} holds a streamState that is not a list of {{streamDescriptor, streamState}}")
        return [{"stream_descriptor": e["streamDescriptor"], "stream_state": e.get("streamState")} for e in entries]

    if document.get("globalState") is not None:
        shared = document["globalState"]
        yield {"type": "GLOBAL", "global": {"shared_state": shared.get("sharedState"),
                                            "stream_states": per_stream(shared.get("streamStates") or [])}}
    elif document.get("state") is not None:  # stateType legacy
        yield {"type": "LEGACY", "data": document["state"]}
    for stream in per_stream(document.get("streamState") or []):
        yield {"type": "STREAM", "stream": stream}


def _key(state: Any) -> Any:
    """The stream a state is for (the global and legacy states are one each)."""
    stream = state.get("stream") if isinstance(state, Mapping) else None
    descriptor = stream.get("stream_descriptor") if isinstance(stream, Mapping) else None
    if isinstance(descriptor, Mapping):
        return descriptor.get("name"), descriptor.get("namespace")
    return state.get("type") if isinstance(state, Mapping) else None


def _load(where: str, state: Any) -> AirbyteStateMessage:
    try:
        message = AirbyteStateMessageSerializer.load(state)
    except Exception:  # noqa: BLE001 - the serializer's errors name fields, not what to do
        message = None
    if message is None or not (message.stream or message.global_ or message.data):
        raise NotAState(f"{where} holds a state that is not an Airbyte state message")
    return message
