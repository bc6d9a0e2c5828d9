"""What the analytics partners share: exported event names, custom/purchase property expansion, ids and times.

Amplitude, Mixpanel, Segment and mParticle all name an event from its type and expand the same JSON-string
`properties`; one module keeps their dashboards consistent and lets each name be computed once per event type.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Optional

import orjson

CUSTOM_EVENT = "users.behaviors.CustomEvent"
PURCHASE = "users.behaviors.Purchase"
UNINSTALL = "users.behaviors.Uninstall"

CUSTOM_EVENT_PREFIX = "[Braze Custom Event] "
CUSTOM_PROPERTY_PREFIX = "[Custom event property] "
PURCHASE_PROPERTY_PREFIX = "[Purchase property] "
RAW_PROPERTIES = "_raw"  # where a `properties` value that is not a JSON object is kept, unparsed
REDACTED = "[REDACTED]"  # what a `remove` field transform leaves (transforms.route.REDACTED)

# Namespace and channel segments of event types; "" = not part of the name.
_SEGMENTS: dict[str, str] = {
    "users": "", "messages": "", "behaviors": "", "app": "",
    "agentconsole": "Agent Console", "banner": "Banner", "campaigns": "Campaign", "canvas": "Canvas",
    "canvasstep": "Canvas Step", "contentcard": "Content Card", "costep": "Content Optimizer Step",
    "email": "Email", "exit": "Exit", "experimentstep": "Experiment Step", "featureflag": "Feature Flag",
    "inappmessage": "In-App Message", "line": "LINE", "liveactivity": "Live Activity", "newsfeed": "News Feed",
    "newsfeedcard": "News Feed Card", "profile": "Profile", "pushnotification": "Push Notification", "rcs": "RCS",
    "sms": "SMS", "subscription": "Subscription", "subscriptiongroup": "Subscription Group", "webhook": "Webhook",
    "whatsapp": "WhatsApp",
}
_WORDS = {"Ios": "iOS", "Sms": "SMS", "Rcs": "RCS", "Url": "URL", "Id": "ID"}
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Segment's own names (behaviour §5.3); other types fall back to display_name.
SEGMENT_NAMES: dict[str, str] = {
    "users.messages.pushnotification.Send": "Push Notification Sent",
    "users.messages.pushnotification.Open": "Push Notification Tapped",
    "users.messages.pushnotification.Bounce": "Push Notification Bounced",
    "users.messages.pushnotification.IosForeground": "iOS Foreground Push Opened",
    "users.messages.email.Send": "Email Sent",
    "users.messages.email.Delivery": "Email Delivered",
    "users.messages.email.Open": "Email Opened",
    "users.messages.email.Click": "Email Link Clicked",
    "users.messages.email.Bounce": "Email Bounced",
    "users.messages.email.SoftBounce": "Email Soft Bounced",
    "users.messages.email.MarkAsSpam": "Email Marked As Spam",
    "users.messages.email.Unsubscribe": "Email Unsubscribed",
    "users.messages.sms.Send": "SMS Sent",
    "users.messages.sms.CarrierSend": "SMS Sent to Carrier",
    "users.messages.sms.Delivery": "SMS Delivered",
    "users.messages.sms.DeliveryFailure": "SMS Delivery Failed",
    "users.messages.sms.Rejection": "SMS Rejected",
    "users.messages.sms.InboundReceive": "SMS Inbound Received",
    "users.behaviors.subscriptiongroup.StateChange": "Subscription Group State Changed",
    "users.messages.inappmessage.Impression": "In-App Message Viewed",
    "users.messages.inappmessage.Click": "In-App Message Clicked",
    "users.messages.contentcard.Send": "Content Card Sent",
    "users.messages.contentcard.Impression": "Content Card Viewed",
    "users.messages.contentcard.Click": "Content Card Clicked",
    "users.messages.contentcard.Dismiss": "Content Card Dismissed",
    "users.behaviors.app.NewsFeedImpression": "News Feed Viewed",
    "users.messages.newsfeedcard.Impression": "News Feed Card Viewed",
    "users.messages.newsfeedcard.Click": "News Feed Card Clicked",
    "users.messages.webhook.Send": "Webhook Sent",
    "users.campaigns.Conversion": "Campaign Converted",
    "users.canvas.Conversion": "Canvas Converted",
    "users.canvas.Entry": "Canvas Entered",
    "users.campaigns.EnrollInControl": "Campaign Control Group Entered",
    UNINSTALL: "Application Uninstalled",
    PURCHASE: "Purchased",
    "users.behaviors.app.SessionStart": "Session Started",
    "users.behaviors.app.SessionEnd": "Session Ended",
    "users.behaviors.subscription.GlobalStateChange": "Global Subscription State Changed",
}


def _words(segment: str) -> str:
    known = _SEGMENTS.get(segment)
    if known is not None:
        return known
    if segment.islower() or segment.isdigit():
        return segment.capitalize()
    return " ".join(_WORDS.get(w, w.capitalize() if w.islower() else w) for w in _CAMEL.findall(segment))


@lru_cache(maxsize=1024)
def display_name(event_type: str) -> str:
    """Title Case name of an event type ("users.messages.email.Open" → "Email Open"); cached because it runs per
    event (bounded: event types come from input data)."""
    name = " ".join(w for w in map(_words, event_type.split(".")) if w)
    return name or event_type


def event_name(event: dict[str, Any]) -> str:
    """Amplitude/Mixpanel/mParticle name: custom events carry their own name behind a prefix, so they neither
    collide with Braze's names nor with the same event tracked straight into the partner."""
    event_type = event.get("event_type") or ""
    if event_type == CUSTOM_EVENT and event.get("name") is not None:
        return CUSTOM_EVENT_PREFIX + str(event["name"])
    return display_name(event_type)


def segment_name(event: dict[str, Any]) -> str:
    event_type = event.get("event_type") or ""
    return SEGMENT_NAMES.get(event_type) or event_name(event)


def parse_properties(value: Any) -> dict[str, Any]:
    """The JSON-string `properties` of a CustomEvent/Purchase as a dict. Never raises: a value that is not a JSON
    object is kept as it came under `_raw`, so a bad payload is still exported instead of failing the bundle."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {RAW_PROPERTIES: value}
        if isinstance(parsed, dict):
            return parsed
        if parsed is None:
            return {}
    return {RAW_PROPERTIES: value}


def prefixed(properties: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {prefix + str(k): v for k, v in properties.items()}


def property_prefix(event_type: str) -> Optional[str]:
    """The prefix of expanded `properties` keys: custom-event and purchase properties are told apart from Braze's
    own fields; other types have no `properties` to expand."""
    if event_type == CUSTOM_EVENT:
        return CUSTOM_PROPERTY_PREFIX
    if event_type == PURCHASE:
        return PURCHASE_PROPERTY_PREFIX
    return None


@lru_cache(maxsize=4096)
def kept_apart(event_type: str, mapped: frozenset[str]) -> frozenset[str]:
    """Fields a partner does not copy into its property bag as they are: those it maps to keys of its own, and a
    custom event's or purchase's `name` and `properties`, which are expanded."""
    if property_prefix(event_type) is None:
        return mapped
    return mapped | {"name", "properties"}


def usable_id(value: Any) -> Optional[str]:
    """An identity value a partner can key a user on; an empty or redacted one would merge every user into one."""
    if not value or value == REDACTED:
        return None
    return value if isinstance(value, str) else str(value)


def epoch_ms(event: dict[str, Any]) -> Optional[int]:
    """Event time in milliseconds: `time_ms` when the type has it (more precise), else `time` (seconds) × 1000."""
    ms = event.get("time_ms")
    if ms is not None:
        return int(ms)
    seconds = event.get("time")
    if seconds is None:
        return None
    return seconds * 1000 if isinstance(seconds, int) else int(seconds * 1000)
