"""The web page of ``pipeline serve`` (``pipeline/serve/static/``) in a real browser: Debian's chromium,
headless, driven by Selenium, against the real server process on the small classifier, generator and reading
runs that the other service tests use.

Chromium and chromedriver are never downloaded: without ``/usr/bin/chromium`` and ``/usr/bin/chromedriver``
the tests fail and say what to install (``make browser``); ``PIPELINE_SKIP_BROWSER=1`` skips them instead.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
INSTALL = "`apt-get install -y chromium chromium-driver fonts-noto-cjk` (as root; `make browser` does it)"
TOKEN = "page-test-token-0123456789"  # the server runs with --token-file: the page must send it
MAX_TEXT_CHARS = 200  # the server's --max-text-chars: a longer text is refused with a 4xx
PROMPT = "今日は"
SENTENCE = "週末は嵐山で紅葉を見ました。"
READY_SECONDS = 240  # TensorFlow's import and the model's load, on a busy two-core machine
WAIT_SECONDS = 60  # for one answer of the server to reach the page


def missing_browser() -> str | None:
    """What to install when Debian's chromium or chromedriver is missing, else None."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if not missing:
        return None
    return (f"{' and '.join(missing)} not found: install Debian's browser with {INSTALL}, "
            "or set PIPELINE_SKIP_BROWSER=1 to skip the browser tests")


@pytest.fixture(scope="module")
def browser():
    """Headless chromium through chromedriver, both Debian's; None when they are missing (each test then fails in
    :func:`open_page`: FAILED with what to install, not an error of the fixture, and no server is started)."""
    if os.environ.get("PIPELINE_SKIP_BROWSER") == "1":
        pytest.skip("PIPELINE_SKIP_BROWSER=1")
    if missing_browser():
        yield None
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1000,1100", "--lang=ja"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="module")
def runs(classifier_folder, generator_folder, reading_folder):
    """The served runs by their service names (their folders' names): classifier, generator, reading."""
    from pipeline import load_run

    return {task: load_run(folder) for task, folder in
            (("classifier", classifier_folder), ("generator", generator_folder), ("reading", reading_folder))}


@pytest.fixture(scope="module")
def server(browser, runs, tmp_path_factory):
    """The base URL of ``pipeline serve --model <classifier> --model <generator> --model <reading> --port <free
    port> --token-file <file> --max-text-chars 200``, once /readyz answers 200."""
    if browser is None:
        yield None
        return
    folder = tmp_path_factory.mktemp("serve")
    token_file = folder / "token"
    token_file.write_text(TOKEN + "\n")
    port, log_path = free_port(), folder / "serve.log"
    models = [argument for run in runs.values() for argument in ("--model", str(run.folder))]
    command = [sys.executable, "-m", "pipeline", "serve", *models, "--port", str(port),
               "--token-file", str(token_file), "--max-text-chars", str(MAX_TEXT_CHARS)]
    url = f"http://127.0.0.1:{port}/"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPOSITORY)
    try:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"`pipeline serve` exited with {process.returncode}:\n{log_tail(log_path)}")
            try:
                with urllib.request.urlopen(url + "readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:  # not listening yet (URLError), or 503 while loading (HTTPError)
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"`pipeline serve` not ready after {READY_SECONDS} s:\n{log_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def post(url: str, body: dict, token: str | None = TOKEN) -> tuple[int, dict]:
    """(status, JSON answer) of a POST to the service, as the page sends it (without a token: no Authorization)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_until(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message)


def open_page(driver, url: str, token: str | None = TOKEN):
    """The page with ``token`` in sessionStorage (none if None), once the Classify tab (or, without the token,
    the error box) shows."""
    from selenium.webdriver.common.by import By

    if driver is None:
        pytest.fail(missing_browser(), pytrace=False)
    driver.get(url)
    if token is None:
        driver.execute_script("sessionStorage.clear()")
    else:
        driver.execute_script("sessionStorage.setItem('pipeline-token', arguments[0])", token)
    driver.refresh()
    shown = (lambda d: d.find_element(By.ID, "tab-classify").is_displayed()) if token else \
        (lambda d: error_box(d).is_displayed())
    wait_until(driver, shown, "no Classify tab" if token else "no error box without the token")


def error_box(driver):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "error")


def classify_in_page(driver, text: str | None = None):
    """Press Classify (after typing ``text`` when given); the first result card, once drawn."""
    from selenium.webdriver.common.by import By

    if text is not None:
        textarea = driver.find_element(By.ID, "classify-texts")
        textarea.clear()
        textarea.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "#classify-form button[type=submit]").click()
    return wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#classify-results .sentence"),
                      "no result card")[0]


def name(run) -> str:
    return run.folder.name


def test_token_field_unlocks_the_models_and_stays_for_the_session(browser, server, runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, server, token=None)
    status, answer = post(server + "v1/explain", {"model": name(runs["classifier"]), "texts": [SENTENCE]},
                          token=None)
    assert status == 401 and answer["error"]["message"] in error_box(browser).text
    assert not browser.find_element(By.ID, "tab-classify").is_displayed()

    browser.find_element(By.ID, "token").send_keys(TOKEN + Keys.ENTER)
    wait_until(browser, lambda d: d.find_element(By.ID, "tab-classify").is_displayed(), "no Classify tab")
    assert not error_box(browser).is_displayed()
    for task, select in (("classifier", "classify-model"), ("generator", "generate-model"), ("reading", "read-model")):
        models = [option.get_attribute("value")
                  for option in browser.find_elements(By.CSS_SELECTOR, f"#{select} option")]
        assert models == [name(runs[task])]  # each tab offers only the runs of its task
    for tab in ("tab-generate", "tab-read"):
        assert browser.find_element(By.ID, tab).is_displayed()

    browser.refresh()
    wait_until(browser, lambda d: d.find_element(By.ID, "tab-classify").is_displayed(), "token lost on reload")
    assert browser.find_element(By.ID, "token").get_attribute("value") == TOKEN


def test_classify_shows_the_label_a_bar_per_label_and_shaded_tokens(browser, server, runs, tmp_path):
    from selenium.webdriver.common.by import By

    small_run = runs["classifier"]
    open_page(browser, server)
    card = classify_in_page(browser, SENTENCE)
    expected = small_run.classify([SENTENCE])[0]
    assert card.find_element(By.CSS_SELECTOR, ".label").text == expected["label"]

    rows = card.find_elements(By.CSS_SELECTOR, ".bar-row")
    shown = {row.get_attribute("data-label"): float(row.get_attribute("data-probability")) for row in rows}
    assert shown.keys() == set(small_run.labels)
    for row in rows:
        label, probability = row.get_attribute("data-label"), expected["probabilities"][row.get_attribute("data-label")]
        assert shown[label] == pytest.approx(probability, abs=1e-4)
        assert row.find_element(By.CSS_SELECTOR, ".bar-label").text == label
        assert row.find_element(By.CSS_SELECTOR, ".bar-value").text == f"{probability:.3f}"
        bar, fill = row.find_element(By.CSS_SELECTOR, ".bar"), row.find_element(By.CSS_SELECTOR, ".fill")
        assert fill.size["width"] / bar.size["width"] == pytest.approx(probability, abs=0.02)

    explained = small_run.explain([SENTENCE])[0]
    tokens = card.find_elements(By.CSS_SELECTOR, ".token")
    assert [token.text for token in tokens] == [word for word, _ in explained["tokens"]]
    alphas = [float(token.value_of_css_property("background-color").rstrip(")").split(",")[3])
              for token in tokens]  # rgba(r, g, b, a)
    strongest = max(range(len(tokens)), key=lambda index: abs(explained["tokens"][index][1]))
    assert alphas[strongest] == pytest.approx(1.0) and all(0.0 <= alpha <= 1.0 for alpha in alphas)

    screenshot = tmp_path / "classify.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def test_the_button_is_disabled_while_a_request_runs(browser, server):
    from selenium.webdriver.common.by import By

    open_page(browser, server)
    button = browser.find_element(By.CSS_SELECTOR, "#classify-form button[type=submit]")
    assert browser.execute_script("arguments[0].click(); return arguments[0].disabled", button)
    wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#classify-results .sentence"), "no result")
    assert button.is_enabled()


def test_a_text_the_server_refuses_shows_its_message_in_the_page(browser, server, runs, tmp_path):
    from selenium.webdriver.common.by import By

    too_long = SENTENCE * (MAX_TEXT_CHARS // len(SENTENCE) + 1)
    status, answer = post(server + "v1/explain", {"model": name(runs["classifier"]), "texts": [too_long]})
    assert 400 <= status < 500, answer
    open_page(browser, server)
    browser.find_element(By.ID, "classify-texts").clear()
    browser.find_element(By.ID, "classify-texts").send_keys(too_long)
    browser.find_element(By.CSS_SELECTOR, "#classify-form button[type=submit]").click()
    wait_until(browser, lambda d: error_box(d).is_displayed(), "no error box")
    assert answer["error"]["message"] in error_box(browser).text
    assert not browser.find_elements(By.CSS_SELECTOR, "#classify-results .sentence")
    assert browser.find_element(By.CSS_SELECTOR, "#classify-form button[type=submit]").is_enabled()
    screenshot = tmp_path / "error.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def test_a_network_failure_shows_in_the_page(browser, server):
    from selenium.webdriver.common.by import By

    open_page(browser, server)
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        browser.find_element(By.CSS_SELECTOR, "#classify-form button[type=submit]").click()
        wait_until(browser, lambda d: error_box(d).is_displayed(), "no error box")
        assert "Cannot reach the server" in error_box(browser).text
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})


def open_tab(driver, tab: str):
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, f"tab-{tab}").click()
    wait_until(driver, lambda d: d.find_element(By.ID, f"panel-{tab}").is_displayed(), f"no {tab} panel")


def set_slider(driver, slider_id: str, value: float):
    """Move a range input as a user's drag does: set the value and fire ``input``, so its label updates."""
    from selenium.webdriver.common.by import By

    slider = driver.find_element(By.ID, slider_id)
    driver.execute_script("arguments[0].value = arguments[1];"
                          "arguments[0].dispatchEvent(new Event('input', {bubbles: true}))", slider, str(value))
    return driver.find_element(By.ID, f"{slider_id}-value").text


def test_generate_shows_the_samples_the_run_gives_for_the_shown_seed(browser, server, runs, tmp_path):
    from selenium.webdriver.common.by import By

    generator = runs["generator"]
    open_page(browser, server)
    open_tab(browser, "generate")
    assert not generator.conditioned
    assert not browser.find_element(By.ID, "generate-label").is_displayed()  # an unconditioned model: no label
    prompt = browser.find_element(By.ID, "generate-prompt")
    prompt.clear()
    prompt.send_keys(PROMPT)
    assert set_slider(browser, "generate-temperature", 0.7) == "0.7"
    assert set_slider(browser, "generate-top-p", 0.8) == "0.80"
    count = browser.find_element(By.ID, "generate-num")
    count.clear()
    count.send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "#generate-form button[type=submit]").click()
    samples = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#generate-results .sample"),
                         "no samples")
    note = browser.find_element(By.CSS_SELECTOR, "#generate-results .note").text
    seed = int(note.removeprefix("seed "))
    expected = generator.generate(PROMPT, num=2, seed=seed, temperature=0.7, top_p=0.8, max_tokens=40)
    assert [sample.text for sample in samples] == [sample["text"] for sample in expected]
    assert all(sample.text.startswith(PROMPT) for sample in samples)
    assert browser.save_screenshot(str(tmp_path / "generate.png"))


def test_read_shows_a_reading_per_line_and_a_server_error_in_the_page(browser, server, runs):
    from selenium.webdriver.common.by import By

    reading = runs["reading"]
    open_page(browser, server)
    open_tab(browser, "read")
    lines = ["東京で日本語を勉強しています。", "京都に行きました。"]
    texts = browser.find_element(By.ID, "read-texts")
    texts.clear()
    texts.send_keys("\n".join(lines))
    browser.find_element(By.CSS_SELECTOR, "#read-form button[type=submit]").click()
    cells = wait_until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#read-results td.reading"),
                       "no readings")
    expected = reading.read(lines)
    assert [cell.text for cell in cells] == [result["reading"] for result in expected]
    assert not error_box(browser).is_displayed()

    beam = browser.find_element(By.ID, "read-beam")  # the page allows up to 16; a server limit answers 4xx
    status, answer = post(server + "v1/read", {"model": name(reading), "texts": [lines[0]], "beam_size": 10_000})
    assert 400 <= status < 500, answer
    browser.execute_script("arguments[0].removeAttribute('max')", beam)
    beam.send_keys("10000")
    browser.find_element(By.CSS_SELECTOR, "#read-form button[type=submit]").click()
    wait_until(browser, lambda d: error_box(d).is_displayed(), "no error box")
    assert answer["error"]["message"] in error_box(browser).text
