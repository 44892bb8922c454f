"""The console in a real browser, on the real broker and worker.

Events that raise alerts go through the worker; the console (its own process)
shows them in the queue, the card shows the evidence with the customer's own
words (a ``<script>`` among them, shown as text) and the Hebrew summary, and a
click on "Retained" writes a feedback event that the worker applies: the
customer's episode closes, as the worker's look-up API says.  The queue and
the card are saved as screenshots (the README's, with
``CONSOLE_SCREENSHOTS=benchmarks/figures``).

Headless Chromium from Debian (``chromium`` and ``chromium-driver``, which
``make test`` installs): without them this test fails, it is never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream_app.kafka.broker import free_port
from stream_app.offline.harness import stop_process, worker_env

from .conftest import WAIT, Cluster, start_cluster

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
#: Where the screenshots go: the test's own directory, or with
#: CONSOLE_SCREENSHOTS=benchmarks/figures, the README's pictures.
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS"
TOKEN = "console-test-token"
#: The stories' first day (on a broker and worker of this module's own).
BASE = datetime(2034, 1, 1, tzinfo=UTC)
EVIL = "<script>document.title='pwned'</script> The router died again, third time!"
HEBREW = "הנתב שוב לא עובד, אני שוקל לעבור לחברה אחרת"


def ts(day: float) -> str:
    return (BASE + timedelta(days=day)).isoformat()


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}
                                 if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def until(what: str, check: Any, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


#: (customer, daily spend, complaints as (day, category, severity, text)).
STORIES: list[tuple[str, float, list[tuple[float, str, int, str | None]]]] = [
    ("console-1", 180.0, [(62.2, "technical_fault", 4, EVIL),
                          (63.1, "technical_fault", 5, HEBREW)]),
    ("console-2", 90.0, [(62.4, "billing", 4, "You charged me twice for March."),
                         (63.2, "billing", 5, "Refund me or I cancel. Your staff are useless.")]),
    ("console-3", 40.0, [(62.5, "delivery", 3, None), (63.3, "delivery", 4,
                                                       "Still waiting for the parcel.")]),
    ("console-4", 260.0, [(63.4, "service_quality", 5, "Nobody called me back.")]),
]


def produce_stories(cluster: Cluster) -> None:
    s = cluster.settings
    events: list[tuple[float, str, str, dict[str, Any]]] = []
    for cid, spend, complaints in STORIES:
        for day in range(0, 61, 6):
            events.append((day + 0.1, s.topic_purchases, cid,
                           {"event_id": f"{cid}-p{day}", "amount": spend, "channel": "store"}))
        if cid == "console-1":  # and then turns hostile: the risk climbs again
            events.append((66.3, s.topic_contacts, cid, {
                "event_id": f"{cid}-c1", "direction": "inbound", "channel": "phone",
                "text": "This is ridiculous, your staff are useless."}))
        for n, (day, category, severity, text) in enumerate(complaints):
            events.append((day, s.topic_complaints, cid, {
                "event_id": f"{cid}-k{n}", "category": category, "severity": severity,
                **({"text": text} if text else {})}))
    last = None
    for day, topic, cid, value in sorted(events, key=lambda e: e[0]):
        if last is not None and int(day) != int(last):
            cluster.flush()
        last = day
        cluster.send(topic, cid.encode(), {"customer_id": cid, "ts": ts(day), **value})
    cluster.flush()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A broker and worker of this module's own: its stories move the worker's
    partition clocks years ahead, which the shared worker's later stories
    would then find too late."""
    with start_cluster(tmp_path_factory.mktemp("console-cluster"), "churnwatch-console-it") as c:
        yield c


@pytest.fixture(scope="module")
def console(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("console") / "console.log"
    env = {**worker_env(cluster.settings), "CHURNWATCH_API_TOKEN": TOKEN}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream_app", "console", "--port", str(port),
             "--worker-url", f"http://127.0.0.1:{cluster.settings.web_port}"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        until("the console answers", lambda: get(f"{url}/health")[0] == 200)
        yield url
    finally:
        stop_process(proc)
        print(log.read_text(errors="replace")[-3000:])
    assert proc.returncode == 0, "the console did not stop cleanly on SIGTERM"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"the console's browser test needs {' and '.join(missing)}: install them "
                    "with `apt-get install chromium chromium-driver` (make test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="churnwatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--window-size=1366,860", "--lang=en-US"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def test_an_agent_works_an_alert_from_queue_to_outcome(
        cluster: Cluster, console: str, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    s = cluster.settings
    produce_stories(cluster)
    cluster.read_until(s.topic_alerts, lambda rs: {r["customer_id"] for r in rs} >= {
        cid for cid, _, _ in STORIES} and "HOSTILE_TONE" in {
        sig["code"] for r in rs if r["customer_id"] == "console-1" for sig in r["signals"]})
    wait = WebDriverWait(browser, WAIT)

    # Without the token: the sign-in form, nothing about customers.
    status, body = get(f"{console}/")
    assert status == 401 and b"console-1" not in body
    browser.get(f"{console}/")
    assert "console-1" not in browser.page_source
    browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)

    # The queue, live: the stories' alerts arrive as the console reads the topic.
    wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'tr[data-href="/customers/console-1"]')))
    rows = browser.find_elements(By.CSS_SELECTOR, "#rows tr[data-href]")
    mine = [r.get_attribute("data-href") for r in rows if "console-" in r.text]
    assert len(mine) == len(STORIES), mine
    # The keyboard: j moves down the queue, / goes to the search box.
    browser.find_element(By.TAG_NAME, "body").send_keys("j")
    assert browser.switch_to.active_element.get_attribute("data-href") == rows[0] \
        .get_attribute("data-href")
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shots / "console-queue.png"))
    browser.switch_to.active_element.send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "search"

    # Search by id opens the card.
    search = browser.find_element(By.ID, "search")
    search.clear()
    search.send_keys("console-1" + Keys.ENTER)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "p[dir=rtl][lang=he]")))
    assert browser.current_url.endswith("/customers/console-1")
    he = browser.find_element(By.CSS_SELECTOR, "p[dir=rtl][lang=he]")
    assert he.text.startswith("לקוח console-1")
    evidence = browser.find_element(By.CSS_SELECTOR, "ul.evidence").text
    assert "console-1-k0" in evidence and EVIL in evidence, evidence  # shown as text
    assert HEBREW in browser.find_element(By.ID, "card").text
    assert browser.title != "pwned" and browser.execute_script(
        "return document.querySelectorAll('main script').length") == 0
    assert "svg" in browser.find_element(By.CSS_SELECTOR, ".risk-panel").get_attribute(
        "innerHTML")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1366, min(1700, height + 140))
    browser.save_screenshot(str(shots / "console-card.png"))
    browser.set_window_size(1366, 860)

    # "Retained": a feedback event the worker applies; the episode closes.
    before = orjson.loads(get(f"http://127.0.0.1:{s.web_port}/customers/console-1")[1])
    assert before["episode"]["open"] is True
    browser.find_element(By.CSS_SELECTOR, 'button[value="retained"]').click()
    flash = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".flash")))
    assert "Recorded Retained" in flash.text and "leaves the queue" in flash.text

    def closed() -> bool:
        status, raw = get(f"http://127.0.0.1:{s.web_port}/customers/console-1")
        return status == 200 and orjson.loads(raw)["episode"]["open"] is False

    until("the worker closes the retained customer's episode", closed)
    feedback = cluster.read_until(s.topic_feedback, lambda rs: any(
        r["customer_id"] == "console-1" for r in rs))
    mine_fb = [r for r in feedback if r["customer_id"] == "console-1"]
    assert [r["outcome"] for r in mine_fb] == ["retained"]
    # The queue no longer lists the worked customer; the API says why.
    status, raw = get(f"{console}/alerts?status=closed&customer=console-1", TOKEN)
    assert status == 200 and [a["customer_id"] for a in orjson.loads(raw)["alerts"]] == [
        "console-1"]
    browser.get(f"{console}/")
    wait.until(ec.presence_of_element_located(
        (By.CSS_SELECTOR, 'tr[data-href="/customers/console-2"]')))
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-href="/customers/console-1"]')
    assert os.path.getsize(shots / "console-queue.png") > 10_000
