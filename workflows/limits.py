"""Every size limit Cairn enforces on what it is given, in one place (docs/automations.md#limits).

Each keeps one hostile or mistaken input from costing memory, CPU, a recursion or a database
error; each is far above what a real automation, contact or event needs.
"""

from __future__ import annotations

# Conditions inside conditions (all/any/not) are limited where the condition model lives.
from workflows.conditions import MAX_CONDITION_DEPTH as MAX_CONDITION_DEPTH

# --- HTTP request bodies (enforced by the API before a handler runs) ----------------------
# Any request body; chunked bodies without Content-Length are counted as they stream in.
MAX_REQUEST_BYTES = 1_000_000
# An automation document (POST/PUT /api/v1/automations).
MAX_DOCUMENT_BYTES = 1_000_000
# One event (POST /api/v1/events): data is a small payload, not a file upload.
MAX_EVENT_BYTES = 64 * 1024
# The codec endpoint (/codec) decodes the Temporal UI's batches of payloads: Temporal allows
# 2 MB per payload and 4 MB per message, and base64 in JSON adds a third.
MAX_CODEC_BYTES = 8 * 1024 * 1024
# Arrays/objects inside arrays/objects of any JSON body: Python's JSON parser recurses, and
# at about a thousand levels it fails; nothing legitimate comes close (a 20-level condition
# is about 45).
MAX_JSON_DEPTH = 64

# --- automation documents (workflows/document.py) ----------------------------------------
MAX_STEPS = 500
MAX_TRIGGERS = 100
# Raw JSON nesting allowed inside one step or trigger: far above what 20 levels of
# conditions need, low enough that nothing deeper ever reaches pydantic or a recursion.
MAX_NESTING = 100
# Any one string in a document (an email's HTML is the longest legitimate one).
MAX_TEXT_CHARS = 200_000

# --- events (api/routes/events.py) --------------------------------------------------------
MAX_EVENT_DATA_KEYS = 100
MAX_EVENT_DATA_DEPTH = 16
