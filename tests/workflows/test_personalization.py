"""Pure tests of personalization tags: finding, checking and rendering them."""

from __future__ import annotations

from datetime import date

import pytest

from workflows.personalization import (
    KNOWN_TAGS,
    contact_values,
    find_tags,
    render,
    suggest_tag,
    unknown_tags,
)

CONTACT = {
    "email": "ann@example.com",
    "first_name": "Ann",
    "last_name": "O'Neil",
    "phone": None,
    "fields": {"favorite color": "<red>", "plan-tier": "gold", "visits": 3.0, "vip": True},
}


def test_known_tags() -> None:
    assert {"FIRSTNAME", "UNSUBSCRIBELINK", "DEAL_VALUE", "ACCOUNT_NAME"} <= KNOWN_TAGS


def test_find_tags_in_order_without_duplicates() -> None:
    text = "Hi %FIRSTNAME% %LASTNAME%, %FIRSTNAME%! %FAVORITE_COLOR% 50% off %firstname%"
    assert find_tags(text) == ["FIRSTNAME", "LASTNAME", "FAVORITE_COLOR"]


def test_render_escapes_values_in_html_only() -> None:
    values = {"FIRSTNAME": '<b>Ann & "Bo"</b>', "LASTNAME": "O'Neil"}

    assert render("<p>%FIRSTNAME% %LASTNAME%</p>", values, html=True) == (
        "<p>&lt;b&gt;Ann &amp; &quot;Bo&quot;&lt;/b&gt; O&#x27;Neil</p>"
    )
    assert render("%FIRSTNAME% %LASTNAME%", values, html=False) == '<b>Ann & "Bo"</b> O\'Neil'


def test_render_is_a_single_pass() -> None:
    values = {"FIRSTNAME": "%EMAIL%", "EMAIL": "ann@example.com"}
    assert render("%FIRSTNAME% / %EMAIL%", values, html=False) == "%EMAIL% / ann@example.com"


def test_render_never_evaluates_values() -> None:
    values = {"FIRSTNAME": "{0.__class__} {EMAIL} %s"}
    assert render("Hi %FIRSTNAME%", values, html=False) == "Hi {0.__class__} {EMAIL} %s"
    assert render("{FIRSTNAME} %s %d", values, html=False) == "{FIRSTNAME} %s %d"


def test_unknown_tag_renders_empty() -> None:
    assert render("Hi %NOT_A_FIELD%!", {"FIRSTNAME": "Ann"}, html=True) == "Hi !"


def test_percent_signs_that_are_not_tags_are_kept() -> None:
    text = '<a href="https://x.test/caf%C3%A9">50% off</a> <td width="100%">'
    assert render(text, {}, html=True) == text
    assert unknown_tags(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi %firstname%", ["firstname"]),
        ("Hi %FIRST NAME%", ["FIRST NAME"]),
        ("Hi %First-Name% and %last name%", ["First-Name", "last name"]),
        ("Hi %FIRSTNAME% %CUSTOM_FIELD%", []),
        ("Get 20%off today and 30% more", []),
        ("caf%c3%a9 and %e2%80%99", []),
    ],
)
def test_malformed_tags_are_flagged_without_custom_fields(text: str, expected: list[str]) -> None:
    assert unknown_tags(text, None) == expected


def test_unknown_tags_with_custom_fields() -> None:
    text = "%FIRSTNAME% %FAVORITE_COLOR% %PLAN_TIER% %SHOE_SIZE% %lastname%"
    assert unknown_tags(text, ["favorite color", "plan-tier"]) == ["lastname", "SHOE_SIZE"]


def test_suggestions() -> None:
    assert suggest_tag("firstname") == "%FIRSTNAME%"
    assert suggest_tag("first name") == "%FIRSTNAME%"
    assert suggest_tag("Favorite-Color") == "%FAVORITE_COLOR%"


def test_contact_values() -> None:
    values = contact_values(
        CONTACT, today=date(2026, 11, 27), extra={"UNSUBSCRIBELINK": "https://x.test/u/1"}
    )

    assert values["FIRSTNAME"] == "Ann"
    assert values["LASTNAME"] == "O'Neil"
    assert values["FULLNAME"] == "Ann O'Neil"
    assert values["EMAIL"] == "ann@example.com"
    assert values["PHONE"] == ""
    assert values["TODAY"] == "2026-11-27"
    assert values["FAVORITE_COLOR"] == "<red>"
    assert values["PLAN_TIER"] == "gold"
    assert values["VISITS"] == "3"
    assert values["VIP"] == "true"
    assert values["UNSUBSCRIBELINK"] == "https://x.test/u/1"


def test_contact_values_standard_fields_win_and_blanks_are_empty() -> None:
    values = contact_values(
        {"email": "a@x.test", "first_name": None, "last_name": "Lee", "fields": {"email": "x"}},
        today=date(2026, 1, 1),
    )
    assert values["EMAIL"] == "a@x.test"
    assert values["FULLNAME"] == "Lee"
    assert contact_values({}, today=date(2026, 1, 1))["FULLNAME"] == ""


def test_render_with_contact_values() -> None:
    values = contact_values(CONTACT, today=date(2026, 11, 27))
    html = render("<p>Hi %FIRSTNAME%, you like %FAVORITE_COLOR%</p>", values, html=True)
    assert html == "<p>Hi Ann, you like &lt;red&gt;</p>"
