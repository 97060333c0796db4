"""The SES v2 account resources of the local emulator: identities with Easy DKIM and MAIL
FROM, configuration sets with their options and event destinations (moto 5 has neither
event destinations nor MAIL FROM), and the SNS topics they publish to
(``mailer.local.sns_emulator``).

``mailer.local.standin_http`` hands every request other than SendEmail and GetAccount to
:meth:`Account.handle`; an answer of None means "not mine". SES v1's receipt rules
(``mailer.local.ses_receiving``) and SNS (``mailer.local.sns_emulator``) answer on ``/``.
SES v2 operations are found in :data:`ROUTES` (method, path pattern, handler): another
operation is one more row and one more method.

Identities verify at once (DKIM and MAIL FROM ``SUCCESS``), or stay ``PENDING`` after
``POST /_standin/account {"verify": false}`` until ``{"verify": true}``. Every region
starts with the configuration sets given (``transactional`` and ``marketing`` by
default), so that ``mailer dev``, the demo and the tests send as before, while SendEmail
naming a set that does not exist is answered as SES does (``NotFoundException``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from mailer.local.ses_receiving import Receiving
from mailer.local.ses_resources import ConfigurationSet, Identity, Region, event_destination
from mailer.local.simulator import Signer
from mailer.local.sns_emulator import Sns
from mailer.local.standin_http import Answer, answer, error

DEFAULT_SETS = ("transactional", "marketing")


def not_found(message: str) -> Answer:
    return error(404, "NotFoundException", message)


_NAME = "([^/]+)"
ROUTES: list[tuple[bytes, re.Pattern[str], str]] = [
    (method.encode(), re.compile(pattern), handler)
    for method, pattern, handler in (
        ("POST", "/v2/email/identities", "create_identity"),
        ("POST", "/v2/email/list-identities", "list_identities"),
        ("GET", f"/v2/email/identities/{_NAME}", "get_identity"),
        ("DELETE", f"/v2/email/identities/{_NAME}", "delete_identity"),
        ("PUT", f"/v2/email/identities/{_NAME}/dkim/signing", "put_dkim_signing"),
        ("PUT", f"/v2/email/identities/{_NAME}/dkim", "put_dkim"),
        ("PUT", f"/v2/email/identities/{_NAME}/mail-from", "put_mail_from"),
        ("POST", "/v2/email/configuration-sets", "create_set"),
        ("POST", "/v2/email/list-configuration-sets", "list_sets"),
        ("GET", f"/v2/email/configuration-sets/{_NAME}", "get_set"),
        ("DELETE", f"/v2/email/configuration-sets/{_NAME}", "delete_set"),
        ("PUT", f"/v2/email/configuration-sets/{_NAME}/reputation-options", "put_reputation"),
        ("PUT", f"/v2/email/configuration-sets/{_NAME}/sending", "put_sending"),
        ("PUT", f"/v2/email/configuration-sets/{_NAME}/tracking-options", "put_tracking"),
        ("GET", f"/v2/email/configuration-sets/{_NAME}/event-destinations", "get_destinations"),
        (
            "POST",
            f"/v2/email/configuration-sets/{_NAME}/event-destinations",
            "create_destination",
        ),
        (
            "PUT",
            f"/v2/email/configuration-sets/{_NAME}/event-destinations/{_NAME}",
            "update_destination",
        ),
        (
            "DELETE",
            f"/v2/email/configuration-sets/{_NAME}/event-destinations/{_NAME}",
            "delete_destination",
        ),
    )
]


def service_of(authorization: bytes) -> str:
    """The service of a SigV4 ``Authorization`` header's credential scope (``sesv2``…)."""
    start = authorization.find(b"Credential=")
    if start < 0:
        return ""
    end = authorization.find(b",", start)
    scope = authorization[start + 11 : end if end > 0 else None].split(b"/")
    return scope[3].decode() if len(scope) > 3 else ""


class Account:
    """The SES account's resources per region, and its SNS."""

    def __init__(
        self, signer: Signer | None = None, default_sets: tuple[str, ...] = DEFAULT_SETS
    ) -> None:
        self.default_sets = default_sets
        self.sns = Sns(signer)
        self.receiving = Receiving(lambda arn: arn in self.sns.topics)
        self.reset()

    def reset(self) -> None:
        self.regions: dict[str, Region] = {}
        self.verify = True
        self.sns.reset()
        self.receiving.reset()

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /_standin/account {"verify": false}``: identities (existing and new) stay
        pending, DKIM and MAIL FROM too, as before their DNS records are published."""
        if "verify" in body:
            self.verify = bool(body["verify"])
            for state in self.regions.values():
                for identity in state.identities.values():
                    identity.verified = self.verify
        return {"verify": self.verify}

    def region(self, name: str) -> Region:
        state = self.regions.get(name)
        if state is None:
            state = Region(sets={s: ConfigurationSet(s) for s in self.default_sets})
            self.regions[name] = state
        return state

    def stats(self) -> dict[str, Any]:
        """What the control API shows (``GET /_standin/account``)."""
        return {
            "regions": {
                name: {
                    "identities": {i.name: i.view() for i in state.identities.values()},
                    "configuration_sets": {
                        s.name: s.view() | {"EventDestinations": list(s.destinations.values())}
                        for s in state.sets.values()
                    },
                }
                for name, state in self.regions.items()
            },
            "sns": self.sns.stats(),
            "receiving": self.receiving.stats(),
        }

    def has_set(self, region: str, name: str) -> bool:
        return name in self.region(region).sets

    def handle(
        self, method: bytes, path: bytes, query: bytes, auth: bytes, region: str, body: bytes
    ) -> Answer | None:
        """The answer to an account, receiving or SNS request; None when it is none."""
        if path == b"/" and method == b"POST" and service_of(auth) == "ses":
            return self.receiving.handle(region, body)  # SES v1: receipt rules
        if path == b"/" and (service_of(auth) == "sns" or b"Action=" in query):
            return self.sns.handle(method, query, region, body)
        if not path.startswith(b"/v2/email/") or path.startswith(b"/v2/email/outbound"):
            return None
        text = path.decode()
        for route_method, pattern, handler in ROUTES:
            match = pattern.fullmatch(text)
            if match is not None and route_method == method:
                try:
                    payload = json.loads(body) if body else {}
                except ValueError:
                    return error(400, "BadRequestException", "The body is not JSON.")
                if not isinstance(payload, dict):
                    return error(400, "BadRequestException", "The body is not a JSON object.")
                names = [unquote(g) for g in match.groups()]
                params = dict(zip(("name", "child"), names, strict=False))
                answer_: Answer = getattr(self, handler)(region, params, payload)
                return answer_
        return None

    # -- identities ------------------------------------------------------------------------

    def create_identity(self, region: str, _: dict[str, str], body: dict[str, Any]) -> Answer:
        name = str(body.get("EmailIdentity") or "").strip()
        if not name:
            return error(400, "BadRequestException", "EmailIdentity is required.")
        known = self.region(region).identities
        if name.lower() in known:
            return error(400, "AlreadyExistsException", f"Identity {name} already exists.")
        identity = Identity(name, verified=self.verify)
        length = (body.get("DkimSigningAttributes") or {}).get("NextSigningKeyLength")
        if length:
            identity.dkim_key_length = str(length)
        known[name.lower()] = identity
        view = identity.view()
        return answer(
            {k: view[k] for k in ("IdentityType", "VerifiedForSendingStatus", "DkimAttributes")}
        )

    def list_identities(self, region: str, _: dict[str, str], body: dict[str, Any]) -> Answer:
        items = [
            {
                "IdentityType": i.view()["IdentityType"],
                "IdentityName": i.name,
                "SendingEnabled": True,
                "VerificationStatus": i.view()["VerificationStatus"],
            }
            for i in self.region(region).identities.values()
        ]
        return answer({"EmailIdentities": items})

    def _identity(self, region: str, name: str) -> Identity | None:
        return self.region(region).identities.get(name.lower())

    def get_identity(self, region: str, params: dict[str, str], _: dict[str, Any]) -> Answer:
        identity = self._identity(region, params["name"])
        if identity is None:
            return not_found(f"Identity {params['name']} does not exist.")
        return answer(identity.view())

    def delete_identity(self, region: str, params: dict[str, str], _: dict[str, Any]) -> Answer:
        if self.region(region).identities.pop(params["name"].lower(), None) is None:
            return not_found(f"Identity {params['name']} does not exist.")
        return answer({})

    def put_dkim_signing(self, region: str, params: dict[str, str], body: dict[str, Any]) -> Answer:
        identity = self._identity(region, params["name"])
        if identity is None:
            return not_found(f"Identity {params['name']} does not exist.")
        if body.get("SigningAttributesOrigin") != "AWS_SES":
            return error(400, "BadRequestException", "Only AWS_SES signing is emulated.")
        length = (body.get("SigningAttributes") or {}).get("NextSigningKeyLength")
        if length:
            identity.dkim_key_length = str(length)
        return answer({"DkimStatus": "SUCCESS", "DkimTokens": identity.dkim_tokens})

    def put_dkim(self, region: str, params: dict[str, str], body: dict[str, Any]) -> Answer:
        identity = self._identity(region, params["name"])
        if identity is None:
            return not_found(f"Identity {params['name']} does not exist.")
        identity.dkim_signing = bool(body.get("SigningEnabled", False))
        return answer({})

    def put_mail_from(self, region: str, params: dict[str, str], body: dict[str, Any]) -> Answer:
        identity = self._identity(region, params["name"])
        if identity is None:
            return not_found(f"Identity {params['name']} does not exist.")
        domain = body.get("MailFromDomain")
        identity.mail_from = str(domain) if domain else None
        identity.mail_from_behavior = str(body.get("BehaviorOnMxFailure") or "USE_DEFAULT_VALUE")
        return answer({})

    # -- configuration sets ----------------------------------------------------------------

    def _set(self, region: str, name: str) -> ConfigurationSet | None:
        return self.region(region).sets.get(name)

    def create_set(self, region: str, _: dict[str, str], body: dict[str, Any]) -> Answer:
        name = str(body.get("ConfigurationSetName") or "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            return error(400, "BadRequestException", "Invalid ConfigurationSetName.")
        sets = self.region(region).sets
        if name in sets:
            return error(
                400, "AlreadyExistsException", f"Configuration set <{name}> already exists."
            )
        created = ConfigurationSet(name)
        created.reputation_metrics = bool(
            (body.get("ReputationOptions") or {}).get("ReputationMetricsEnabled", False)
        )
        created.sending_enabled = bool(
            (body.get("SendingOptions") or {}).get("SendingEnabled", True)
        )
        if body.get("TrackingOptions"):
            created.tracking = {str(k): str(v) for k, v in body["TrackingOptions"].items()}
        sets[name] = created
        return answer({})

    def list_sets(self, region: str, _: dict[str, str], body: dict[str, Any]) -> Answer:
        return answer({"ConfigurationSets": sorted(self.region(region).sets)})

    def get_set(self, region: str, params: dict[str, str], _: dict[str, Any]) -> Answer:
        found = self._set(region, params["name"])
        if found is None:
            return not_found(f"Configuration set <{params['name']}> does not exist.")
        return answer(found.view())

    def delete_set(self, region: str, params: dict[str, str], _: dict[str, Any]) -> Answer:
        if self.region(region).sets.pop(params["name"], None) is None:
            return not_found(f"Configuration set <{params['name']}> does not exist.")
        return answer({})

    def _option(
        self, region: str, params: dict[str, str], apply: Callable[[ConfigurationSet], None]
    ) -> Answer:
        found = self._set(region, params["name"])
        if found is None:
            return not_found(f"Configuration set <{params['name']}> does not exist.")
        apply(found)
        return answer({})

    def put_reputation(self, region: str, params: dict[str, str], body: dict[str, Any]) -> Answer:
        def apply(s: ConfigurationSet) -> None:
            s.reputation_metrics = bool(body.get("ReputationMetricsEnabled", False))

        return self._option(region, params, apply)

    def put_sending(self, region: str, params: dict[str, str], body: dict[str, Any]) -> Answer:
        def apply(s: ConfigurationSet) -> None:
            s.sending_enabled = bool(body.get("SendingEnabled", False))

        return self._option(region, params, apply)

    def put_tracking(self, region: str, params: dict[str, str], body: dict[str, Any]) -> Answer:
        def apply(s: ConfigurationSet) -> None:
            domain = body.get("CustomRedirectDomain")
            s.tracking = {"CustomRedirectDomain": str(domain)} if domain else None
            if domain and body.get("HttpsPolicy"):
                s.tracking["HttpsPolicy"] = str(body["HttpsPolicy"])  # type: ignore[index]

        return self._option(region, params, apply)

    def get_destinations(self, region: str, params: dict[str, str], _: dict[str, Any]) -> Answer:
        found = self._set(region, params["name"])
        if found is None:
            return not_found(f"Configuration set <{params['name']}> does not exist.")
        return answer({"EventDestinations": list(found.destinations.values())})

    def create_destination(
        self, region: str, params: dict[str, str], body: dict[str, Any]
    ) -> Answer:
        found = self._set(region, params["name"])
        if found is None:
            return not_found(f"Configuration set <{params['name']}> does not exist.")
        name = str(body.get("EventDestinationName") or "")
        if not name or not isinstance(body.get("EventDestination"), dict):
            return error(400, "BadRequestException", "EventDestinationName and EventDestination.")
        if name in found.destinations:
            return error(400, "AlreadyExistsException", f"Event destination {name} already exists.")
        problem = self._bad_destination(region, body["EventDestination"])
        if problem:
            return problem
        found.destinations[name] = {"Name": name, **event_destination(body["EventDestination"])}
        return answer({})

    def update_destination(
        self, region: str, params: dict[str, str], body: dict[str, Any]
    ) -> Answer:
        found = self._set(region, params["name"])
        if found is None or params["child"] not in found.destinations:
            return not_found(f"Event destination {params['child']} does not exist.")
        if not isinstance(body.get("EventDestination"), dict):
            return error(400, "BadRequestException", "EventDestination is required.")
        problem = self._bad_destination(region, body["EventDestination"])
        if problem:
            return problem
        found.destinations[params["child"]] = {
            "Name": params["child"],
            **event_destination(body["EventDestination"]),
        }
        return answer({})

    def delete_destination(self, region: str, params: dict[str, str], _: dict[str, Any]) -> Answer:
        found = self._set(region, params["name"])
        if found is None or found.destinations.pop(params["child"], None) is None:
            return not_found(f"Event destination {params['child']} does not exist.")
        return answer({})

    def _bad_destination(self, region: str, destination: dict[str, Any]) -> Answer | None:
        topic = (destination.get("SnsDestination") or {}).get("TopicArn")
        if topic is not None and topic not in self.sns.topics:
            return error(400, "BadRequestException", f"Could not access SNS topic {topic}.")
        if not destination.get("MatchingEventTypes"):
            return error(400, "BadRequestException", "MatchingEventTypes is required.")
        return None
