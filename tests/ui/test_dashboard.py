"""`jetstation ui` in Chromium, against a live nats-server: what a person
sees and does on each page."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from typing import Callable, List

from playwright.sync_api import Page, expect

from conftest import Dashboard, screenshot, wait_until
from jetstation import sync as jetstation

EMPLOYEE_V1 = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
    "required": ["id", "name"],
}
EMPLOYEE_V2 = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "department": {"type": "string"},
    },
    "required": ["id", "name"],
}


def api(dashboard: Dashboard, path: str, method: str = "GET", token: str = "") -> tuple:
    request = urllib.request.Request(dashboard.url + "api" + path, method=method, data=b"" if method == "POST" else None)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def dead_letter(client: jetstation.Client, station: str, group: str) -> jetstation.Consumer:
    """Sends one message that the group's handler gives up on; returns the
    group's consumer, still open."""
    with client.producer(station) as producer:
        producer.send(json.dumps({"id": "e-7", "name": "Ada"}), key="e-7")
    consumer = client.consumer(station, group)
    message = consumer.next(timeout=20)
    assert message is not None
    message.term("the payroll system refused employee e-7")
    wait_until(lambda: client.station(station).dead_letters == 1, "the dead letter")
    return consumer


def test_overview_lists_a_station_created_by_the_test(
    client: jetstation.Client, dashboards: Callable[..., Dashboard], page: Page
) -> None:
    client.register_schema("employee", "json_schema", json.dumps(EMPLOYEE_V1))
    client.register_schema("employee", "json_schema", json.dumps(EMPLOYEE_V2))
    client.create_station("employees", partitions=3, schema="employee")
    client.create_station("payroll-runs", partitions=2, compaction=True)
    with client.producer("employees") as producer:
        for i in range(300):
            producer.send(json.dumps({"id": f"e-{i % 40}", "name": f"Employee {i}"}), key=f"e-{i % 40}")
    dashboard = dashboards()
    page.goto(dashboard.url)
    row = page.locator('[data-station="employees"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text("300")
    expect(row).to_contain_text("healthy")
    expect(page.locator('[data-station="payroll-runs"]')).to_be_visible()
    expect(page.get_by_test_id("stations-count")).to_have_text("2")
    expect(row).to_contain_text("/s")  # the second live update brings the rates
    screenshot(page, "overview")

    # The schema page: its versions and the diff between them.
    page.locator('[data-station="employees"] a[href="#/schemas/employee"]').click()
    expect(page.get_by_test_id("diff")).to_contain_text('+    "department"')
    expect(page.locator(".chips")).to_contain_text("backward")
    expect(page.get_by_test_id("source")).to_contain_text('"department": {')
    screenshot(page, "schema")


def test_a_groups_lag_falls_to_zero_while_a_consumer_runs(
    client: jetstation.Client, dashboards: Callable[..., Dashboard], page: Page
) -> None:
    client.create_station("hires", partitions=2)
    consumer = client.consumer("hires", "payroll")
    with client.producer("hires") as producer:
        for i in range(200):
            producer.send(f"hire {i}", key=f"e-{i % 10}")
    dashboard = dashboards()
    page.goto(dashboard.url + "#/stations/hires")
    group = page.locator('[data-group="payroll"]')
    expect(group.get_by_test_id("group-lag")).to_have_text("200")

    handled: List[int] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            message = consumer.next(timeout=0.5)
            if message is not None:
                handled.append(message.sequence)
                message.ack()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        expect(group.get_by_test_id("group-lag")).to_have_text("0")
        expect(group).to_contain_text("caught up")
        assert len(handled) >= 200
        screenshot(page, "station")
    finally:
        stop.set()
        worker.join(10)
        consumer.close()


def test_replaying_a_dead_letter_from_its_page_delivers_it_again(
    client: jetstation.Client, dashboards: Callable[..., Dashboard], page: Page
) -> None:
    client.register_schema("employee", "json_schema", json.dumps(EMPLOYEE_V1))
    client.create_station("hires", schema="employee")
    consumer = dead_letter(client, "hires", "payroll")
    try:
        dashboard = dashboards()
        page.goto(dashboard.url + "#/stations/hires/dead-letters")
        row = page.locator("[data-sequence]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("the payroll system refused employee e-7")
        row.click()
        detail = page.get_by_test_id("dead-letter-detail")
        expect(detail).to_contain_text("decoded through the station's schema")
        expect(page.get_by_test_id("payload")).to_contain_text('"name": "Ada"')
        expect(detail).to_contain_text("e-7")
        screenshot(page, "dead-letters")

        page.get_by_test_id("replay").click()
        expect(page.get_by_test_id("action-status")).to_contain_text("Replayed dead letter")
        again = consumer.next(timeout=20)
        assert again is not None, "the replayed message never arrived"
        assert json.loads(again.payload) == {"id": "e-7", "name": "Ada"}
        assert again.key == "e-7"
        again.ack()
    finally:
        consumer.close()


def test_read_only_mode_hides_and_refuses_the_replay(
    client: jetstation.Client, dashboards: Callable[..., Dashboard], page: Page
) -> None:
    client.create_station("hires")
    dead_letter(client, "hires", "payroll").close()
    dashboard = dashboards("--read-only")
    page.goto(dashboard.url + "#/stations/hires/dead-letters")
    expect(page.locator("[data-sequence]")).to_have_count(1)
    expect(page.locator("#server")).to_contain_text("read-only")
    expect(page.get_by_test_id("replay")).to_have_count(0)
    expect(page.get_by_test_id("replay-all")).to_have_count(0)
    # The API refuses it too, so hiding the button is not the only guard.
    [letter] = client.dead_letters("hires")
    status, body = api(dashboard, f"/stations/hires/dead-letters/{letter.sequence}/replay", "POST")
    assert (status, body["kind"]) == (403, "read_only")
    assert client.station("hires").dead_letters == 1


def test_a_wrong_token_gets_a_login_error(
    client: jetstation.Client, dashboards: Callable[..., Dashboard], page: Page
) -> None:
    client.create_station("hires")
    dashboard = dashboards("--ui-token", "s3cret-token")
    page.goto(dashboard.url)
    page.locator("#token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Login failed: wrong token")
    expect(page.locator('[data-station="hires"]')).to_have_count(0)
    screenshot(page, "login")

    page.locator("#token").fill("s3cret-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator('[data-station="hires"]')).to_be_visible()

    # Scripts give the token as a bearer token; without it, nothing.
    assert api(dashboard, "/stations")[0] == 401
    assert api(dashboard, "/stations", token="wrong")[0] == 401
    status, body = api(dashboard, "/stations", token="s3cret-token")
    assert status == 200 and [s["name"] for s in body["stations"]] == ["hires"]
