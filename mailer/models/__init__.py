"""SQLAlchemy tables, one file per aggregate: the Alembic target."""

from mailer.models.api_key import SCOPES, ApiKey
from mailer.models.base import Base
from mailer.models.campaign import (
    CAMPAIGN_STATUSES,
    STAT_NAMES,
    Campaign,
    CampaignStats,
    CampaignVariant,
)
from mailer.models.contact import (
    Contact,
    ContactErasure,
    ContactImport,
    ContactImportRow,
    ContactStatusChange,
)
from mailer.models.engagement import (
    CampaignDomain,
    CampaignLink,
    CampaignTimeline,
    DomainHour,
    DomainMx,
    MessageEngagement,
)
from mailer.models.event import Event, SnsNotification
from mailer.models.message import IdempotencyKey, Message
from mailer.models.person import ROLES, TOKEN_PURPOSES, AuditRecord, Person, PersonToken
from mailer.models.reputation import AutoPause, RegionAccount, ReputationMinute
from mailer.models.segment import Segment
from mailer.models.subscription import (
    Confirmation,
    ContactTopic,
    Form,
    Topic,
    TopicChange,
)
from mailer.models.suppression import Suppression
from mailer.models.template import Template, TemplateVersion
from mailer.models.web_session import SUBJECT_KINDS, WebSession
from mailer.models.webhook_out import WebhookDelivery, WebhookEndpoint

__all__ = [
    "CAMPAIGN_STATUSES",
    "ROLES",
    "TOKEN_PURPOSES",
    "AuditRecord",
    "Person",
    "PersonToken",
    "SCOPES",
    "SUBJECT_KINDS",
    "STAT_NAMES",
    "ApiKey",
    "Base",
    "Campaign",
    "Confirmation",
    "ContactTopic",
    "Form",
    "Topic",
    "TopicChange",
    "CampaignDomain",
    "CampaignLink",
    "CampaignTimeline",
    "CampaignVariant",
    "DomainHour",
    "DomainMx",
    "MessageEngagement",
    "CampaignStats",
    "Contact",
    "ContactErasure",
    "ContactImport",
    "ContactImportRow",
    "ContactStatusChange",
    "Event",
    "IdempotencyKey",
    "Message",
    "Segment",
    "SnsNotification",
    "Suppression",
    "Template",
    "TemplateVersion",
    "WebSession",
    "WebhookDelivery",
    "WebhookEndpoint",
    "AutoPause",
    "RegionAccount",
    "ReputationMinute",
]
