"""The project's Lexicon: event schemas that agree with the data on some properties and not on others."""
from __future__ import annotations

# As Mixpanel's Lexicon Schemas API answers them (JSON Schema per event). Purchase says quantity is text while the
# data holds integers; Purchase and Page View type weight differently; a profile schema is there too.
LEXICON_SCHEMAS = [
    {"entityType": "event", "name": "Purchase", "schemaJson": {"description": "A completed checkout", "properties": {
        "price": {"type": "number"}, "currency": {"type": "string"}, "quantity": {"type": "string"},
        "coupon": {"type": "string"}, "weight": {"type": "number"}, "cart": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}}}}},
    {"entityType": "event", "name": "Page View", "schemaJson": {"properties": {
        "page_title": {"type": "string"}, "score": {"type": "integer"}, "weight": {"type": "string"},
        "trial_ends": {"type": "string", "format": "date-time"}}}},
    {"entityType": "event", "name": "Signed up", "schemaJson": {"properties": {
        "signup_method": {"type": "string"}, "invited": {"type": "boolean"}}}},
    {"entityType": "event", "name": "Logged in", "schemaJson": {"properties": {"attempts": {"type": "integer"}}}},
    {"entityType": "profile", "name": "$user", "schemaJson": {"properties": {"$email": {"type": "string"}}}},
]
# Why the Lexicon is refused, by lexicon_refuses' status.
LEXICON_REFUSALS = {
    402: "Your plan does not allow API calls. Upgrade at mixpanel.com/pricing",
    403: "You do not have permission to view this project's Lexicon.",
}
