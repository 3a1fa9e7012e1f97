"""Drives the sessions page in headless Chromium with Selenium, for tests/it/browser/.

Reads a plan on stdin, {"base": URL, "artifacts": DIR, "axe": PATH, "steps": [...]},
runs its steps in order in one browser, and prints one JSON answer per step (a list)
on stdout: what the page showed, never a verdict; the Rust test asserts. A step that
cannot be done (an element that never appears) answers {"failed": ...} and the run
goes on, so the test says which step failed.

Steps: headers(headers), open(path, width, height), signin(token), state, filter(fields), next, prev,
detail(id), kill(ids, query), pause, probe, axe, screenshot(name), console, and for the
session history window(seconds), timeline, pick(at: Unix ms, clicked on the chart),
live, story(id); and for
bench/bench.py first_rows(path, api, runs): the page's time to its first rows from a fresh
navigation, and the API call behind them fetched by the same browser, interleaved.
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20


def browser(width, height):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=%d,%d" % (width, height),
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(60)
    return driver


def refreshes(driver):
    value = driver.execute_script("return document.body.dataset.refreshes || '0'")
    return int(value)


def wait_refresh(driver, before):
    WebDriverWait(driver, WAIT).until(lambda d: refreshes(d) > before)


def texts(driver, css):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def tree(driver):
    """The blocking tree as nested {id, waiters} lists, read from the DOM."""
    return driver.execute_script(
        """
        const read = (li) => ({
          id: Number(li.dataset.id),
          text: li.querySelector(':scope > .node') ? li.querySelector(':scope > .node').textContent : li.textContent,
          waiters: [...li.querySelectorAll(':scope > ul > li')].filter((c) => c.dataset.id).map(read),
        });
        return [...document.querySelectorAll('#tree > li')].filter((li) => li.dataset.id).map(read);
        """
    )


def state(driver):
    rows = driver.execute_script(
        """
        return [...document.querySelectorAll('#rows tr.row')].map((tr) => {
          const c = [...tr.children].map((td) => td.textContent);
          return {id: Number(tr.dataset.id), user: c[2], db: c[3], host: c[4], command: c[5],
                  time: c[6], trx: c[7], lock: c[8], sql: c[9], checkbox: !!tr.querySelector('input')};
        });
        """
    )
    one = lambda css: driver.find_element(By.CSS_SELECTOR, css).text
    return {
        "total": one("#total"),
        "pageinfo": one("#pageinfo"),
        "rows": rows,
        "tree": tree(driver),
        "idle": [int(t) for t in texts(driver, "#idle tr td:first-child button")],
        "oldest": [int(t) for t in texts(driver, "#oldest tr td:first-child button")],
        "pileup_note": one("#pileup-note"),
        "deadlocks_note": one("#deadlocks-note"),
        "deadlocks": texts(driver, "#deadlocks > li"),
        "notice": driver.execute_script("return document.getElementById('notice').textContent"),
        "actions_shown": driver.find_element(By.ID, "actions").is_displayed(),
        "moment": driver.find_element(By.ID, "moment-text").text
        if driver.find_element(By.ID, "moment").is_displayed() else None,
        "url": driver.current_url,
        "next_enabled": driver.find_element(By.ID, "next").is_enabled(),
    }


def set_fields(driver, fields):
    form = driver.find_element(By.ID, "filters")
    for name, value in fields.items():
        field = form.find_element(By.NAME, name)
        kind = field.get_attribute("type")
        if kind == "checkbox":
            if field.is_selected() != bool(value):
                field.click()
        elif field.tag_name == "select":
            driver.execute_script("arguments[0].value = arguments[1]", field, str(value))
        else:
            field.clear()
            field.send_keys(str(value))
    before = refreshes(driver)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_refresh(driver, before)


def click_and_wait(driver, element_id):
    before = refreshes(driver)
    driver.find_element(By.ID, element_id).click()
    wait_refresh(driver, before)


def detail(driver, session_id):
    row = driver.find_element(By.CSS_SELECTOR, '#rows tr[data-id="%d"]' % session_id)
    row.click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.find_element(By.ID, "detail-sql").text or d.find_element(By.ID, "detail-error").text
    )
    fields = driver.execute_script(
        """
        const dl = document.getElementById('detail-fields');
        const out = {};
        for (const dt of dl.querySelectorAll('dt')) out[dt.textContent] = dt.nextElementSibling.textContent;
        return out;
        """
    )
    answer = {
        "sql": driver.execute_script("return document.getElementById('detail-sql').textContent"),
        "fields": fields,
        "error": driver.find_element(By.ID, "detail-error").text,
        "kill_shown": driver.find_element(By.ID, "detail-kill").is_displayed(),
    }
    driver.find_element(By.ID, "detail-close").click()
    return answer


def kill(driver, ids, query_only):
    for session_id in ids:
        box = driver.find_element(By.CSS_SELECTOR, '#rows tr[data-id="%d"] input[type=checkbox]' % session_id)
        if not box.is_selected():
            box.click()
    driver.find_element(By.ID, "kill-query-selected" if query_only else "kill-selected").click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is not None)
    answer = {
        "title": driver.find_element(By.ID, "confirm-title").text,
        "listed": texts(driver, "#confirm-list li"),
    }
    driver.find_element(By.ID, "confirm-yes").click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "confirm-result").text)
    result = driver.find_element(By.ID, "confirm-result")
    answer["result"] = result.text
    answer["class"] = result.get_attribute("class")
    before = refreshes(driver)
    driver.find_element(By.ID, "confirm-no").click()
    wait_refresh(driver, before)
    return answer


def timelines(driver):
    return int(driver.execute_script("return document.body.dataset.timelines || '0'"))


def timeline(driver):
    """The chart as drawn: its span, steps and series, and the legend."""
    WebDriverWait(driver, WAIT).until(lambda d: timelines(d) > 0)
    chart = driver.find_element(By.ID, "chart")
    return {
        "canvas": len(chart.find_elements(By.TAG_NAME, "canvas")),
        "from": float(chart.get_attribute("data-from")),
        "to": float(chart.get_attribute("data-to")),
        "steps": int(chart.get_attribute("data-steps")),
        "classes": [c for c in chart.get_attribute("data-classes").split(",") if c],
        "label": chart.get_attribute("aria-label"),
        "legend": texts(driver, "#legend li"),
        "top": texts(driver, "#top-statements tr"),
        "note": driver.find_element(By.ID, "timeline-note").text,
    }


def pick(driver, at):
    """Clicks the chart where its time axis puts `at` (Unix ms)."""
    chart = driver.find_element(By.ID, "chart")
    over = chart.find_element(By.CSS_SELECTOR, ".u-over")
    start, end = float(chart.get_attribute("data-from")), float(chart.get_attribute("data-to"))
    width = over.size["width"]
    x = (at - start) / (end - start) * width
    before = refreshes(driver)
    ActionChains(driver).move_to_element_with_offset(over, int(x - width / 2), 0).click().perform()
    wait_refresh(driver, before)
    return state(driver)


def story(driver, session_id):
    """A session's detail, with its history's rows."""
    driver.find_element(By.CSS_SELECTOR, '#tree li[data-id="%d"] button' % session_id).click()
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "detail-history").is_displayed())
    rows = driver.execute_script(
        """
        return [...document.querySelectorAll('#detail-story tr')].map((tr) =>
          [...tr.children].map((td) => td.textContent));
        """
    )
    answer = {
        "rows": rows,
        "when": driver.find_element(By.ID, "detail-history-when").text,
        "sql": driver.execute_script("return document.getElementById('detail-sql').textContent"),
        "kill_shown": driver.find_element(By.ID, "detail-kill").is_displayed(),
    }
    driver.find_element(By.ID, "detail-close").click()
    return answer


def probe(driver):
    """What an injected string would have made: a dialog, or elements of its own."""
    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
    except NoAlertPresentException:
        text = None
    counts = driver.execute_script(
        """
        return {
          injected: document.querySelectorAll('img, svg, iframe, object, embed, body script:not([src])').length,
          scripts: [...document.scripts].map((s) => s.getAttribute('src')),
          marker: window.__xss === undefined ? null : String(window.__xss),
        };
        """
    )
    counts["alert"] = text
    return counts


def axe(driver, path):
    with open(path, encoding="utf-8") as f:
        driver.execute_script(f.read())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then((r) => done(r.violations))"
        ".catch((e) => done({error: String(e)}));"
    )
    if isinstance(result, dict):
        return result
    return {
        "violations": [
            {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": len(v["nodes"]),
             "targets": [n["target"] for n in v["nodes"][:5]]}
            for v in result
        ]
    }


def run(plan):
    answers = []
    driver = None
    try:
        for step in plan["steps"]:
            what = step["do"]
            try:
                if what == "open":
                    if driver is None:
                        driver = browser(step.get("width", 1280), step.get("height", 800))
                    else:
                        driver.set_window_size(step.get("width", 1280), step.get("height", 800))
                    driver.get(plan["base"] + step["path"])
                    WebDriverWait(driver, WAIT).until(
                        lambda d: d.execute_script("return document.readyState") == "complete"
                    )
                    time.sleep(0.3)
                    answers.append({
                        "signin_shown": driver.find_element(By.ID, "signin").is_displayed(),
                        "content_shown": driver.find_element(By.ID, "content").is_displayed(),
                        "rows": len(driver.find_elements(By.CSS_SELECTOR, "#rows tr.row")),
                        "notice": driver.execute_script("return document.getElementById('notice').textContent"),
                    })
                elif what == "headers":
                    # Sent with every request, as a browser sends the basic auth it was
                    # given once (no dialog to type into headless).
                    if driver is None:
                        driver = browser(1280, 800)
                    driver.execute_cdp_cmd("Network.enable", {})
                    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": step["headers"]})
                    answers.append({})
                elif what == "signin":
                    before = refreshes(driver)
                    driver.find_element(By.ID, "token").send_keys(step["token"])
                    driver.find_element(By.CSS_SELECTOR, "#signin-form button").click()
                    try:
                        wait_refresh(driver, before)
                    except TimeoutException:
                        pass
                    answers.append({
                        "signin_shown": driver.find_element(By.ID, "signin").is_displayed(),
                        "content_shown": driver.find_element(By.ID, "content").is_displayed(),
                        "error": driver.find_element(By.ID, "signin-error").text,
                        "stored": driver.execute_script(
                            "return Object.keys(sessionStorage).length + Object.keys(localStorage).length"
                        ),
                        "url": driver.current_url,
                    })
                elif what == "state":
                    if step.get("wait"):
                        wait_refresh(driver, refreshes(driver))
                    answers.append(state(driver))
                elif what == "filter":
                    set_fields(driver, step["fields"])
                    answers.append(state(driver))
                elif what in ("next", "prev", "first"):
                    click_and_wait(driver, what)
                    answers.append(state(driver))
                elif what == "detail":
                    answers.append(detail(driver, step["id"]))
                elif what == "kill":
                    answers.append(kill(driver, step["ids"], step.get("query", False)))
                elif what == "pause":
                    driver.find_element(By.ID, "pause").click()
                    before = refreshes(driver)
                    time.sleep(step.get("seconds", 7))
                    answers.append({
                        "pressed": driver.find_element(By.ID, "pause").get_attribute("aria-pressed"),
                        "refreshed_while_paused": refreshes(driver) - before,
                    })
                    driver.find_element(By.ID, "pause").click()
                elif what == "window":
                    before = timelines(driver)
                    driver.find_element(By.CSS_SELECTOR, '#windows button[data-window="%d"]' % step["seconds"]).click()
                    WebDriverWait(driver, WAIT).until(lambda d: timelines(d) > before)
                    answers.append(timeline(driver))
                elif what == "timeline":
                    answers.append(timeline(driver))
                elif what == "pick":
                    answers.append(pick(driver, step["at"]))
                elif what == "live":
                    click_and_wait(driver, "live")
                    answers.append(state(driver))
                elif what == "story":
                    answers.append(story(driver, step["id"]))
                elif what == "probe":
                    answers.append(probe(driver))
                elif what == "axe":
                    answers.append(axe(driver, plan["axe"]))
                elif what == "screenshot":
                    path = os.path.join(plan["artifacts"], step["name"] + ".png")
                    driver.save_screenshot(path)
                    answers.append({"path": path})
                elif what == "first_rows":
                    if driver is None:
                        driver = browser(1280, 800)
                    page_ms, api_ms = [], []
                    for _ in range(step["runs"]):
                        driver.get(plan["base"] + step["path"])
                        WebDriverWait(driver, 120).until(
                            lambda d: d.execute_script("return document.body.dataset.firstRowsMs || ''")
                        )
                        page_ms.append(float(driver.execute_script("return document.body.dataset.firstRowsMs")))
                        api_ms.append(driver.execute_async_script(
                            "const done = arguments[arguments.length - 1]; const t0 = performance.now();"
                            "fetch(arguments[0], {headers: {'X-Requested-With': 'session_exporter'}})"
                            ".then((r) => r.json()).then(() => done(performance.now() - t0))"
                            ".catch((e) => done(-1));",
                            step["api"],
                        ))
                    answers.append({"page_ms": page_ms, "api_ms": api_ms})
                elif what == "console":
                    answers.append({"entries": driver.get_log("browser")})
                else:
                    answers.append({"failed": "unknown step " + what})
            except (WebDriverException, TimeoutException, KeyError, ValueError) as err:
                answers.append({"failed": "%s: %s" % (type(err).__name__, str(err).splitlines()[0] if str(err) else "")})
    finally:
        if driver is not None:
            driver.quit()
    return answers


if __name__ == "__main__":
    print(json.dumps(run(json.load(sys.stdin))))
