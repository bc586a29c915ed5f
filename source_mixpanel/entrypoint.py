"""The `source-mixpanel` command: validate the config, then hand the Airbyte command to the CDK."""

import base64
import gc
import json
import re
import sys
from typing import Any, BinaryIO, Iterable, List, Mapping, Optional, Union

import orjson
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.logger import PRINT_BUFFER
from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    FailureType,
    Type,
)
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_mixpanel import state_file
from source_mixpanel.budget.family import sign_of_life
from source_mixpanel.config.validation import InvalidConfig, validate_config
from source_mixpanel.failures import config_error
from source_mixpanel.source import FAILED_STREAMS_SUMMARY, SourceMixpanel, quiet_cdk_echoes


def basic_auth_tokens(config: Mapping[str, Any]) -> List[str]:
    """The base64 Authorization values these credentials produce: secrets as much as the plain ones."""
    credentials = config.get("credentials") if isinstance(config.get("credentials"), Mapping) else {}
    pairs = []
    if credentials.get("username") and credentials.get("secret"):
        pairs.append(f"{credentials['username']}:{credentials['secret']}")
    api_secret = credentials.get("api_secret") or config.get("api_secret")
    if api_secret:
        pairs += [f"{api_secret}:", f"{api_secret}"]
    # surrogatepass: a secret with a lone surrogate is masked too, before validation refuses it.
    return [base64.b64encode(str(pair).encode("utf-8", "surrogatepass")).decode() for pair in pairs]


class MixpanelEntrypoint(AirbyteEntrypoint):
    """Masks the Basic Authorization value too: the CDK logs request headers under --debug and only masks plain secrets."""

    @staticmethod
    def set_up_secret_filter(config: Mapping[str, Any], connection_specification: Mapping[str, Any]) -> None:
        AirbyteEntrypoint.set_up_secret_filter(config, connection_specification)
        for token in basic_auth_tokens(config):
            add_to_secrets(token)


_cdk_message_to_string = AirbyteEntrypoint.airbyte_message_to_string


def message_to_string(message: AirbyteMessage) -> Union[str, bytes]:
    """A RECORD as bytes, with its nulls: the CDK's serializer omits top-level nulls, and null is one of Mixpanel's
    JSON types; bytes because RecordWriter writes them as they are (the CDK's way decodes and encodes them again).

    Installed over AirbyteEntrypoint.airbyte_message_to_string, which the CDK calls by that class name,
    so a subclass cannot override it. Every other message, and a record with metadata, goes the CDK's way (str).
    """
    if message.type == Type.TRACE and message.trace.error and message.trace.error.failure_type == FailureType.config_error:
        # A config error's sentence is all the user can act on: no traceback, no raw request in place of it.
        message.trace.error.stack_trace, message.trace.error.internal_message = None, message.trace.error.message
    record = message.record
    if message.type != Type.RECORD or record.meta is not None or record.file_reference is not None:
        return _cdk_message_to_string(message)
    body = {"stream": record.stream, "data": record.data, "emitted_at": record.emitted_at}
    if record.namespace is not None:
        body["namespace"] = record.namespace
    try:
        return orjson.dumps({"type": "RECORD", "record": body})
    except TypeError:  # an integer beyond 64 bits or a lone surrogate, which orjson refuses and json writes exactly
        return json.dumps({"type": "RECORD", "record": body}).encode()


class RecordWriter:
    """Writes records to the binary stdout in batches, and every other message through the CDK's print buffer
    after the records before it, so a STATE never overtakes the records it covers. Each RECORD or STATE written is a
    sign of life, which the budget's waits must not let age past Airbyte's limit (budget.family.quiet_deadline).

    Python because the CDK prints each message as text behind two locks of its print buffer: a record's bytes were
    decoded, copied and encoded again (about 3 us a record, and the buffer's growth in memory; docs/operations.md, Performance).
    """

    BATCH_BYTES = 1 << 16

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._batch = bytearray()

    def write(self, message: Union[str, bytes]) -> None:
        if type(message) is bytes:
            self._batch += message
            self._batch += b"\n"
            if len(self._batch) >= self.BATCH_BYTES:
                self.flush()
        else:
            self.flush()
            print(f"{message}\n", end="")
            if message.startswith(('{"type":"STATE"', '{"type":"RECORD"')):  # out now, not at a later message: a wait may follow
                PRINT_BUFFER.flush()
                sign_of_life()

    def flush(self) -> None:
        if not self._batch:
            return
        with PRINT_BUFFER.lock:
            PRINT_BUFFER.flush()  # the log lines and messages before these records, and the text layer emptied
            self._out.write(self._batch)
            self._out.flush()
        self._batch.clear()
        sign_of_life()


def _read_text(path: str, what: str, hint: str) -> str:
    """A file's text, or one sentence that says why it cannot be read."""
    try:
        with open(path, "rb") as file:
            return file.read().decode("utf-8")
    except FileNotFoundError:
        raise InvalidConfig(f"The {what} file {path} does not exist: {hint}.") from None
    except OSError as error:
        raise InvalidConfig(f"The {what} file {path} cannot be read ({error.strerror}): {hint}.") from None
    except UnicodeDecodeError:
        raise InvalidConfig(f"The {what} file {path} is not UTF-8 text: {hint}.") from None


def _read_json(path: str, what: str, hint: str, text: Optional[str] = None) -> Any:
    """A file's JSON (or that of its text, already read), or one sentence that says what is wrong with it and where."""
    text = _read_text(path, what, hint) if text is None else text
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidConfig(f"The {what} file {path} is not JSON ({error.msg} at line {error.lineno}, column "
                            f"{error.colno}): {hint}.") from None


CONFIG_HINT = "pass a JSON object with --config"
CATALOG_HINT = "pass a configured catalog with --catalog (discover lists the streams)"
STATE_HINT = "pass the state a previous sync emitted, or leave --state out to start from start_date"


def _read_config(path: str, text: str) -> Mapping[str, Any]:
    config = _read_json(path, "config", CONFIG_HINT, text)
    if not isinstance(config, dict):
        raise InvalidConfig(f"The config file {path} holds no JSON object: {CONFIG_HINT}.")
    return config


_INDENT = re.compile(r"^([ \t]+)\S", re.MULTILINE)


def _keep_layout(path: str, before: str) -> None:
    """Puts a config file the CDK's config migration rewrote on one line back in the layout it had (its indent,
    letters outside ASCII as letters, its last line break): the CDK keeps the keys, values and order, not the layout."""
    with open(path, encoding="utf-8") as file:
        after = file.read()
    indent = _INDENT.search(before)
    if after == before or indent is None:
        return
    text = json.dumps(json.loads(after), indent=indent[1], ensure_ascii=False) + ("\n" if before.endswith("\n") else "")
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


def _read_catalog(path: str) -> ConfiguredAirbyteCatalog:
    catalog = _read_json(path, "catalog", CATALOG_HINT)
    try:
        return ConfiguredAirbyteCatalogSerializer.load(catalog)
    except Exception:  # noqa: BLE001 - the serializer's errors name fields, not what to do
        raise InvalidConfig(f"The catalog file {path} is not a configured catalog: {CATALOG_HINT}.") from None


def _read_state(path: str) -> List[AirbyteStateMessage]:
    try:
        return state_file.parse(_read_text(path, "state", STATE_HINT))
    except state_file.NotAState as problem:
        raise InvalidConfig(f"The state file {path} is not a state this connector reads: {problem}. Pass "
                            f"{state_file.SHAPES}; or leave --state out to start from start_date.") from None


def _config_error_messages(command: str, message: str) -> Iterable[str]:
    error = config_error(message)
    if command == "check":
        yield AirbyteEntrypoint.airbyte_message_to_string(error.as_connection_status_message())
    else:
        yield AirbyteEntrypoint.airbyte_message_to_string(error.as_airbyte_message())


def run(args: Optional[List[str]] = None) -> None:
    args = sys.argv[1:] if args is None else args
    parsed = AirbyteEntrypoint.parse_args(args)
    config_path = getattr(parsed, "config", None)
    config: Optional[Mapping[str, Any]] = None
    catalog_path = getattr(parsed, "catalog", None)
    state_path = getattr(parsed, "state", None)
    try:
        if config_path:
            config_text = _read_text(config_path, "config", CONFIG_HINT)
            config = _read_config(config_path, config_text)
            for token in basic_auth_tokens(config):
                add_to_secrets(token)
            validate_config(config)
        catalog = _read_catalog(catalog_path) if catalog_path else None
        state = _read_state(state_path) if state_path else None
    except InvalidConfig as problem:
        for line in _config_error_messages(parsed.command, str(problem)):
            print(line)
        sys.exit(0 if parsed.command == "check" else 1)

    source = SourceMixpanel(catalog=catalog, config=config, state=state, config_path=config_path)
    if config_path:
        _keep_layout(config_path, config_text)
    # What the imports and the source built live as long as the process: full collections need not walk them.
    gc.freeze()
    AirbyteEntrypoint.airbyte_message_to_string = staticmethod(message_to_string)
    entrypoint = MixpanelEntrypoint(source)
    quiet_cdk_echoes()
    writer = RecordWriter(sys.__stdout__.buffer)  # where the print buffer writes too
    with PRINT_BUFFER:
        try:
            for message in entrypoint.run(parsed):
                writer.write(message)
        except AirbyteTracedException as error:
            if error.failure_type != FailureType.config_error:
                raise  # a bug or an outage: the CDK's handler logs its traceback
            # The CDK's summary of the streams that failed repeats their errors, already sent; it only sets the exit code.
            if not error.message.startswith(FAILED_STREAMS_SUMMARY):
                writer.write(message_to_string(error.as_airbyte_message()))
            writer.flush()
            sys.exit(1)
        finally:
            writer.flush()


if __name__ == "__main__":
    run()
