"""Providers down for ~30 s (real time): the SMTP server, the Twilio-compatible SMS API and a
webhook receiver refuse connections, then the two HTTP ones answer 503, then all come back.
No step fails, and every contact's email, SMS and webhook is delivered exactly once after recovery.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from email.utils import parseaddr
from functools import partial
from typing import Any

from tests.helpers.providers import FakeServer, Reply, configured, fake_server, outcomes
from tests.helpers.runs import finished
from tests.helpers.stack import Mailbox, Stack, eventually, free_port

CONTACTS = 10
SID, AUTH, FROM = "AC0123456789abcdef", "secret-token", "+15005550006"
REFUSED_SECONDS = 12  # port closed: connection refused
DOWN_SECONDS = 28  # then the HTTP providers answer 503 until this long after the first send
UNAVAILABLE = Reply(503, b"service unavailable", {})
SMS_CREATED = Reply(
    201, b'{"sid": "SM1", "status": "queued"}', {"Content-Type": "application/json"}
)
HOOK_OK = Reply(200, b"ok", {})


def _automations(hook_url: str) -> dict[str, dict[str, Any]]:
    """One automation per provider, each send followed by a tag: the run goes on after it."""

    def flow(send: dict[str, Any], tag: str) -> dict[str, Any]:
        return {
            "start": "send",
            "steps": {"send": {**send, "next": "after"}, "after": {"type": "add_tag", "tag": tag}},
        }

    return {
        "email": flow(
            {"type": "send_email", "subject": "Back soon", "html": "<p>Hi %FIRSTNAME%</p>"},
            "emailed",
        ),
        "sms": flow({"type": "send_sms", "body": "Hi %FIRSTNAME%"}, "texted"),
        "webhook": flow({"type": "webhook", "url": f"{hook_url}/down"}, "hooked"),
    }


async def _retrying(stack: Stack, workflow_id: str) -> None:
    """The run's send is pending on a second attempt or later: it really met the outage."""
    description = await stack.client.get_workflow_handle(workflow_id).describe()
    pending = description.raw_description.pending_activities
    assert pending and pending[0].attempt >= 2, (workflow_id, pending)


async def _all_answered(*servers: FakeServer) -> None:
    """Every run's SMS or webhook has been answered 503 at least once."""
    for server in servers:
        keys = {request.header("Idempotency-Key") for request in server.received}
        assert len(keys) == CONTACTS, (server.url, len(keys))


def _delivered(server: FakeServer) -> Counter[str]:
    """Idempotency keys of the requests the server answered with success, counted."""
    return Counter(
        request.header("Idempotency-Key") or "?"
        for request, reply in zip(server.received, server.answered, strict=True)
        if reply.status < 300
    )


async def test_providers_down_for_half_a_minute_lose_nothing(stack: Stack) -> None:
    smtp, sms_port, hook_port = Mailbox(), free_port(), free_port()
    hook_url = f"http://127.0.0.1:{hook_port}"
    loop = asyncio.get_running_loop()
    with configured(
        stack.settings,
        smtp_port=smtp.port,
        sms_base_url=f"http://127.0.0.1:{sms_port}",
        sms_account_sid=SID,
        sms_auth_token=AUTH,
        sms_from=FROM,
        webhook_allow_private=True,  # the receiver is on 127.0.0.1
    ):
        automation_ids = {
            kind: await stack.automation(document)
            for kind, document in _automations(hook_url).items()
        }
        contacts = [
            await stack.contact(
                first_name=f"C{n}", phone=f"+3361234560{n}", fields={"sms_consent": True}
            )
            for n in range(CONTACTS)
        ]
        first_send = loop.time()
        with stack.env.with_time_skipping_disabled():  # the outage is real time; so are retries
            handles = await asyncio.gather(
                *(
                    stack.enroll(contact["id"], automation_id)
                    for automation_id in automation_ids.values()
                    for contact in contacts
                )
            )
            every_run = [handle.id for handle in handles]
            runs = {
                kind: every_run[i * CONTACTS : (i + 1) * CONTACTS]
                for i, kind in enumerate(automation_ids)
            }
            await asyncio.gather(
                *(
                    eventually(partial(_retrying, stack, wid), within=60, interval=0.5)
                    for wid in every_run
                )
            )
        met = loop.time() - first_send
        print(f"\n{len(every_run)} runs met closed ports within {met:.1f} s")

        # Timed from the first send, but each phase is met by every run even on a slow machine.
        await asyncio.sleep(max(REFUSED_SECONDS, met + 3) - (loop.time() - first_send))
        with (
            fake_server(UNAVAILABLE, port=sms_port) as sms,
            fake_server(UNAVAILABLE, port=hook_port) as hook,
        ):
            await eventually(partial(_all_answered, sms, hook), within=60, interval=0.5)
            await asyncio.sleep(DOWN_SECONDS - (loop.time() - first_send))
            answered_503 = (len(sms.received), len(hook.received))
            sms.default, hook.default = SMS_CREATED, HOOK_OK
            smtp.controller.start()
            try:
                print(f"providers back after {loop.time() - first_send:.1f} s")
                finished_runs = {
                    kind: [await finished(stack, wid) for wid in ids] for kind, ids in runs.items()
                }
                print(f"every run finished {loop.time() - first_send:.1f} s after the first send")
            finally:
                smtp.controller.stop()

    # Both outage variants were met: the HTTP providers answered 503 to some attempts.
    assert answered_503[0] > 0 and answered_503[1] > 0, answered_503
    tags = {"email": "emailed", "sms": "texted", "webhook": "hooked"}
    for kind, tag in tags.items():
        for run in finished_runs[kind]:
            assert run["status"] == "completed", run
            assert outcomes(run) == {"send": ("done", None), "after": ("done", None)}, run
        for contact in contacts:
            assert tag in (await stack.record(contact["id"]))["tags"]
    # Exactly one delivery per run and provider: one message per recipient, one 2xx per key.
    recipients = sorted(parseaddr(str(m["To"]))[1] for m in smtp.messages)
    assert recipients == sorted(c["email"] for c in contacts)
    assert len({m["Message-ID"] for m in smtp.messages}) == CONTACTS
    visit_keys = {kind: {f"{wid}:1" for wid in ids} for kind, ids in runs.items()}
    assert _delivered(sms) == Counter(visit_keys["sms"])
    assert _delivered(hook) == Counter(visit_keys["webhook"])
    print(
        f"SMS: {len(sms.received)} requests ({answered_503[0]} answered 503), "
        f"webhook: {len(hook.received)} ({answered_503[1]} answered 503), "
        f"emails: {len(smtp.messages)}"
    )
