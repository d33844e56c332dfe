"""The page ``rnnkit serve`` serves at ``/``, driven end to end in headless Chromium (Debian's chromium and
chromium-driver packages, through Selenium): every task's form, its answer drawn as the API gave it, errors shown.

Skipped, saying why, where the browser or Selenium is missing (CI installs both). With RNNKIT_SCREENSHOT=PATH the
tagger's screenshot is also written to PATH (how docs/serve_page.png, which the README shows, is made).
"""

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="the page tests drive Chromium with Selenium")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from rnnkit.serve.app import create_app  # noqa: E402
from rnnkit.serve.options import ServeOptions  # noqa: E402

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no chromium / chromedriver: apt-get install chromium chromium-driver", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,720"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, loaded, live_server):
    """``page("tag")``: the browser on the page of a live server over that task's tiny run."""
    servers = []

    def open_page(task: str, **options):
        server = live_server(create_app(loaded(task), ServeOptions(**options), task=task))
        url = server.__enter__()
        servers.append(server)
        browser.get(url + "/")
        wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#go"))
        return browser

    yield open_page
    for server in servers:
        server.__exit__(None, None, None)


def wait(driver, seconds: float = 20):
    return WebDriverWait(driver, seconds)


def fill(driver, selector: str, text: str) -> None:
    box = driver.find_element(By.CSS_SELECTOR, selector)
    box.clear()
    box.send_keys(text)


def run_and_wait(driver, selector: str):
    driver.find_element(By.CSS_SELECTOR, "#go").click()
    wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{selector}, .error"))
    errors = driver.find_elements(By.CSS_SELECTOR, ".error")
    assert not errors, errors[0].text
    return driver.find_elements(By.CSS_SELECTOR, selector)


def test_tags_are_coloured_over_the_words_and_the_screenshot_is_not_blank(page, loaded, tmp_path):
    driver = page("tag")
    assert "tag run" in driver.find_element(By.CSS_SELECTOR, "#info").text
    assert driver.find_element(By.CSS_SELECTOR, "nav button.active").text == "Tag"
    fill(driver, "#texts", "the movie was very good\na film")
    run_and_wait(driver, ".tagged .tok")
    spans = driver.find_elements(By.CSS_SELECTOR, ".tagged .tok")
    want = loaded("tag").predict([["the", "movie", "was", "very", "good"], ["a", "film"]])
    assert [s.get_attribute("data-tag") for s in spans] == want[0]["tags"] + want[1]["tags"]
    assert [s.text.split("\n")[0].split(" ")[0] for s in spans][:5] == ["the", "movie", "was", "very", "good"]
    png = driver.get_screenshot_as_png()
    assert_not_blank(png)
    if os.environ.get("RNNKIT_SCREENSHOT"):
        Path(os.environ["RNNKIT_SCREENSHOT"]).write_bytes(png)


def assert_not_blank(png: bytes) -> None:
    import matplotlib.image

    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]
    assert pixels.shape[0] > 300 and pixels.shape[1] > 600
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 50, "the screenshot is (nearly) one colour"
    assert pixels.std() > 0.05


def test_a_sample_streams_into_the_page_and_equals_the_apis(page, loaded):
    driver = page("lm")
    fill(driver, "#prime", "the ")
    fill(driver, "#length", "40")
    fill(driver, "#seed", "3")
    driver.find_element(By.CSS_SELECTOR, "#go").click()
    wait(driver).until(lambda d: "tokens" in d.find_element(By.CSS_SELECTOR, "#status").text)
    want = loaded("lm").sample("the ", length=40, temperature=0.8, seed=3)
    assert driver.find_element(By.CSS_SELECTOR, "#sample").text == want.strip()


def test_a_too_long_sample_shows_the_servers_message(page):
    driver = page("lm", max_length=50)
    fill(driver, "#length", "5000")
    driver.find_element(By.CSS_SELECTOR, "#go").click()
    alert = wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".error"))[0]
    assert alert.text.startswith("413:") and "--max-length" in alert.text


def test_scores_rank_the_sentences(page, loaded):
    driver = page("lm")
    driver.find_element(By.CSS_SELECTOR, "nav button[data-path='/score']").click()
    fill(driver, "#texts", "the movie\nvery film plot")
    rows = run_and_wait(driver, "#scores tr")[1:]
    want = loaded("lm").score(["the movie", "very film plot"])
    assert sorted(r.find_elements(By.TAG_NAME, "td")[1].text for r in rows) == sorted(w["text"] for w in want)
    assert {r.find_elements(By.TAG_NAME, "td")[0].text for r in rows} == {"1", "2"}


def test_a_classification_shows_the_label_and_the_attention(page, loaded):
    driver = page("classify")
    assert driver.find_element(By.CSS_SELECTOR, "nav button.active").text == "Classify"
    fill(driver, "#texts", "a very good film")
    label = run_and_wait(driver, ".label .predicted")[0].text
    assert label == loaded("classify").predict(["a very good film"])[0]["label"]
    assert len(driver.find_elements(By.CSS_SELECTOR, ".label .tok")) == 4  # attention pooling over the 4 words


def test_a_translation_shows_its_attention_heatmap(page, loaded):
    driver = page("translate")
    fill(driver, "#texts", "eht eivom")
    fill(driver, "#beam", "2")
    run_and_wait(driver, "#heatmap")
    source, target, weights = loaded("translate").attention("eht eivom", beam_size=2)
    heads = [th.text for th in driver.find_elements(By.CSS_SELECTOR, "#heatmap thead th")][1:]
    assert heads == source
    assert len(driver.find_elements(By.CSS_SELECTOR, "#heatmap tbody tr")) == len(target) == len(weights)
    best = loaded("translate").translate(["eht eivom"], beam_size=2)[0][0]["text"]
    assert driver.find_element(By.CSS_SELECTOR, ".translation .target").text == best


def test_an_uploaded_wav_is_transcribed(page, loaded, tone, tmp_path):
    import soundfile as sf

    path = tmp_path / "tone.wav"
    sf.write(path, tone(0.4, 300), 16000)
    driver = page("ctc")
    driver.find_element(By.CSS_SELECTOR, "#audio").send_keys(str(path))
    text = run_and_wait(driver, ".transcript")[0].text
    want = loaded("ctc").transcribe([tone(0.4, 300)])[0]["text"]
    assert text == (want or "(silence)")


def test_a_chorale_is_drawn_and_offered_as_midi(page):
    driver = page("music")
    fill(driver, "#steps", "8")
    run_and_wait(driver, "#roll")
    href = driver.find_element(By.CSS_SELECTOR, "#download").get_attribute("href")
    assert href.startswith("data:audio/midi;base64,TVRoZA")  # "MThd", a MIDI file's first bytes
    assert driver.find_element(By.CSS_SELECTOR, "#play").is_displayed()
