"""Deterministic synthetic Currents events, for tests, demos and benchmarks.

Every line of a corpus is a pure function of (seed, line index): each event draws from its own
`random.Random(f"{seed}:{index}")`, so any slice can be generated on any worker, in any order, and the same
corpus comes out of `generate_lines`, the `GenerateRecords` Beam transform and the CLI:

    python -m transforms.generate --count 200000 --seed 7 --invalid 20 --oversize 2 --out events.jsonl

Events are flat dicts: `event_type` plus the fields of that type's Avro schema (every required field, a share of the
optional ones — 70% by default, `optional_rate` — absent optional fields omitted), with plausible values chosen by
field name, so that they validate against the schema. A corpus can include malformed lines and oversize (> 900 KiB)
events at positions given by `bad_line_kinds`, to exercise the dead-letter and size-limit paths.
"""
import argparse
import base64
import logging
import os
import random
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any, BinaryIO

import apache_beam as beam
import orjson

from sinks.storage.schemas import known_event_types, load_schema

__all__ = ["BASE_TIME", "INVALID_KINDS", "MAX_EVENT_BYTES", "GenerateRecords", "bad_line_kinds", "generate_event",
           "generate_lines", "main"]

log = logging.getLogger(__name__)

BASE_TIME = 1_790_000_000
EVENTS_PER_SECOND = 10  # `time` advances one second every 10 indices, so 200k events span ~5.5 hours
OPTIONAL_RATE = 0.7
MAX_EVENT_BYTES = 921_600  # 900 KiB: the export drops larger events (behaviour §1.6)
PADDING_CHARS = 1_000_000
INVALID_KINDS = ("not_json", "json_array", "missing_id", "time_string", "non_utf8")

N_USERS = 100_000  # external ids are `user-NNNNN`
N_APPS = 6  # two apps per workspace
N_CAMPAIGNS = 48
N_CANVASES = 24
N_VARIANTS = 3
N_STEPS = 6


# --- per-event context -------------------------------------------------------------------------------------------

_USER, _APP, _CAMPAIGN, _CANVAS, _VARIANT, _STEP, _DEVICE = range(7)


class _Ctx:
    """One event's rng plus lazily drawn entities, so related fields (user_id/email, campaign id/name) agree."""

    __slots__ = ("rng", "time", "picks")

    def __init__(self, rng: random.Random, time: int) -> None:
        self.rng = rng
        self.time = time
        self.picks = [-1] * 7

    def pick(self, slot: int, n: int) -> int:
        value = self.picks[slot]
        if value < 0:
            value = self.picks[slot] = int(self.rng.random() * n)
        return value


Gen = Callable[[_Ctx], Any]


# --- value helpers -----------------------------------------------------------------------------------------------

_MASK96 = (1 << 96) - 1
_MASK128 = (1 << 128) - 1
_GOLDEN = 0x9E3779B97F4A7C15F39CC0605CEDC835


def _mix(n: int, salt: int, mask: int) -> int:
    """Cheap deterministic scramble of an entity number, so derived ids look random but stay stable per entity."""
    x = ((n + 1) * _GOLDEN + salt * 0x632BE59BD9B4E019) & mask
    return x ^ (x >> 29)


def _uuid(bits: int) -> str:
    h = "%032x" % bits
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:32]}"


@lru_cache(maxsize=None)
def _pool(kind: str, size: int, hex24: bool = False) -> tuple[str, ...]:
    """Stable ids of a small entity population (workspaces, campaigns, canvas steps...)."""
    rng = random.Random(f"pool:{kind}")
    if hex24:
        return tuple("%024x" % rng.getrandbits(96) for _ in range(size))
    return tuple(_uuid(rng.getrandbits(128)) for _ in range(size))


def _choice(*options: Any) -> Gen:
    n = len(options)
    return lambda c: options[int(c.rng.random() * n)]


def _bool(p: float = 0.5) -> Gen:
    return lambda c: c.rng.random() < p


def _int(lo: int, hi: int) -> Gen:
    span = hi - lo
    return lambda c: lo + int(c.rng.random() * span)  # ~3x cheaper than randrange; uniform enough for test data


def _float(lo: float, hi: float, digits: int = 2) -> Gen:
    return lambda c: round(lo + (hi - lo) * c.rng.random(), digits)


def _hex(nbits: int, prefix: str = "") -> Gen:
    fmt = f"{prefix}%0{nbits // 4}x"
    return lambda c: fmt % c.rng.getrandbits(nbits)


def _digits(n: int, prefix: str = "") -> Gen:
    lo = 10 ** (n - 1)
    return lambda c: f"{prefix}{c.rng.randrange(lo, lo * 10)}"


def _uuid4(c: _Ctx) -> str:
    return _uuid(c.rng.getrandbits(128))


def _json(build: Callable[[_Ctx], dict[str, Any]]) -> Gen:
    return lambda c: orjson.dumps(build(c)).decode()


_TIMEZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Sao_Paulo",
              "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Madrid", "Asia/Tokyo", "Asia/Kolkata",
              "Asia/Singapore", "Australia/Sydney", "Africa/Lagos", "Pacific/Auckland")
_COUNTRIES = ("US", "CA", "GB", "DE", "FR", "ES", "BR", "MX", "JP", "IN", "AU", "NG", "SG", "NZ")
_LANGUAGES = ("en", "es", "fr", "de", "pt", "ja", "hi")
_FIRST = ("jane", "john", "maria", "wei", "aisha", "carlos", "emma", "liam", "yuki", "priya", "omar", "sofia",
          "noah", "chloe", "mateo", "amara", "lucas", "hana", "ethan", "zara")
_LAST = ("doe", "smith", "garcia", "chen", "khan", "silva", "mueller", "martin", "tanaka", "patel", "okafor",
         "rossi", "nguyen", "kowalski", "dubois", "jensen", "moreau", "haddad", "novak", "park")
_DOMAINS = ("example.com", "example.org", "example.net")
# (platform, os_version, device_model, ad_id_type)
_DEVICES = (
    ("ios", "17.4.1", "iPhone15,2", "ios_idfa"), ("ios", "18.1", "iPhone16,1", "ios_idfa"),
    ("ios", "16.7.8", "iPhone12,1", "ios_idfa"), ("android", "14", "Pixel 8", "google_ad_id"),
    ("android", "13", "SM-S918B", "google_ad_id"), ("android", "12", "moto g(60)", "google_ad_id"),
    ("web", "Chrome 124.0", "Macintosh", "windows_ad_id"), ("web", "Firefox 125.0", "Windows", "windows_ad_id"),
    ("kindle", "Fire OS 8", "KFTRWI", "google_ad_id"), ("tvos", "17.4", "AppleTV14,1", "ios_idfa"),
    ("roku", "12.5.0", "Roku Ultra 4802X", "roku_ad_id"),
)
_CAMPAIGN_THEMES = ("Spring Sale", "Welcome Series", "Cart Reminder", "Win-Back", "Weekly Digest", "Flash Deal",
                    "Loyalty Rewards", "Product Launch")
_CANVAS_THEMES = ("Onboarding Journey", "Re-engagement Flow", "Subscription Upsell", "Abandoned Browse")
_STEP_KINDS = ("Email", "Push", "Delay", "Audience Split", "In-App Message", "SMS")
_EVENT_NAMES = ("added_to_cart", "viewed_product", "completed_level", "started_trial", "shared_link", "searched")
_USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
)
_WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "harbor", "indigo", "juniper", "lumen", "maple",
          "nova", "orbit", "pixel", "quartz", "river", "summit", "tundra", "umber", "violet")
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --- entity-derived values ---------------------------------------------------------------------------------------

def _user(c: _Ctx) -> int:
    return c.pick(_USER, N_USERS)


def _user_id(c: _Ctx) -> str:
    return "%024x" % _mix(_user(c), 1, _MASK96)


def _external_user_id(c: _Ctx) -> str:
    return f"user-{_user(c):05d}"


def _first(c: _Ctx) -> str:
    return _FIRST[_user(c) % len(_FIRST)]


def _last(c: _Ctx) -> str:
    return _LAST[(_user(c) // len(_FIRST)) % len(_LAST)]


def _email(c: _Ctx) -> str:
    u = _user(c)
    return f"{_first(c)}.{_last(c)}{u % 100}@{_DOMAINS[u % len(_DOMAINS)]}"


def _user_phone(c: _Ctx) -> str:
    return f"+1555{_user(c) % 10_000_000:07d}"


def _business_phone(c: _Ctx) -> str:
    return f"+1555900{_app(c):04d}"


def _device_id(c: _Ctx) -> str:
    return _uuid(_mix(_user(c), 2, _MASK128))


def _device(c: _Ctx) -> tuple[str, str, str, str]:
    return _DEVICES[c.pick(_DEVICE, len(_DEVICES))]


def _app(c: _Ctx) -> int:
    return c.pick(_APP, N_APPS)


def _workspace(c: _Ctx) -> int:
    return _app(c) // 2


def _campaign(c: _Ctx) -> int:
    return c.pick(_CAMPAIGN, N_CAMPAIGNS)


def _campaign_name(c: _Ctx) -> str:
    n = _campaign(c)
    return f"{_CAMPAIGN_THEMES[n % len(_CAMPAIGN_THEMES)]} {n // len(_CAMPAIGN_THEMES) + 1}"


def _variant(c: _Ctx) -> int:
    return c.pick(_VARIANT, N_VARIANTS)


def _canvas(c: _Ctx) -> int:
    return c.pick(_CANVAS, N_CANVASES)


def _canvas_name(c: _Ctx) -> str:
    n = _canvas(c)
    return f"{_CANVAS_THEMES[n % len(_CANVAS_THEMES)]} {n // len(_CANVAS_THEMES) + 1}"


def _step(c: _Ctx) -> int:
    return _canvas(c) * N_STEPS + c.pick(_STEP, N_STEPS)


def _step_name(c: _Ctx) -> str:
    s = c.pick(_STEP, N_STEPS)
    return f"Step {s + 1}: {_STEP_KINDS[s]}"


def _entity(kind: str, key: Callable[[_Ctx], int], size: int, hex24: bool = False) -> Gen:
    ids = _pool(kind, size, hex24)
    return lambda c: ids[key(c)]


def _campaign_variation(c: _Ctx) -> int:
    return _campaign(c) * N_VARIANTS + _variant(c)


def _canvas_variation(c: _Ctx) -> int:
    return _canvas(c) * N_VARIANTS + _variant(c)


def _step_variation(c: _Ctx) -> int:
    return _step(c) * N_VARIANTS + _variant(c)


def _past(c: _Ctx) -> int:
    return c.time - c.rng.randrange(90 * 86_400)


def _time_ms(c: _Ctx) -> int:
    return c.time * 1000 + c.rng.randrange(1000)


def _short_url(c: _Ctx) -> str:
    r = c.rng.getrandbits(48)
    return "https://brz.ai/" + "".join(_BASE62[(r >> (6 * i)) % 62] for i in range(7))


def _url(c: _Ctx) -> str:
    return f"https://www.example.com/{_WORDS[int(c.rng.random() * len(_WORDS))]}?utm_campaign=c{_campaign(c)}"


def _sentence(c: _Ctx) -> str:
    r = c.rng
    return " ".join(r.choices(_WORDS, k=3 + int(r.random() * 6))).capitalize() + "."


def _b64url(nbytes: int) -> Gen:
    def gen(c: _Ctx) -> str:
        raw = c.rng.getrandbits(nbytes * 8).to_bytes(nbytes, "little")
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")  # web push keys are unpadded base64url
    return gen


def _properties(c: _Ctx) -> dict[str, Any]:
    r = c.rng
    props: dict[str, Any] = {"source": ("app", "web", "email", "push")[r.randrange(4)]}
    if r.random() < 0.7:
        props["item_count"] = r.randrange(1, 12)
    if r.random() < 0.5:
        props["value"] = round(r.random() * 200, 2)
    if r.random() < 0.4:
        props["sku"] = f"sku-{r.randrange(10_000):04d}"
    if r.random() < 0.2:
        props["tags"] = [_WORDS[r.randrange(len(_WORDS))] for _ in range(r.randrange(1, 4))]
    return props


def _custom_attributes(c: _Ctx) -> dict[str, Any]:
    r = c.rng
    return {"loyalty_tier": ("bronze", "silver", "gold", "platinum")[r.randrange(4)],
            "points": r.randrange(50_000), "favorite_category": _WORDS[r.randrange(len(_WORDS))],
            "beta_tester": r.random() < 0.1}


def _message_extras(c: _Ctx) -> dict[str, Any]:
    return {"promo_code": f"SAVE{c.rng.randrange(5, 50)}", "campaign_theme": _campaign_name(c)}


def _tool_arguments(c: _Ctx) -> dict[str, Any]:
    return {"order_id": f"ord-{c.rng.randrange(1_000_000):06d}", "include_history": c.rng.random() < 0.5}


def _conversion_behavior(c: _Ctx) -> dict[str, Any]:
    return {"type": "performs_custom_event", "custom_event_name": _EVENT_NAMES[c.rng.randrange(len(_EVENT_NAMES))],
            "window": 86_400 * c.rng.randrange(1, 8)}


def _flow_response(c: _Ctx) -> dict[str, Any]:
    return {"flow_token": "%016x" % c.rng.getrandbits(64), "rating": c.rng.randrange(1, 6)}


def _generic_object(c: _Ctx) -> dict[str, Any]:
    return {"key": _WORDS[c.rng.randrange(len(_WORDS))], "n": c.rng.randrange(100)}


def _bot_reasons(c: _Ctx) -> list[str]:
    reasons = ("user_agent", "ip_address", "click_timing")
    return [reasons[k] for k in range(3) if c.rng.random() < 0.4] or ["user_agent"]


def _media_urls(c: _Ctx) -> list[str | None]:
    r = c.rng
    return [None if r.random() < 0.05 else "https://cdn.example.com/media/%012x.jpg" % r.getrandbits(48)
            for _ in range(r.randrange(1, 4))]


# --- the field-name table ----------------------------------------------------------------------------------------

def _named() -> dict[tuple[str, str], Gen]:
    """(field name, Avro base type) -> generator; keyed by type too because a few names differ in type by event."""
    table: dict[tuple[str, str], Gen] = {}

    def put(base: str, gen: Gen, *names: str) -> None:
        for name in names:
            table[(name, base)] = gen

    s, i, f, b = "string", "int", "float", "boolean"
    put(s, _uuid4, "id", "invocation_id", "request_id", "session_id", "canvas_entry_id", "activity_id")
    put(s, _user_id, "user_id")
    put(s, _external_user_id, "external_user_id")
    put(s, _email, "email_address", "channel_identifier")
    put(s, _user_phone, "phone_number", "to_phone_number", "user_phone_number")
    put(s, _business_phone, "from_phone_number", "inbound_phone_number")
    put(s, lambda c: _first(c).capitalize(), "first_name")
    put(s, lambda c: _last(c).capitalize(), "last_name")
    put(s, _device_id, "device_id", "push_token_device_id")
    put(s, lambda c: _uuid(c.rng.getrandbits(128)).upper(), "ad_id")
    put(s, lambda c: _device(c)[0], "platform")
    put(s, lambda c: _device(c)[1], "os_version")
    put(s, lambda c: _device(c)[2], "device_model")
    put(s, lambda c: _device(c)[3], "ad_id_type")
    put(s, _entity("app", _app, N_APPS), "app_id")
    put(s, _entity("app_group", _workspace, N_APPS // 2), "app_group_id", "app_group_api_id")
    put(s, _hex(96), "dispatch_id", "send_id", "orphaned_by_id", "catalog_id")
    put(s, _entity("campaign", _campaign, N_CAMPAIGNS), "campaign_id")
    put(s, _campaign_name, "campaign_name")
    put(s, _entity("message_variation", _campaign_variation, N_CAMPAIGNS * N_VARIANTS), "message_variation_id")
    put(s, lambda c: ("Variant A", "Variant B", "Control")[_variant(c)],
        "message_variation_name", "canvas_variation_name")
    put(s, _entity("canvas", _canvas, N_CANVASES, hex24=True), "canvas_id")
    put(s, _entity("canvas_api", _canvas, N_CANVASES), "canvas_api_id")
    put(s, _canvas_name, "canvas_name")
    put(s, _entity("canvas_variation", _canvas_variation, N_CANVASES * N_VARIANTS, hex24=True), "canvas_variation_id")
    put(s, _entity("canvas_variation_api", _canvas_variation, N_CANVASES * N_VARIANTS), "canvas_variation_api_id")
    put(s, _entity("canvas_step", _step, N_CANVASES * N_STEPS, hex24=True), "canvas_step_id", "next_step_id")
    put(s, _entity("canvas_step_api", _step, N_CANVASES * N_STEPS), "canvas_step_api_id")
    put(s, _step_name, "canvas_step_name")
    put(s, _entity("step_message_variation", _step_variation, N_CANVASES * N_STEPS * N_VARIANTS),
        "canvas_step_message_variation_id")
    put(s, _entity("experiment_step", _step, N_CANVASES * N_STEPS), "experiment_step_id",
        "content_optimizer_step_id")
    put(s, _entity("experiment_split", _canvas_variation, N_CANVASES * N_VARIANTS), "experiment_split_id")
    put(s, lambda c: f"Path {'ABC'[_variant(c)]}", "experiment_split_name")
    put(s, _entity("subscription_group", _app, N_APPS), "subscription_group_id")
    put(s, _entity("card", _campaign_variation, N_CAMPAIGNS * N_VARIANTS), "card_id", "content_card_id")
    put(s, _choice("homepage_top", "checkout_banner", "profile_footer"), "banner_placement_id")
    put(s, _choice(*_TIMEZONES), "timezone")
    put(s, _choice("M", "F", "O", "N", "P"), "gender")
    put(s, _choice(*_COUNTRIES), "country")
    put(s, _choice(*_LANGUAGES), "language")
    put(s, _choice("en-US", "en-GB", "es-MX", "fr-FR", "de-DE", "ja-JP"), "locale_key")
    put(s, _choice("6.1.0", "7.3.2", "8.0.1", "5.12.0", "30.2.0"), "sdk_version")
    put(s, _choice("1170x2532", "1080x2400", "1920x1080", "2048x2732"), "resolution")
    put(s, _choice("Verizon", "T-Mobile", "Vodafone", "AT&T", "Orange"), "carrier")
    put(s, _choice("Chrome", "Safari", "Firefox", "Edge"), "browser")
    put(s, _choice(*_EVENT_NAMES), "name")
    put(s, _json(_properties), "properties")
    put(s, _json(_custom_attributes), "custom_attributes")
    put(s, _json(_message_extras), "message_extras")
    put(s, _json(_tool_arguments), "tool_arguments")
    put(s, _json(_conversion_behavior), "conversion_behavior")
    put(s, _json(_flow_response), "flow_response_json")
    put(s, lambda c: f"sku-{c.rng.randrange(10_000):04d}", "product_id")
    put(s, _choice("USD", "EUR", "GBP", "JPY", "CAD", "BRL"), "currency")
    put(s, _choice("Organic", "Facebook Ads", "Google Ads", "TikTok Ads", "Apple Search Ads"), "source")
    put(s, _entity("agent", _app, N_APPS), "agent_id")
    put(s, _choice("Support Triage Agent", "Product Recommender", "Copy Assistant"), "agent_name")
    put(s, _choice("openai", "anthropic", "google"), "model_provider")
    put(s, _choice("gpt-4o-mini", "claude-sonnet-4", "gemini-2.0-flash"), "model_name")
    put(s, _hex(96, "req_"), "provider_request_id")
    put(s, _hex(96, "call_"), "tool_call_id")
    put(s, _choice("lookup_order", "search_catalog", "get_user_profile"), "tool_name")
    put(s, _choice("canvas", "catalog", "test"), "invocation_source")
    put(s, _sentence, "input", "output", "message_body", "abort_log", "retry_log", "raw_response",
        "quick_reply_text", "button_string")
    put(s, _choice("timeout", "rate_limited", "invalid_response", "Undelivered", "Blocked by carrier"), "error")
    put(s, _choice("add", "update", "remove"), "push_token_state_change_type")
    put(s, _hex(256), "push_token", "push_to_start_token", "update_token")
    put(s, _b64url(16), "web_push_token_user_auth")
    put(s, _b64url(65), "web_push_token_public_key", "web_push_token_vapid_public_key")
    put(s, _choice("SDK", "Dashboard", "REST API", "Subscription Center", "CSV Import"), "state_change_source")
    put(s, _choice("Subscribed", "Unsubscribed", "Opted In"), "subscription_status")
    put(s, _choice("email", "sms", "whatsapp", "push", "rcs"), "channel")
    put(s, _choice("entry", "advance", "exit"), "progression_type")
    put(s, _choice("exit_criteria", "completed", "audience_sync", "max_duration"), "exit_reason")
    put(s, _choice("liquid_abort_message", "rate_limit", "user_not_subscribed", "quiet_hours"), "abort_type")
    put(s, _choice("connection_error", "rate_limited", "server_error"), "retry_type")
    put(s, _choice("sendgrid", "sparkpost", "amazon_ses"), "esp")
    put(s, _choice("mail.example.com", "news.example.com"), "from_domain")
    put(s, _choice("marketing", "transactional"), "ip_pool")
    put(s, lambda c: f"192.0.2.{c.rng.randrange(1, 255)}", "sending_ip")
    put(s, lambda c: _email(c).rpartition("@")[2], "recipient_domain")
    put(s, _choice("550 5.1.1 User unknown", "552 5.2.2 Mailbox full", "554 5.7.1 Rejected"), "bounce_reason")
    put(s, _choice("421 4.7.0 Try again later", "451 4.3.0 Temporary failure"), "deferral_reason")
    put(s, _choice("true", "false"), "machine_open")
    put(s, _choice("desktop", "mobile", "tablet"), "device_class")
    put(s, _choice("iOS", "Android", "Windows", "macOS"), "device_os")
    put(s, _choice("Gmail", "Yahoo", "Outlook", "iCloud"), "mailbox_provider")
    put(s, _choice(*_USER_AGENTS), "user_agent")
    put(s, _url, "url")
    put(s, _short_url, "short_url")
    put(s, lambda c: f"link-{c.rng.randrange(1000)}", "link_id")
    put(s, _choice("shop_now", "learn_more", "unsubscribe_footer"), "link_alias")
    put(s, _choice("new_checkout_flow", "dark_mode", "live_chat"), "feature_flag_id_name")
    put(s, _choice("1", "2", "3"), "version")
    put(s, _choice("button-1", "button-2"), "button_id")
    put(s, _choice("uri", "deep_link", "none", "close"), "button_action_type")
    put(s, lambda c: "U%032x" % c.rng.getrandbits(128), "native_line_id")
    put(s, lambda c: f"16{55_000_000 + _workspace(c):08d}", "line_channel_id")
    put(s, lambda c: f"Acme LINE {_workspace(c) + 1}", "line_channel_name")
    put(s, _digits(15), "media_id", "flow_id")
    put(s, _hex(96, "wamid."), "message_id", "in_reply_to")
    put(s, _choice("order_confirmation", "shipping_update", "appointment_reminder"), "template_name")
    put(s, lambda c: f"US.{c.rng.randrange(10**15, 10**16)}", "bsuid")
    put(s, _choice("DeliveryAttributes", "GameScoreAttributes"), "activity_attributes_type")
    put(s, _choice("start", "update", "end"), "live_activity_event_type")
    put(s, _choice("success", "failure"), "live_activity_event_outcome")
    put(s, _choice("tap", "reply", "suggested_action"), "interaction_type")
    put(s, _choice("Track order", "Yes", "No"), "element_label")
    put(s, _choice("button", "chip", "card"), "element_type")
    put(s, _choice("acme_rcs_agent", "acme_alerts_agent"), "from_rcs_sender", "to_rcs_sender")
    put(s, _choice("subscribed", "unsubscribed", "other"), "action")
    put(s, _choice("marketing", "transactional"), "category")
    put(s, _choice("30007", "30003", "21610", "131026"), "provider_error_code")
    put(s, _choice("Message filtered", "Unreachable destination", "Message undeliverable"), "provider_error_title")
    put(s, _choice("hooks.example.com", "api.example.net"), "host")
    put(s, lambda c: f"https://hooks.example.com/braze/{_app(c)}", "endpoint_url")
    put(s, _choice("/braze/events", "/v1/hooks"), "url_path")
    put(s, _choice("http_response", "timeout", "connection_error"), "webhook_failure_source")
    put(s, _choice("sdk", "rest_api", "csv_import", "dashboard"), "update_source")
    put(s, lambda c: f"{1950 + c.rng.randrange(55)}-{c.rng.randrange(1, 13):02d}-{c.rng.randrange(1, 29):02d}", "dob")
    put(s, _choice("Lisbon", "Austin", "Osaka", "Lagos", "Toronto", "Berlin"), "home_city")
    put(s, _hex(64), "combination_token")
    put("array<?string>", _media_urls, "media_urls")
    put("array<string>", _bot_reasons, "suspected_bot_click_reason")

    put(i, lambda c: c.time, "time")
    put("long", lambda c: c.time, "time")
    put("long", _time_ms, "time_ms")
    put(i, _int(20, 30_000), "duration", "webhook_duration")  # milliseconds
    put(f, _float(1.0, 3600.0, 1), "duration")  # SessionEnd: seconds
    put(i, _int(0, 4000), "prompt_tokens", "completion_tokens", "cache_tokens", "reasoning_tokens")
    put(i, _int(0, 8000), "total_tokens")
    put(i, _int(0, 10_000), "random_bucket_number", "prev_random_bucket_number")
    put(i, _choice(1, 2), "ios_push_token_apns_gateway")
    put(i, _past, "push_token_created_at", "push_token_updated_at")
    put(i, _int(0, 4), "conversion_behavior_index")
    put(i, _int(1, 6), "attempt_count")
    put(i, _int(0, 6), "retry_count")
    put(i, _choice(400, 401, 404, 429, 500, 502, 503), "http_status_code")
    put(i, _int(0, 5000), "content_length")
    put(f, _float(-90.0, 90.0, 6), "latitude")
    put(f, _float(-180.0, 180.0, 6), "longitude")
    put(f, _float(0.0, 2500.0, 1), "altitude")
    put(f, _float(1.0, 150.0, 1), "ll_accuracy", "alt_accuracy")
    put(f, _float(0.99, 499.99, 2), "price")
    put(b, _bool(0.05), "is_error", "is_suspected_bot_click", "is_sms_fallback")
    put(b, _bool(0.1), "in_control_group", "is_drop", "is_amp", "archived")
    put(b, _bool(0.3), "cache_hit", "llm_owned_by_customer", "push_token_provisionally_opted_in",
        "push_token_foreground_push_disabled", "is_terminal")
    put(b, _bool(0.8), "ad_tracking_enabled", "is_canvas_entry")
    return table


def _fallback(name: str, base: str) -> Gen:
    """Generator for a field the table does not name (e.g. one added to the catalogue later), chosen by type."""
    if base == "string":
        if name.endswith("_json"):
            return _json(_generic_object)
        if name.endswith("_id"):
            return _uuid4
        if name.endswith("url"):
            return _url
        if name.endswith("_name"):
            label = name[: -len("_name")].replace("_", " ").title()
            return lambda c: f"{label} {c.rng.randrange(1, 20)}"
        return lambda c: f"{_WORDS[c.rng.randrange(len(_WORDS))]}-{c.rng.randrange(1000)}"
    if base in ("int", "long"):
        return _past if name.endswith("_at") else _int(0, 1000)
    if base in ("float", "double"):
        return _float(0.0, 100.0)
    if base == "boolean":
        return _bool()
    if base.startswith("array<"):
        return lambda c: [_WORDS[c.rng.randrange(len(_WORDS))] for _ in range(c.rng.randrange(1, 4))]
    raise ValueError(f"no generator for field {name!r} of type {base!r}")


def _base_type(avro: Any) -> tuple[str, bool]:
    """Avro field type -> (catalogue-style base type such as `int` or `array<?string>`, optional)."""
    optional = isinstance(avro, list) and "null" in avro
    if optional:
        avro = next(t for t in avro if t != "null")
    if isinstance(avro, dict) and avro.get("type") == "array":
        items = avro["items"]
        item = f"?{next(t for t in items if t != 'null')}" if isinstance(items, list) else items
        return f"array<{item}>", optional
    if isinstance(avro, dict):
        avro = avro["type"]
    return str(avro), optional


@lru_cache(maxsize=1)
def _table() -> dict[tuple[str, str], Gen]:
    return _named()


@lru_cache(maxsize=None)
def _plan(event_type: str) -> tuple[tuple[str, bool, Gen], ...]:
    """(field, optional, generator) per schema field, built once per type and process."""
    schema = load_schema(event_type)
    if schema is None:
        raise KeyError(f"no schema for event type {event_type!r}")
    table = _table()
    plan = []
    for field in schema["fields"]:
        base, optional = _base_type(field["type"])
        gen = table.get((field["name"], base)) or _fallback(field["name"], base)
        plan.append((field["name"], optional, gen))
    return tuple(plan)


@lru_cache(maxsize=1)
def _types() -> tuple[str, ...]:
    return known_event_types()


# --- events and lines --------------------------------------------------------------------------------------------

_local = threading.local()  # Beam runs bundles on several threads of one process: one rng per thread


def _rng(seed: int, index: int) -> random.Random:
    """The event's rng, the same stream as `random.Random(f"{seed}:{index}")`.

    Reseeding a per-thread instance costs half of constructing one (construction seeds twice), which is most of
    the per-event cost.
    """
    rng: random.Random | None = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = random.Random()
    rng.seed(f"{seed}:{index}")
    return rng


def generate_event(seed: int, index: int, optional_rate: float = OPTIONAL_RATE) -> dict[str, Any]:
    """Event number `index` of corpus `seed`: `event_type` plus schema fields, each optional one present with
    probability `optional_rate`; a pure function of its arguments."""
    rng = _rng(seed, index)
    types = _types()
    event_type = types[int(rng.random() * len(types))]
    ctx = _Ctx(rng, BASE_TIME + index // EVENTS_PER_SECOND)
    rand = rng.random
    event: dict[str, Any] = {"event_type": event_type}
    for name, optional, gen in _plan(event_type):
        if optional and rand() >= optional_rate:
            continue
        event[name] = gen(ctx)
    return event


def _check_counts(count: int, invalid: int, oversize: int) -> None:
    if count < 0 or invalid < 0 or oversize < 0:
        raise ValueError(f"counts must be non-negative (count={count}, invalid={invalid}, oversize={oversize})")
    if invalid + oversize > count:
        raise ValueError(f"invalid + oversize ({invalid} + {oversize}) exceeds count ({count})")


@lru_cache(maxsize=64)
def _bad_plan(count: int, seed: int, invalid: int, oversize: int) -> dict[int, str]:
    """Line index -> 'oversize' or an INVALID_KINDS entry. Shared cached dict: do not mutate.

    Bad line j falls at a seeded offset inside the j-th of (invalid + oversize) equal strides of the corpus, so bad
    lines are spread over the whole corpus (one per stride) and computable without generating it.
    Oversize strides are spread among the invalid ones the same way; invalid lines rotate through INVALID_KINDS.
    """
    _check_counts(count, invalid, oversize)
    total = invalid + oversize
    rng = random.Random(f"bad:{seed}:{count}:{invalid}:{oversize}")
    plan: dict[int, str] = {}
    n_invalid = 0
    for j in range(total):
        lo, hi = j * count // total, (j + 1) * count // total
        position = lo + rng.randrange(hi - lo)
        if (j + 1) * oversize // total > j * oversize // total:
            plan[position] = "oversize"
        else:
            plan[position] = INVALID_KINDS[n_invalid % len(INVALID_KINDS)]
            n_invalid += 1
    return plan


def bad_line_kinds(count: int, seed: int = 0, invalid: int = 0, oversize: int = 0) -> dict[int, str]:
    """Line index (0-based, within the generated lines) -> 'invalid' | 'oversize' for that corpus's bad lines."""
    return {i: ("oversize" if kind == "oversize" else "invalid")
            for i, kind in _bad_plan(count, seed, invalid, oversize).items()}


@lru_cache(maxsize=1)
def _padding() -> str:
    text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. "
    return (text * (PADDING_CHARS // len(text) + 1))[:PADDING_CHARS]


def _line(seed: int, index: int, kind: str | None, optional_rate: float = OPTIONAL_RATE) -> bytes:
    """The bytes of one corpus line: the event, or the event damaged as `kind` says."""
    event = generate_event(seed, index, optional_rate)
    if kind is None:
        return orjson.dumps(event)
    if kind == "oversize":
        event["padding"] = _padding()
        return orjson.dumps(event)
    if kind == "not_json":
        line = orjson.dumps(event)
        return line[: len(line) // 2]  # truncated object: never valid JSON
    if kind == "json_array":
        return orjson.dumps([event])
    if kind == "missing_id":
        del event["id"]
        return orjson.dumps(event)
    if kind == "time_string":
        event["time"] = str(event["time"])
        return orjson.dumps(event)
    if kind == "non_utf8":
        return b"\xff\xfe" + orjson.dumps(event).decode().encode("utf-16-le")  # UTF-16 with BOM: 0xff is never UTF-8
    raise ValueError(f"unknown bad-line kind {kind!r}")


def _lines(plan: dict[int, str], seed: int, start: int, lo: int, hi: int,
           optional_rate: float = OPTIONAL_RATE) -> Iterator[bytes]:
    for k in range(lo, hi):
        yield _line(seed, start + k, plan.get(k), optional_rate)


def generate_lines(count: int, seed: int = 0, invalid: int = 0, oversize: int = 0,
                   start: int = 0, optional_rate: float = OPTIONAL_RATE) -> Iterator[bytes]:
    """`count` JSON lines (no trailing newline) of corpus `seed`, with bad lines where `bad_line_kinds` says.

    Line k is event `start + k`, so `start` continues a stream in a later batch (later ids and times); bad-line
    positions are relative to the lines yielded. Arguments are checked now, not at the first `next()`.
    """
    if start < 0:
        raise ValueError(f"start must be non-negative, got {start}")
    if not 0.0 <= optional_rate <= 1.0:
        raise ValueError(f"optional_rate must be between 0 and 1, got {optional_rate}")
    plan = _bad_plan(count, seed, invalid, oversize)
    return _lines(plan, seed, start, 0, count, optional_rate)


def _shard_lines(shard: int, count: int, seed: int, invalid: int, oversize: int, shards: int) -> Iterator[bytes]:
    """Shard `shard` of `shards`: one contiguous range of the corpus's line indices."""
    plan = _bad_plan(count, seed, invalid, oversize)
    return _lines(plan, seed, 0, shard * count // shards, (shard + 1) * count // shards)


class GenerateRecords(beam.PTransform):
    """PBegin -> PCollection[bytes]: the lines of `generate_lines(count, seed, invalid, oversize)`, in no order.

    Only the shard numbers are created at construction; the lines are generated on the workers (the Create is
    redistributed, so shards spread across workers), which keeps large corpora out of the pipeline graph.
    """

    def __init__(self, count: int, seed: int = 0, invalid: int = 0, oversize: int = 0, shards: int = 8) -> None:
        super().__init__()
        _check_counts(count, invalid, oversize)
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        self.count, self.seed, self.invalid, self.oversize, self.shards = count, seed, invalid, oversize, shards

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[bytes]:
        return (pbegin
                | "Shards" >> beam.Create(list(range(self.shards)))
                | "Generate" >> beam.FlatMap(_shard_lines, self.count, self.seed, self.invalid, self.oversize,
                                             self.shards).with_output_types(bytes))


# --- CLI -----------------------------------------------------------------------------------------------------------

def _write(out: BinaryIO, lines: Iterator[bytes]) -> int:
    n = 0
    for line in lines:
        out.write(line)
        out.write(b"\n")
        n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m transforms.generate`: write a corpus as JSON lines to --out or stdout."""
    parser = argparse.ArgumentParser(prog="python -m transforms.generate",
                                     description="Write deterministic synthetic Currents events as JSON lines.")
    parser.add_argument("--count", type=int, required=True, help="number of lines")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    parser.add_argument("--invalid", type=int, default=0, help="how many of the lines are malformed")
    parser.add_argument("--oversize", type=int, default=0, help="how many of the lines are > 900 KiB events")
    parser.add_argument("--start", type=int, default=0, help="index of the first event (continue a stream)")
    parser.add_argument("--optional-rate", type=float, default=OPTIONAL_RATE,
                        help=f"share of optional fields present (default {OPTIONAL_RATE}; 0.4 gives ~490 B events)")
    parser.add_argument("--out", help="output file (default: stdout)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        lines = generate_lines(args.count, args.seed, args.invalid, args.oversize, args.start, args.optional_rate)
    except ValueError as exc:
        parser.error(str(exc))
    if args.out:
        with open(args.out, "wb") as out:
            n = _write(out, lines)
        log.info("wrote %d lines to %s", n, args.out)
        return 0
    try:
        _write(sys.stdout.buffer, lines)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # e.g. `| head`: the reader has what it wanted; keep exit-time flush from failing too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
