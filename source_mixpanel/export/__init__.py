"""The export stream's Python, in the order an answer meets it: the window a response asked for (response), the body
check (body), the line reader both share (lines), the decoder (decoder) and the read history (history).

Serves manifest.yaml's `export_error_handler` (ExportBodyCheck), `export_stream` (ExportDecoder; the state its cursor
carries, through cursors.py) and `type_sample_requester` (the body check on discover's sample week). The decoder never
imports the body check: what passes between them rides on the response (response.py).
"""
