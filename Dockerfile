# The connector image: `docker run source-mixpanel read --config ... --catalog ...`.
# BASE_IMAGE is overridable for builds without registry access (docs/operations.md, "Docker image").
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# Airbyte reads the connector's name and version from these (they match metadata.yaml; unit_tests/test_metadata.py).
LABEL io.airbyte.name=source-mixpanel
LABEL io.airbyte.version=5.0.0

WORKDIR /airbyte/integration_code
COPY pyproject.toml README.md manifest.yaml ./
COPY source_mixpanel ./source_mixpanel
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir . && rm -rf /airbyte/integration_code/*

ENV PATH="/opt/venv/bin:${PATH}"
ENV AIRBYTE_ENTRYPOINT="source-mixpanel"
ENTRYPOINT ["source-mixpanel"]
