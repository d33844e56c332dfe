"""A screenshot of ``rnnkit serve``'s page over a trained run, in headless Chromium (the README's picture).

    python benchmarks/serve_screenshot.py runs/bench/mt_de_en --action /translate \
        --text "ein mann fährt mit dem fahrrad eine straße entlang ." --out docs/serve_translate.png

Starts ``rnnkit serve RUN --port 0`` as a user would, opens the page, picks the action, types the text, runs it,
waits for the answer and saves the window. Needs Selenium and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--action", default=None, help="an endpoint of the page, e.g. /translate (default: the first)")
    parser.add_argument("--text", default=None, help="what to type in the form's text box")
    parser.add_argument("--out", required=True)
    parser.add_argument("--size", default="1000,760")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "serve", args.run, "--port", "0"], stderr=subprocess.PIPE, text=True
    )
    try:
        line = server.stderr.readline()
        found = re.search(r"http://[\w.\[\]:]+:\d+", line)
        if not found:
            raise SystemExit(f"rnnkit serve did not start: {line.strip()}")
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={args.size}"):
            options.add_argument(arg)
        options.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(found.group(0) + "/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#go"))
            if args.action:
                driver.find_element(By.CSS_SELECTOR, f"nav button[data-path='{args.action}']").click()
            if args.text is not None:
                box = driver.find_element(By.CSS_SELECTOR, "#texts, #prime")
                box.clear()
                box.send_keys(args.text)
            driver.find_element(By.CSS_SELECTOR, "#go").click()
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#output").text.strip())
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#go").is_enabled())
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(args.out)
            print(f"written {args.out}")
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
