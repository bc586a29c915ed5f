"""The HTTP server: one handler for every Mixpanel host, its plumbing, routing, auth checks and the /_sim/ control API."""
from __future__ import annotations

import base64
import binascii
import email.utils
import json
import re
import socket
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from ..contract import DEPARTURES, TRANSITIONAL, breaches, departure_of, operation_for
from .common import API_SECRET, GZIP_MIN_BYTES, PROJECT_ID, SA_SECRET, SA_USERNAME, ApiError, json_bytes, parse_day
from .endpoints import QueryEndpoints
from .export import ExportEndpoint
from .lexicon import LEXICON_SCHEMAS

if TYPE_CHECKING:  # the simulator starts this server
    from .core import MixpanelSimulator

LOGGED_HEADERS = ("Accept-Encoding", "Content-Type")  # what the contract judges, in the request log
AUTH_ERROR = "Unable to authenticate request"
PLAN_ERROR = "Your plan does not allow API calls. Upgrade at mixpanel.com/pricing"

# Each family (of plan_refuses, retired and the budgets) with its operations (integration_tests/contract.py) and the
# endpoint method answering each; the Lexicon is, like every app path, for service accounts only.
_FAMILIES = {
    "export": {"export": "export"}, "revenue": {"engage/revenue": "revenue"}, "cohorts": {"cohorts/list": "cohorts"},
    "engage": {"engage": "engage", "engage/properties": "engage_properties"},
    "events": {"events/properties/top": "event_properties", "events/names": "event_names"},
    "funnels": {"funnels/list": "funnels_list", "funnels": "funnels"}, "insights": {"insights": "insights"},
    "annotations": {"annotations (project secret)": "legacy_annotations", "annotations": "app_annotations"},
    "lexicon": {"lexicon schemas": "app_schemas"}, "app": {"me": "me"},
}
_HANDLERS = {name: (endpoint, family) for family, handlers in _FAMILIES.items() for name, endpoint in handlers.items()}
_PATH_PROJECT_RE = re.compile(r"^/api/app/projects/([^/]+)/")
# The answer to each kind of breach the reference refuses (unknown parameters and undocumented paths are served).
_REFUSALS = {"path": 404, "method": 405, "missing": 400, "enum": 400, "header": 406}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    sim: MixpanelSimulator


class Handler(ExportEndpoint, QueryEndpoints, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # idle keep-alive connections are dropped after this
    server: Server

    def version_string(self) -> str:
        return "MixpanelSimulator/1.0"

    def date_time_string(self, timestamp=None) -> str:
        """The Date header, date_ahead seconds ahead of the clock that stamps mp_processing_time_ms."""
        return email.utils.formatdate((time.time() if timestamp is None else timestamp) + self.server.sim.date_ahead,
                                      usegmt=True)

    # ---------------------------------------------------------------- plumbing
    def setup(self) -> None:
        super().setup()
        with self.server.sim._lock:
            self.server.sim._conns.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.sim._lock:
                self.server.sim._conns.discard(self.connection)

    def log_message(self, format, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def write_chunk(self, data) -> None:
        self.wfile.write(b"%x\r\n" % len(data))
        self.wfile.write(data)
        self.wfile.write(b"\r\n")

    def _accepts_gzip(self) -> bool:
        for part in (self.headers.get("Accept-Encoding") or "").split(","):
            token, _, q = part.strip().partition(";")
            if token.strip().lower() in ("gzip", "*"):
                q = q.strip()
                return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
        return False

    def send_bytes(self, status: int, body: bytes, content_type: str, entry: dict | None, gzip_ok=True,
                   headers=None) -> None:
        # The answer is computed: the query stops running before its bytes reach the client.
        self.server.sim.release(self._entry)
        if entry is not None:
            entry["status"] = status
        encoding = None
        if gzip_ok and self.server.sim.gzip and len(body) > GZIP_MIN_BYTES and self._accepts_gzip():
            comp = zlib.compressobj(5, zlib.DEFLATED, 31)
            body = comp.compress(body) + comp.flush()
            encoding = "gzip"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.headers_sent = True
        self.wfile.write(body)

    def send_json(self, status: int, obj, entry: dict | None, headers=None) -> None:
        self.send_bytes(status, json_bytes(obj), "application/json", entry, headers=headers)

    def send_error_json(self, status: int, message: str, entry: dict | None) -> None:
        self.send_json(status, {"error": message, "status": "error"}, entry)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > 50_000_000:
            raise ApiError(413, "simulator: body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _params(self, query: str, body: bytes) -> dict:
        params: dict = dict(parse_qsl(query, keep_blank_values=True))
        if not body:
            return params
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        text = body.decode("utf-8", errors="replace")
        if ctype == "application/json" or (not ctype and text.lstrip().startswith("{")):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise ApiError(400, "simulator: request body is not valid JSON")
            if not isinstance(parsed, dict):
                raise ApiError(400, "simulator: JSON request body must be an object")
            params.update(parsed)
        else:
            params.update(parse_qsl(text, keep_blank_values=True))
        return params

    def _auth(self):
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return "bad"
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return "bad"
        user, _, password = decoded.partition(":")
        if user == SA_USERNAME and password == SA_SECRET:
            return "service_account"
        if user == API_SECRET and password == "":
            return "project_secret"
        return "bad"

    # ---------------------------------------------------------------- dispatch
    def _dispatch(self, method: str) -> None:
        self.headers_sent = False
        self._entry = entry = None
        try:
            split = urlsplit(self.path)
            path = split.path.rstrip("/") or "/"
            body = self._read_body()
            if path.startswith("/_sim/"):
                self._control(method, path, split.query, body)
                return
            params = self._params(split.query, body)
            headers = {name: self.headers[name] for name in LOGGED_HEADERS if name in self.headers}
            entry = self.server.sim._log_arrival(method, path, params, self._auth(), headers)
            self._entry = entry
            self._api(method, path, params, entry)
        except ApiError as err:
            if err.text:
                self.send_bytes(err.status, err.message.encode(), "text/plain; charset=utf-8", entry, headers=err.headers)
            elif err.body is not None:
                self.send_bytes(err.status, json_bytes(err.body), "application/json", entry, headers=err.headers)
            else:
                self.send_json(err.status, {"error": err.message, "status": "error"}, entry, headers=err.headers)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # a simulator bug: say so rather than hang the client
            self.close_connection = True
            if not self.headers_sent:
                try:
                    self.send_error_json(500, f"simulator bug: {type(exc).__name__}: {exc}", entry)
                except OSError:
                    pass
        finally:
            self.server.sim.release(entry)

    def _api(self, method: str, path: str, params: dict, entry: dict) -> None:
        sim = self.server.sim
        refusals = self._refusals(entry)
        for breach in refusals:  # Mixpanel answers an unknown path or method before it looks at the credentials
            if breach.kind in ("path", "method"):
                raise self._refusal(breach, entry)
        op = operation_for(path)
        kind, (endpoint, family) = op.api, _HANDLERS[op.name]
        project_in_path = _PATH_PROJECT_RE.match(path)

        auth = entry["auth"]
        if auth not in ("service_account", "project_secret") or (kind == "app" and auth != "service_account"):
            if sim.auth_error_style == "400-text":
                raise ApiError(400, AUTH_ERROR, text=True)
            raise ApiError(401, AUTH_ERROR)
        if kind == "app":
            if project_in_path and project_in_path.group(1) != str(PROJECT_ID):
                raise ApiError(403, f"simulator: no access to project {project_in_path.group(1)}")
        elif auth == "service_account" or "project_id" in params:
            if str(params.get("project_id", "")) != str(PROJECT_ID):
                raise ApiError(403, "simulator: project_id is missing or not a project this account can read")

        retired = sim.retired.get(family)
        if retired:
            raise ApiError(int(retired), f"simulator: the {family} endpoint is retired")
        if kind != "export" and (family in sim.plan_refuses or (kind == "query" and "all_query" in sim.plan_refuses)):
            raise ApiError(402, PLAN_ERROR)
        if refusals:
            raise self._refusal(refusals[0], entry)
        canned = sim._canned(path, params)
        if canned is not None:
            self.send_bytes(canned["status"], canned["body"], canned["type"], entry, gzip_ok=False,
                            headers=canned["headers"])
            return
        continuation = endpoint == "engage" and params.get("session_id") and str(params.get("page") or "0") != "0"
        sim.admit(kind if kind == "export" else "lexicon" if family == "lexicon" else "query", entry,
                  counted=not continuation)
        if kind != "export" and sim.query_latency:
            sim._stopping.wait(float(sim.query_latency))
        getattr(self, "_ep_" + endpoint)(params, entry)

    def _refusals(self, entry: dict) -> list:
        """The breaches of the contract Mixpanel refuses, but for the connector's departures (and, while
        strict_contract is off, the connector's transitional ones); a missing project_id gets the 403 below."""
        accepted = DEPARTURES + (() if self.server.sim.strict_contract else TRANSITIONAL)
        return [breach for breach in breaches(entry) if breach.kind in _REFUSALS and breach.subject != "project_id"
                and departure_of(breach, accepted) is None]

    @staticmethod
    def _refusal(breach, entry: dict) -> ApiError:
        """Mixpanel's answer to a breach: JSON from the query and app APIs, text from the export."""
        messages = {
            "path": f"Unknown path {entry['path']}",
            "method": f"Method {breach.subject} is not allowed on {entry['path']}",
            "missing": f"Missing required parameter: {breach.subject}",
            "enum": f"Invalid value for parameter {breach.subject}: {breach.detail}",
            "header": f"Unsupported {breach.subject}: {breach.detail}; the export is served gzip-encoded or plain",
        }
        return ApiError(_REFUSALS[breach.kind], messages[breach.kind], text=breach.operation == "export")

    # ---------------------------------------------------------------- control API
    def _control(self, method: str, path: str, query: str, body: bytes) -> None:
        sim = self.server.sim
        if path == "/_sim/requests" and method == "GET":
            with sim._lock:
                log = [dict(r) for r in sim.requests]
            self.send_json(200, log, None)
        elif path == "/_sim/reset-log" and method == "POST":
            sim.reset_log()
            self.send_json(200, {"status": "ok"}, None)
        elif path == "/_sim/config" and method == "GET":
            self.send_json(200, sim.config(), None)
        elif path == "/_sim/config" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                sim.configure(**changes)
            except (ValueError, TypeError) as err:
                raise ApiError(400, f"simulator: {err}")
            self.send_json(200, sim.config(), None)
        elif path == "/_sim/spend-budget" and method == "POST":
            try:
                spend = json.loads(body or b"{}")
                sim.spend_budget(float(spend["seconds"]), tuple(spend.get("families") or ("query", "export")))
            except (ValueError, TypeError, KeyError) as err:
                raise ApiError(400, f"simulator: spend-budget needs {{\"seconds\": N}}: {err}")
            self.send_json(200, {"status": "ok"}, None)
        elif path == "/_sim/rate-report" and method == "GET":
            self.send_json(200, sim.rate_report(), None)
        elif path == "/_sim/truth/insights" and method == "GET":
            try:
                body, numbers = sim.insights_report(dict(parse_qsl(query)).get("bookmark_id"))
            except (KeyError, TypeError, ValueError):
                raise ApiError(404, f"simulator: no saved Insights report {query}")
            self.send_json(200, {"body": body, "numbers": numbers}, None)
        elif path == "/_sim/truth/groups" and method == "GET":
            self.send_json(200, sim.group_profiles(dict(parse_qsl(query)).get("data_group_id")), None)
        elif path == "/_sim/truth/lexicon" and method == "GET":
            self.send_json(200, {"status": "ok", "results": LEXICON_SCHEMAS}, None)
        elif path == "/_sim/truth/export" and method == "GET":
            params = dict(parse_qsl(query))
            from_day, to_day = parse_day(params.get("from_date")), parse_day(params.get("to_date"))
            if from_day is None or to_day is None:
                raise ApiError(400, "simulator: from_date and to_date (YYYY-MM-DD) are required")
            events = json.loads(params["event"]) if params.get("event") else None
            self.send_json(200, sim.export_truth(from_day.isoformat(), to_day.isoformat(), events), None)
        else:
            raise ApiError(404, f"simulator: unknown control path {method} {path}")
