"""The config checked before the CDK starts: the spec's own rules in one sentence per field (spec), then the rules a
JSON schema cannot state (validation).

Serves manifest.yaml's `spec` (connection_specification, read through manifest.py) and mirrors its
`config_normalization_rules` (the credentials' shapes it accepts).
"""
