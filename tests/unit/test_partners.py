"""Partner modules (behaviour §2 and §5): URL, auth, envelope, limits and the event each partner receives."""
from __future__ import annotations

import base64
import urllib.error
import urllib.request
import uuid
from functools import lru_cache
from typing import Any, Optional

import orjson
import pytest

from sinks.http.partners import partner_for
from sinks.http.partners.amplitude import Amplitude, AmplitudeConnector
from sinks.http.partners.base import Partner
from sinks.http.partners.heap import Heap, HeapConnector
from sinks.http.partners.http import CurrentsHttp, HttpConnector
from sinks.http.partners.mixpanel import Mixpanel, MixpanelConnector, insert_id
from sinks.http.partners.mparticle import MParticle, MParticleConnector
from sinks.http.partners.names import display_name, parse_properties, prefixed, segment_name
from sinks.http.partners.segment import Segment, SegmentConnector
from sinks.storage.schemas import known_event_types
from tests.partner_standins import StandIn
from transforms.generate import generate_event

SECRETS = {"${TOKEN}": "tok-123", "${AMP_KEY}": 'amp"key', "${MP_TOKEN}": "proj-token", "${MP_SECRET}": "api-secret",
           "${SA_SECRET}": "sa-secret", "${WRITE_KEY}": "seg-write", "${MPK}": "mp-key", "${MPS}": "mp-secret"}


def resolve(ref: str) -> str:
    return SECRETS[ref]


def http(**fields: Any) -> CurrentsHttp:
    connector = HttpConnector(**{"id": "hook", "type": "http", "endpoint": "https://hooks.example.com/currents",
                                 **fields})
    return CurrentsHttp(connector, resolve)


def heap(**fields: Any) -> Heap:
    connector = HeapConnector(**{"id": "heap", "type": "heap", "endpoint": "https://heapanalytics.example/braze",
                                 **fields})
    return Heap(connector, resolve)


def amplitude(**fields: Any) -> Amplitude:
    return Amplitude(AmplitudeConnector(**{"id": "amp", "type": "amplitude", "api_key": "${AMP_KEY}", **fields}),
                     resolve)


def mixpanel(**fields: Any) -> Mixpanel:
    return Mixpanel(MixpanelConnector(**{"id": "mp", "type": "mixpanel", "project_token": "${MP_TOKEN}", **fields}),
                    resolve)


def segment(**fields: Any) -> Segment:
    return Segment(SegmentConnector(**{"id": "seg", "type": "segment", "write_key": "${WRITE_KEY}", **fields}),
                   resolve)


def mparticle(**fields: Any) -> MParticle:
    return MParticle(MParticleConnector(**{"id": "mpt", "type": "mparticle", "api_key": "${MPK}",
                                           "api_secret": "${MPS}", **fields}), resolve)


def basic(partner: Partner) -> str:
    scheme, _, value = partner.headers()["Authorization"].partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(value).decode()


def encoded(partner: Partner, event: dict[str, Any]) -> Any:
    raw = partner.encode_event(event)
    assert raw is not None
    return orjson.loads(raw)


def body(partner: Partner, *events: dict[str, Any]) -> Any:
    request = partner.request([e for e in map(partner.encode_event, events) if e is not None])
    assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
    return orjson.loads(request.body)


CUSTOM = {"event_type": "users.behaviors.CustomEvent", "id": "ce-1", "user_id": "braze-1", "external_user_id": "ext-1",
          "time": 1700000000, "timezone": "America/Chicago", "platform": "ios", "os_version": "17.4",
          "device_model": "iPhone15,2", "device_id": "dev-1", "name": "added_to_cart",
          "properties": '{"sku":"A1","qty":2}', "ad_id": "IDFA-1", "ad_id_type": "ios_idfa",
          "ad_tracking_enabled": True, "app_group_id": "ws-1", "app_id": None}
PURCHASE = {"event_type": "users.behaviors.Purchase", "id": "pu-1", "user_id": "braze-1", "external_user_id": "ext-1",
            "time": 1700000000, "platform": "android", "device_id": "dev-1", "product_id": "sku-9", "price": 9.99,
            "currency": "USD", "properties": '{"coupon":"X"}', "ad_id": "GAID-1", "ad_id_type": "google_ad_id"}
EMAIL_OPEN = {"event_type": "users.messages.email.Open", "id": "eo-1", "user_id": "braze-1",
              "external_user_id": "ext-1", "time": 1700000000, "timezone": "Europe/Paris", "campaign_id": "c-1",
              "email_address": "jane@example.com", "user_agent": "Mozilla", "dispatch_id": None}
ANONYMOUS = {**EMAIL_OPEN, "external_user_id": None}


# --- names ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("event_type, name", [
    ("users.messages.email.Open", "Email Open"),
    ("users.messages.pushnotification.Send", "Push Notification Send"),
    ("users.messages.inappmessage.Click", "In-App Message Click"),
    ("users.messages.sms.CarrierSend", "SMS Carrier Send"),
    ("users.messages.email.MarkAsSpam", "Email Mark As Spam"),
    ("users.behaviors.app.SessionStart", "Session Start"),
    ("users.behaviors.InstallAttribution", "Install Attribution"),
    ("users.campaigns.Conversion", "Campaign Conversion"),
    ("users.canvas.Entry", "Canvas Entry"),
    ("agentconsole.ToolInvocation", "Agent Console Tool Invocation"),
    ("users.messages.contentcard.Impression", "Content Card Impression"),
    ("users.messages.whatsapp.InboundReceive", "WhatsApp Inbound Receive"),
    ("users.messages.liveactivity.Send", "Live Activity Send"),
    ("users.messages.featureflag.Impression", "Feature Flag Impression"),
    ("users.messages.rcs.Read", "RCS Read"),
    ("users.messages.line.Click", "LINE Click"),
    ("users.messages.webhook.Failure", "Webhook Failure"),
    ("users.messages.banner.Dismiss", "Banner Dismiss"),
    ("users.messages.pushnotification.IosForeground", "Push Notification iOS Foreground"),
])
def test_display_name_is_title_case_with_channel_names(event_type: str, name: str) -> None:
    assert display_name(event_type) == name


def test_every_catalogue_type_has_a_readable_name() -> None:
    for event_type in known_event_types():
        name = display_name(event_type)
        assert name and "." not in name and name[0].isupper(), event_type


def test_segment_uses_its_own_names_and_falls_back_to_display_name() -> None:
    assert segment_name(EMAIL_OPEN) == "Email Opened"
    assert segment_name({"event_type": "users.messages.pushnotification.Send"}) == "Push Notification Sent"
    assert segment_name({"event_type": "users.behaviors.Purchase"}) == "Purchased"
    assert segment_name({"event_type": "users.behaviors.app.SessionStart"}) == "Session Started"
    assert segment_name({"event_type": "users.messages.rcs.Read"}) == "RCS Read"


def test_properties_json_string_becomes_a_dict() -> None:
    assert parse_properties('{"a": 1, "b": {"c": true}}') == {"a": 1, "b": {"c": True}}
    assert parse_properties(None) == {} and parse_properties("null") == {}


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", "42", '"text"'])
def test_properties_that_are_not_a_json_object_are_kept_as_the_string(bad: str) -> None:
    assert parse_properties(bad) == {"_raw": bad}


def test_prefixing_custom_and_purchase_properties() -> None:
    assert prefixed({"k": 1}, "[Custom event property] ") == {"[Custom event property] k": 1}


# --- registry ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("connector, cls", [
    (HttpConnector(id="h", type="http", endpoint="https://x.example"), CurrentsHttp),
    (HeapConnector(id="hp", type="heap", endpoint="https://x.example"), Heap),
    (AmplitudeConnector(id="a", type="amplitude", api_key="k"), Amplitude),
    (MixpanelConnector(id="m", type="mixpanel", project_token="t"), Mixpanel),
    (SegmentConnector(id="s", type="segment", write_key="w"), Segment),
    (MParticleConnector(id="p", type="mparticle", api_key="k", api_secret="s"), MParticle),
])
def test_partner_for_returns_the_module_of_the_connector_type(connector: Any, cls: type) -> None:
    assert type(partner_for(connector)) is cls


# --- Custom HTTP ---------------------------------------------------------------------------------------------------

def test_http_posts_to_the_connector_endpoint() -> None:
    assert http().url == "https://hooks.example.com/currents"


def test_http_headers_carry_the_version_and_the_resolved_bearer_token() -> None:
    assert http(token="${TOKEN}").headers() == {"Braze-Currents-Version": "1", "Authorization": "Bearer tok-123"}


def test_http_without_token_sends_no_authorization() -> None:
    assert http().headers() == {"Braze-Currents-Version": "1"}


def test_http_body_is_an_events_object() -> None:
    assert [e["id"] for e in body(http(), EMAIL_OPEN, CUSTOM)["events"]] == ["eo-1", "ce-1"]


def test_http_event_splits_user_from_properties_and_omits_nulls() -> None:
    event = encoded(http(), EMAIL_OPEN)
    assert list(event) == ["event_type", "id", "time", "user", "properties"]
    assert event["event_type"] == "users.messages.email.Open" and event["id"] == "eo-1"
    assert event["time"] == 1700000000
    assert event["user"] == {"user_id": "braze-1", "external_user_id": "ext-1", "timezone": "Europe/Paris"}
    assert event["properties"] == {"campaign_id": "c-1", "email_address": "jane@example.com", "user_agent": "Mozilla"}


def test_http_custom_event_properties_become_the_custom_properties_object() -> None:
    properties = encoded(http(), CUSTOM)["properties"]
    assert properties["custom_properties"] == {"sku": "A1", "qty": 2}
    assert "properties" not in properties and properties["name"] == "added_to_cart"


def test_http_purchase_properties_become_the_purchase_properties_object() -> None:
    properties = encoded(http(), PURCHASE)["properties"]
    assert properties["purchase_properties"] == {"coupon": "X"}
    assert (properties["product_id"], properties["price"], properties["currency"]) == ("sku-9", 9.99, "USD")


def test_http_custom_event_with_bad_json_properties_is_still_sent() -> None:
    properties = encoded(http(), {**CUSTOM, "properties": "{oops"})["properties"]
    assert properties["custom_properties"] == {"_raw": "{oops"}


def test_http_drops_deprecated_fields_and_the_step_variation_id() -> None:
    event = {"event_type": "users.behaviors.app.FirstSession", "id": "fs-1", "user_id": "b", "time": 1, "gender": "F",
             "country": "US", "language": "en", "sdk_version": "1.0", "resolution": "1x1", "carrier": "c",
             "canvas_step_message_variation_id": "v", "session_id": "s"}
    assert encoded(http(), event)["properties"] == {"session_id": "s"}


def test_http_profile_update_keeps_the_profile_values_named_like_deprecated_fields() -> None:
    event = {"event_type": "users.profile.Update", "id": "p-1", "user_id": "b", "time": 1, "gender": "F",
             "country": "FR", "language": "fr", "update_source": "sdk"}
    assert encoded(http(), event)["properties"] == {"gender": "F", "country": "FR", "language": "fr",
                                                    "update_source": "sdk"}


def test_http_banner_events_send_the_step_variation_as_its_api_id() -> None:
    event = {"event_type": "users.messages.banner.Click", "id": "b-1", "user_id": "b", "time": 1,
             "canvas_step_message_variation_id": "v-1"}
    assert encoded(http(), event)["properties"] == {"canvas_step_message_variation_api_id": "v-1"}


def test_http_agent_console_events_send_an_empty_user() -> None:
    event = {"event_type": "agentconsole.AgentExecuted", "id": "ag-1", "time": 1700000000123, "user_id": "b",
             "external_user_id": "e", "agent_name": "Copy Assistant"}
    out = encoded(http(), event)
    assert out["user"] == {}
    assert out["properties"] == {"user_id": "b", "external_user_id": "e", "agent_name": "Copy Assistant"}


def test_http_skips_no_event() -> None:
    assert encoded(http(), ANONYMOUS)["user"] == {"user_id": "braze-1", "timezone": "Europe/Paris"}


def test_http_probe_is_an_empty_batch_with_auth() -> None:
    probe = http(token="${TOKEN}").probe()
    assert probe is not None and orjson.loads(probe.body) == {"events": []} and probe.events == 0
    assert probe.headers["Authorization"] == "Bearer tok-123" and probe.headers["Braze-Currents-Version"] == "1"


def test_http_limits() -> None:
    assert (CurrentsHttp.limits.max_events, CurrentsHttp.limits.max_request_bytes,
            CurrentsHttp.limits.max_event_bytes) == (100, 10 * 1024 * 1024, 1024 * 1024)


# --- Heap ----------------------------------------------------------------------------------------------------------

def test_heap_speaks_the_custom_export_protocol_to_its_webhook() -> None:
    partner = heap(token="${TOKEN}")
    assert Heap.type == "heap" and partner.url == "https://heapanalytics.example/braze"
    assert encoded(partner, EMAIL_OPEN) == encoded(http(), EMAIL_OPEN)
    probe = partner.probe()
    assert probe is not None and orjson.loads(probe.body) == {"events": []}
    assert probe.headers["Authorization"] == "Bearer tok-123"


# --- Amplitude -----------------------------------------------------------------------------------------------------

def test_amplitude_urls_by_region_and_override() -> None:
    assert amplitude().url == "https://api2.amplitude.com/2/httpapi"
    assert amplitude(region="eu").url == "https://api.eu.amplitude.com/2/httpapi"
    assert amplitude(region="eu", endpoint="https://proxy.example/amp").url == "https://proxy.example/amp"


def test_amplitude_sends_the_resolved_key_json_escaped_in_the_body() -> None:
    partner = amplitude()
    assert "Authorization" not in partner.request([]).headers
    parsed = body(partner, CUSTOM)
    assert parsed["api_key"] == 'amp"key' and len(parsed["events"]) == 1


def test_amplitude_custom_event_is_named_and_its_properties_prefixed() -> None:
    event = encoded(amplitude(), CUSTOM)
    assert event["event_type"] == "[Braze Custom Event] added_to_cart"
    assert (event["user_id"], event["device_id"], event["insert_id"]) == ("ext-1", "dev-1", "ce-1")
    assert event["library"] == "Braze"
    assert (event["platform"], event["os_version"], event["device_model"]) == ("ios", "17.4", "iPhone15,2")
    assert event["idfa"] == "IDFA-1" and "adid" not in event
    props = event["event_properties"]
    assert props["[Custom event property] sku"] == "A1" and props["[Custom event property] qty"] == 2
    assert props["app_group_id"] == "ws-1" and "app_id" not in props and "properties" not in props


def test_amplitude_time_is_in_milliseconds() -> None:
    assert encoded(amplitude(), CUSTOM)["time"] == 1700000000000
    assert encoded(amplitude(), {**CUSTOM, "time_ms": 1700000000123})["time"] == 1700000000123


def test_amplitude_purchase_adds_top_level_revenue_fields() -> None:
    event = encoded(amplitude(), PURCHASE)
    assert (event["price"], event["productId"], event["currency"]) == (9.99, "sku-9", "USD")
    assert event["adid"] == "GAID-1" and event["event_type"] == "Purchase"
    assert event["event_properties"]["[Purchase property] coupon"] == "X"


def test_amplitude_email_open() -> None:
    event = encoded(amplitude(), EMAIL_OPEN)
    assert event["event_type"] == "Email Open" and "device_id" not in event
    assert event["event_properties"]["email_address"] == "jane@example.com"


def test_amplitude_sends_anonymous_users_with_a_device_and_skips_the_rest() -> None:
    assert encoded(amplitude(), {**CUSTOM, "external_user_id": None})["device_id"] == "dev-1"
    assert amplitude().encode_event(ANONYMOUS) is None


def test_amplitude_treats_ids_shorter_than_five_characters_as_absent() -> None:
    event = encoded(amplitude(), {**CUSTOM, "external_user_id": "42"})
    assert "user_id" not in event and event["device_id"] == "dev-1"
    assert amplitude().encode_event({**CUSTOM, "external_user_id": "42", "device_id": "d1"}) is None


def test_amplitude_limits() -> None:
    assert (Amplitude.limits.max_events, Amplitude.limits.max_request_bytes,
            Amplitude.limits.max_event_bytes) == (2000, 999_999, 999_999)  # strictly < 1 MB


# --- Mixpanel ------------------------------------------------------------------------------------------------------

def test_mixpanel_urls_by_region_project_and_override() -> None:
    assert mixpanel().url == "https://api.mixpanel.com/import?strict=1"
    assert mixpanel(region="eu").url == "https://api-eu.mixpanel.com/import?strict=1"
    assert mixpanel(region="in", project_id="42").url == "https://api-in.mixpanel.com/import?strict=1&project_id=42"
    assert mixpanel(endpoint="https://proxy.example/import?x=1", project_id="42").url == \
        "https://proxy.example/import?x=1&strict=1&project_id=42"
    assert mixpanel(endpoint="https://proxy.example/import?strict=0").url == "https://proxy.example/import?strict=0"


def test_mixpanel_auth_prefers_the_service_account() -> None:
    partner = mixpanel(api_secret="${MP_SECRET}", service_account_username="sa.user",
                       service_account_secret="${SA_SECRET}", project_id="42")
    assert basic(partner) == "sa.user:sa-secret"


def test_mixpanel_auth_falls_back_to_api_secret_then_project_token() -> None:
    assert basic(mixpanel(api_secret="${MP_SECRET}")) == "api-secret:"
    assert basic(mixpanel()) == "proj-token:"


def test_mixpanel_body_is_a_json_array() -> None:
    parsed = body(mixpanel(), CUSTOM, EMAIL_OPEN)
    assert [e["properties"]["$insert_id"] for e in parsed] == ["ce-1", "eo-1"]


def test_mixpanel_custom_event() -> None:
    event = encoded(mixpanel(), CUSTOM)
    assert event["event"] == "[Braze Custom Event] added_to_cart"
    props = event["properties"]
    assert (props["token"], props["distinct_id"], props["time"], props["$partner_id"]) == \
        ("proj-token", "ext-1", 1700000000, "braze")
    assert (props["$device"], props["$os"], props["platform"], props["device_id"]) == \
        ("iPhone15,2", "17.4", "ios", "dev-1")
    assert props["[Custom event property] sku"] == "A1" and "properties" not in props and "app_id" not in props


def test_mixpanel_purchase_and_email_open() -> None:
    purchase = encoded(mixpanel(), PURCHASE)
    assert purchase["event"] == "Purchase" and purchase["properties"]["[Purchase property] coupon"] == "X"
    assert purchase["properties"]["price"] == 9.99
    assert encoded(mixpanel(), EMAIL_OPEN)["event"] == "Email Open"


def test_mixpanel_skips_users_without_external_id() -> None:
    assert mixpanel().encode_event(ANONYMOUS) is None


@pytest.mark.parametrize("event_id", ["x" * 37, "id_with_underscore", "ünïcode", ""])
def test_mixpanel_insert_id_that_does_not_fit_becomes_a_stable_uuid5(event_id: str) -> None:
    value = encoded(mixpanel(), {**EMAIL_OPEN, "id": event_id})["properties"]["$insert_id"]
    assert value == insert_id(event_id) == str(uuid.UUID(value)) and value != event_id


def test_mixpanel_insert_id_that_fits_is_kept() -> None:
    assert insert_id("d9c60034-05b9-4840-b998-6673c3102977") == "d9c60034-05b9-4840-b998-6673c3102977"


def test_mixpanel_limits() -> None:
    assert (Mixpanel.limits.max_events, Mixpanel.limits.max_request_bytes,
            Mixpanel.limits.max_event_bytes) == (2000, 2 * 1024 * 1024, 999_999)  # event strictly < 1 MB


# --- Segment -------------------------------------------------------------------------------------------------------

def test_segment_urls_by_region_and_override() -> None:
    assert segment().url == "https://api.segment.io/v1/batch"
    assert segment(region="eu").url == "https://events.eu1.segmentapis.com/v1/batch"
    assert segment(endpoint="https://proxy.example/v1/batch").url == "https://proxy.example/v1/batch"


def test_segment_auth_is_the_write_key_as_basic_user() -> None:
    assert basic(segment()) == "seg-write:"


def test_segment_body_is_a_batch_object() -> None:
    assert [e["messageId"] for e in body(segment(), EMAIL_OPEN, PURCHASE)["batch"]] == ["eo-1", "pu-1"]


def test_segment_email_open_is_a_track_with_email_trait() -> None:
    event = encoded(segment(), EMAIL_OPEN)
    assert (event["type"], event["event"], event["userId"], event["anonymousId"]) == \
        ("track", "Email Opened", "ext-1", "braze-1")
    assert event["timestamp"] == "2023-11-14T22:13:20Z"
    assert event["context"] == {"traits": {"email": "jane@example.com"}}
    assert event["properties"] == {"timezone": "Europe/Paris", "campaign_id": "c-1", "user_agent": "Mozilla"}


def test_segment_timestamp_keeps_milliseconds_when_present() -> None:
    assert encoded(segment(), {**EMAIL_OPEN, "time_ms": 1700000000123})["timestamp"] == "2023-11-14T22:13:20.123Z"


def test_segment_custom_event_and_purchase() -> None:
    custom = encoded(segment(), CUSTOM)
    assert custom["event"] == "[Braze Custom Event] added_to_cart"
    assert custom["context"] == {"device": {"model": "iPhone15,2", "type": "ios"}}
    assert custom["properties"]["custom_properties"] == {"sku": "A1", "qty": 2}
    assert "device_model" not in custom["properties"] and "user_id" not in custom["properties"]
    purchase = encoded(segment(), PURCHASE)
    assert purchase["event"] == "Purchased" and purchase["properties"]["purchase_properties"] == {"coupon": "X"}
    assert purchase["context"] == {"device": {"type": "android"}}


def test_segment_skips_users_without_external_id() -> None:
    assert segment().encode_event(ANONYMOUS) is None


def test_segment_limits() -> None:
    assert (Segment.limits.max_events, Segment.limits.max_request_bytes,
            Segment.limits.max_event_bytes) == (1000, 500 * 1024, 32 * 1024)


# --- mParticle -----------------------------------------------------------------------------------------------------

def test_mparticle_urls_by_pod_and_override() -> None:
    assert mparticle().url == "https://s2s.mparticle.com/v2/bulkevents"
    assert mparticle(pod="eu1").url == "https://s2s.eu1.mparticle.com/v2/bulkevents"
    assert mparticle(pod="us2", endpoint="https://proxy.example/bulk").url == "https://proxy.example/bulk"


def test_mparticle_auth_is_key_and_secret() -> None:
    assert basic(mparticle()) == "mp-key:mp-secret"


def test_mparticle_body_is_an_array_of_batches() -> None:
    parsed = body(mparticle(environment="development"), EMAIL_OPEN, CUSTOM)
    assert [b["environment"] for b in parsed] == ["development", "development"]
    assert [b["events"][0]["data"]["source_message_id"] for b in parsed] == ["eo-1", "ce-1"]


def test_mparticle_email_open_batch() -> None:
    batch = encoded(mparticle(), EMAIL_OPEN)
    assert batch["schema_version"] == 2 and batch["environment"] == "production"
    assert batch["user_identities"] == {"customer_id": "ext-1", "email": "jane@example.com"}
    assert "user_attributes" not in batch
    [event] = batch["events"]
    assert event["event_type"] == "custom_event"
    data = event["data"]
    assert (data["event_name"], data["custom_event_type"], data["timestamp_unixtime_ms"]) == \
        ("Email Open", "other", 1700000000000)
    assert data["custom_attributes"] == {"user_id": "braze-1", "timezone": "Europe/Paris", "campaign_id": "c-1",
                                         "user_agent": "Mozilla", "source_request_id": "eo-1"}


def test_mparticle_custom_attributes_are_strings() -> None:
    attributes = encoded(mparticle(), CUSTOM)["events"][0]["data"]["custom_attributes"]
    assert attributes["ad_tracking_enabled"] == "true" and attributes["[Custom event property] qty"] == "2"
    assert all(isinstance(v, str) for v in attributes.values())
    assert encoded(mparticle(), CUSTOM)["events"][0]["data"]["event_name"] == "[Braze Custom Event] added_to_cart"
    assert encoded(mparticle(), PURCHASE)["events"][0]["data"]["custom_attributes"]["price"] == "9.99"


def test_mparticle_sms_events_set_mobile() -> None:
    event = {"event_type": "users.messages.sms.Delivery", "id": "s-1", "user_id": "b", "external_user_id": "e",
             "time": 1, "to_phone_number": "+15550000000", "from_phone_number": "+15551111111"}
    batch = encoded(mparticle(), event)
    assert batch["user_attributes"] == {"$mobile": "+15550000000"}
    assert batch["events"][0]["data"]["custom_attributes"]["from_phone_number"] == "+15551111111"


def test_mparticle_uninstall_is_an_uninstall_event() -> None:
    event = {"event_type": "users.behaviors.Uninstall", "id": "u-1", "user_id": "b", "external_user_id": "e",
             "time": 1, "app_id": "a"}
    [out] = encoded(mparticle(), event)["events"]
    assert out["event_type"] == "uninstall" and out["data"]["source_message_id"] == "u-1"


def test_mparticle_skips_users_without_external_id() -> None:
    assert mparticle().encode_event(ANONYMOUS) is None


def test_mparticle_limits() -> None:
    assert (MParticle.limits.max_events, MParticle.limits.max_request_bytes,
            MParticle.limits.max_event_bytes) == (100, 256 * 1024, 128 * 1024)


# --- identity rules shared by the id-keyed partners ------------------------------------------------------------------

@pytest.mark.parametrize("make", [mixpanel, segment, mparticle])
def test_a_redacted_external_id_is_not_a_user(make: Any) -> None:
    assert make().encode_event({**EMAIL_OPEN, "external_user_id": "[REDACTED]"}) is None


# --- every catalogue event type, every partner ---------------------------------------------------------------------

@lru_cache(maxsize=1)
def one_event_per_type() -> dict[str, dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    for i in range(5000):
        event = generate_event(7, i)
        events.setdefault(event["event_type"], event)
    return events


def test_the_sample_covers_the_catalogue() -> None:
    assert set(one_event_per_type()) == set(known_event_types())


@pytest.mark.parametrize("make", [http, heap, amplitude, mixpanel, segment, mparticle])
def test_every_event_type_encodes_to_valid_json_within_the_event_limit(make: Any) -> None:
    partner = make()
    encoded_events: list[bytes] = []
    for event_type, event in one_event_per_type().items():
        for variant in (event, {**event, "external_user_id": "ext-1"}):
            raw: Optional[bytes] = partner.encode_event(variant)
            if raw is None:
                continue
            assert isinstance(raw, bytes), event_type
            assert len(raw) <= partner.limits.max_event_bytes, event_type
            orjson.loads(raw)
            encoded_events.append(raw)
    assert encoded_events
    orjson.loads(partner.request(encoded_events).body)


STANDIN_PARTNERS = {
    "http": (lambda url: http(endpoint=url, token="${TOKEN}"), {"token": "tok-123"}),
    "heap": (lambda url: heap(endpoint=url, token="${TOKEN}"), {"token": "tok-123"}),
    "amplitude": (lambda url: amplitude(endpoint=url), {"api_key": 'amp"key'}),
    "mixpanel": (lambda url: mixpanel(endpoint=url), {"project_token": "proj-token"}),
    "segment": (lambda url: segment(endpoint=url), {"write_key": "seg-write"}),
    "mparticle": (lambda url: mparticle(endpoint=url), {"key": "mp-key", "secret": "mp-secret"}),
}


@pytest.mark.parametrize("kind", sorted(STANDIN_PARTNERS))
def test_requests_satisfy_an_independent_stand_in_of_the_partner(kind: str) -> None:
    """The stand-ins are written from the reference separately from these modules: a second reading of it."""
    make, credentials = STANDIN_PARTNERS[kind]
    with StandIn(kind, **credentials) as standin:
        partner = make(standin.url)
        events = [e for e in map(partner.encode_event, one_event_per_type().values()) if e is not None]
        requests = [partner.request(events[i:i + partner.limits.max_events])
                    for i in range(0, len(events), partner.limits.max_events)]
        probe = partner.probe()
        for request in requests + ([probe] if probe is not None else []):
            sent = urllib.request.Request(request.url, request.body, request.headers, method=request.method)
            try:
                with urllib.request.urlopen(sent, timeout=10) as answer:
                    assert 200 <= answer.status < 300
            except urllib.error.HTTPError as error:
                pytest.fail(f"{kind}: {error.code} {error.read()[:500]!r}")
        assert standin.violations == []
        assert len(standin.accepted) == len(events)
