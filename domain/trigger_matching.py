"""Does a committed change fire an automation's trigger? (docs/automations.md#triggers; pure matching on dicts)."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from typing import Any

from store.conditions import compare, is_subset

# The change kinds (outbox rows) each trigger type listens to.
TRIGGER_KINDS = {
    "tag_added": "tag_added",
    "tag_removed": "tag_removed",
    "list_subscribed": "list_subscribed",
    "list_unsubscribed": "list_unsubscribed",
    "field_changed": "field_changed",
    "event": "event",
    "page_visited": "event",
    "email_opened": "event",
    "email_clicked": "event",
    "score_changed": "score_changed",
    "goal_achieved": "goal_achieved",
    "deal_stage_changed": "deal_stage_changed",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # score comparisons need no clock


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:  # null is "no value", not the text "None"
        return a is b
    return a == b or str(a).strip().lower() == str(b).strip().lower()


def trigger_matches(trigger: dict[str, Any], kind: str, data: dict[str, Any]) -> bool:
    ttype = trigger.get("type")
    if TRIGGER_KINDS.get(ttype or "") != kind:
        return False
    if ttype in ("tag_added", "tag_removed"):
        return _same(trigger["tag"], data.get("tag"))
    if ttype in ("list_subscribed", "list_unsubscribed"):
        return trigger.get("list") is None or _same(trigger["list"], data.get("list"))
    if ttype == "field_changed":
        if trigger["field"] != data.get("field"):
            return False
        # An absent `to` means any change; `"to": null` means the field was cleared.
        return "to" not in trigger or _same(trigger["to"], data.get("to"))
    if ttype == "event":
        return trigger["event"] == data.get("event") and is_subset(
            trigger.get("data") or {}, data.get("data") or {}
        )
    if ttype == "page_visited":
        return data.get("event") == "page_visited" and fnmatch.fnmatchcase(
            str((data.get("data") or {}).get("url", "")), trigger["url"]
        )
    if ttype in ("email_opened", "email_clicked"):
        if data.get("event") != ttype:
            return False
        event_data = data.get("data") or {}
        # A click a link scanner likely made fires only triggers that ask for those.
        if event_data.get("suspected_bot") and not trigger.get("include_bots"):
            return False
        wanted = {
            k: trigger[k] for k in ("automation", "step", "link") if trigger.get(k) is not None
        }
        return is_subset(wanted, data.get("data") or {})
    if ttype == "score_changed":
        if trigger["score"] != data.get("score"):
            return False
        # Contact scores' rows carry no target; a deal's say "deal". No target: either.
        if trigger.get("target") not in (None, data.get("target", "contact")):
            return False
        # Fires on crossing the threshold, not on every change above it.
        now = data.get("to")
        before = data.get("from")
        return compare(now, trigger["op"], trigger["value"], _EPOCH) and not compare(
            before, trigger["op"], trigger["value"], _EPOCH
        )
    if ttype == "deal_stage_changed":
        return all(
            trigger.get(key) is None or _same(trigger[key], data.get(key))
            for key in ("pipeline", "stage")
        )
    if ttype == "goal_achieved":
        return trigger["automation"] == data.get("automation") and trigger["goal"] == data.get(
            "goal"
        )
    return False
