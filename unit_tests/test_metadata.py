"""metadata.yaml against Airbyte's connector metadata schema (ConnectorMetadataDefinitionV0: its required fields,
types and enums, restated here because the schema is not shipped in any package), the CDK's own metadata model,
and the rest of the repository (streams, hosts, version, icon, image labels)."""

import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from airbyte_cdk.models.connector_metadata import MetadataFile

from source_mixpanel.manifest import manifest_path
from unit_tests.test_hosts import host

ROOT = Path(__file__).resolve().parent.parent
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
DATA = METADATA["data"]
SEMVER = r"^\d+\.\d+\.\d+$"

BREAKING_CHANGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["upgradeDeadline", "message"],
    "properties": {
        "upgradeDeadline": {"type": "string", "format": "date"},
        "message": {"type": "string", "minLength": 1},
        "migrationDocumentationUrl": {"type": "string", "format": "uri"},
        "deadlineAction": {"enum": ["auto_upgrade", ""]},
        "scopedImpact": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["scopeType", "impactedScopes"],
                "properties": {
                    "scopeType": {"const": "stream"},
                    "impactedScopes": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                },
            },
        },
    },
}

# One entry of externalDocumentationUrls: a link to the vendor's own documentation, with its kind.
EXTERNAL_DOCUMENTATION_URL = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "url"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "url": {"type": "string", "format": "uri"},
        "type": {"enum": ["api_release_history", "api_reference", "api_deprecations", "authentication_guide",
                          "permissions_scopes", "rate_limits", "status_page", "data_model_reference", "sql_reference",
                          "migration_guide", "developer_community", "other"]},
        "requiresLogin": {"type": "boolean"},
    },
}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["metadataSpecVersion", "data"],
    "properties": {
        "metadataSpecVersion": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["name", "definitionId", "connectorType", "dockerRepository", "dockerImageTag", "license",
                         "documentationUrl", "githubIssueLabel", "connectorSubtype", "releaseStage"],
            "properties": {
                "name": {"type": "string"},
                "definitionId": {"type": "string", "format": "uuid"},
                "connectorType": {"enum": ["destination", "source"]},
                "connectorSubtype": {"enum": ["api", "database", "datalake", "file", "custom", "message_queue",
                                             "unknown", "vectorstore"]},
                "dockerRepository": {"type": "string"},
                "dockerImageTag": {"type": "string", "pattern": SEMVER},
                "documentationUrl": {"type": "string", "format": "uri"},
                "githubIssueLabel": {"type": "string"},
                "icon": {"type": "string"},
                "license": {"type": "string"},
                "releaseStage": {"enum": ["alpha", "beta", "generally_available", "custom"]},
                "supportLevel": {"enum": ["community", "certified", "archived"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "connectorBuildOptions": {"type": "object", "properties": {"baseImage": {"type": "string"}}},
                "allowedHosts": {"type": "object", "additionalProperties": False,
                                 "properties": {"hosts": {"type": "array", "items": {"type": "string"}}}},
                "maxSecondsBetweenMessages": {"type": "integer", "minimum": 1},
                "externalDocumentationUrls": {"type": "array", "items": EXTERNAL_DOCUMENTATION_URL},
                "suggestedStreams": {"type": "object", "additionalProperties": False,
                                     "properties": {"streams": {"type": "array", "items": {"type": "string"}}}},
                "releases": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "breakingChanges": {"type": "object", "additionalProperties": False, "minProperties": 1,
                                            "patternProperties": {SEMVER: BREAKING_CHANGE}},
                        "migrationDocumentationUrl": {"type": "string", "format": "uri"},
                    },
                },
            },
            "additionalProperties": False,
        },
    },
}

# The fields a registry entry needs beyond the schema's required ones (issue: "Registry-ready metadata").
REGISTRY_FIELDS = ["icon", "allowedHosts", "maxSecondsBetweenMessages", "suggestedStreams", "releases", "supportLevel",
                   "externalDocumentationUrls"]


def test_metadata_matches_airbytes_schema():
    checker = jsonschema.FormatChecker()
    jsonschema.validate(METADATA, SCHEMA, format_checker=checker)
    assert all(field in DATA for field in REGISTRY_FIELDS)


def test_metadata_loads_in_the_cdks_model():
    metadata = MetadataFile.from_file(ROOT / "metadata.yaml").data
    assert metadata.dockerRepository == "source-mixpanel" and metadata.language == "python"
    assert metadata.suggestedStreams.streams == DATA["suggestedStreams"]["streams"]


def test_schema_check_is_not_vacuous():
    broken = {"metadataSpecVersion": "1.0", "data": {**DATA, "definitionId": "not-a-uuid"}}
    del broken["data"]["githubIssueLabel"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA, format_checker=jsonschema.FormatChecker())


def test_metadata_agrees_with_the_repository():
    manifest = yaml.safe_load(manifest_path().read_text())
    streams = {ref.rsplit("/", 1)[-1].removesuffix("_stream") for ref in manifest["streams"] if isinstance(ref, str)}
    assert set(DATA["suggestedStreams"]["streams"]) <= streams
    for change in DATA["releases"]["breakingChanges"].values():
        assert {s for scope in change["scopedImpact"] for s in scope["impactedScopes"]} <= streams
    region_hosts = {re.sub("^https://", "", host(name, {"region": region}))
                    for name in ("query_host", "export_host") for region in ("US", "EU", "IN")}
    config_hosts = {f"${{{field}}}" for field in ("base_url", "export_base_url")}  # filled from the config by the platform
    assert set(DATA["allowedHosts"]["hosts"]) == region_hosts | config_hosts
    assert config_hosts <= {f"${{{field}}}" for field in manifest["spec"]["connection_specification"]["properties"]}
    assert {link["type"] for link in DATA["externalDocumentationUrls"]} >= {"api_reference", "rate_limits", "status_page"}
    assert (ROOT / DATA["icon"]).read_text().startswith("<svg")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{DATA["dockerImageTag"]}"' in pyproject
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"LABEL io.airbyte.name={DATA['dockerRepository']}" in dockerfile
    assert f"LABEL io.airbyte.version={DATA['dockerImageTag']}" in dockerfile
    def version(text):
        return tuple(map(int, text.split(".")))

    assert max(map(version, DATA["releases"]["breakingChanges"])) <= version(DATA["dockerImageTag"])
