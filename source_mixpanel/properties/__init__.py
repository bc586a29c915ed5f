"""Mixpanel properties as columns: their names (names), the kinds of their values (kinds), discovery of the names and
types (discovery), and the configured catalog's columns at read (columns).

Serves manifest.yaml's `event_properties_requester`, `profile_properties_requester`, `group_properties_requester`
and the schema loaders of `export_stream` and `profile_schema_loader` (DiscoveredSchemaLoader); the columns shape the
records of ExportDecoder and `profile_shape`.
"""
