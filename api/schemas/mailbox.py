"""A message of the development mailbox, as listed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MailboxMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    from_: str = Field(alias="from")
    to: str
    subject: str
    date: str  # ISO 8601
    message_id: str
    body: str  # the link to the message's content
