"""Links into the Temporal UI (CAIRN_TEMPORAL_UI_URL), where each run is a workflow."""

from __future__ import annotations

from urllib.parse import quote

from core.settings import Settings


def workflow_url(settings: Settings, workflow_id: str) -> str:
    """The run's page in the Temporal UI: its history, timers and current details."""
    return (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )
