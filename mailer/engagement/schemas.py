"""What the engagement numbers of a mailbox provider look like (campaigns and reputation)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProviderOut(BaseModel):
    provider: str = Field(
        description="Gmail, Outlook, Yahoo/AOL, Apple iCloud (by domain, or by the MX of a"
        " custom domain once looked up), another host named by its MX (Zoho, Proton,"
        " Fastmail, Yandex), or the recipient domain"
    )
    domains: int = Field(description="recipient domains counted under it")
    delivered: int
    bounced: int
    complained: int
    delayed: int
    opened: int
    bounce_rate: float = Field(description="bounced / (delivered + bounced)")
    complaint_rate: float = Field(description="complained / delivered")
    open_rate: float = Field(description="opened / delivered")
