"""What a run tells: a progress bar (tqdm) and the metrics log (JSON lines, optionally TensorBoard)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnkit.errors import RnnkitError
from rnnkit.io import write_atomically


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines past the checkpoint's step are dropped first."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.path, self.enabled, self.writer = run_dir / "metrics.jsonl", enabled, None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            kept = "".join(line + "\n" for line in text.splitlines() if _step_of(line) <= resume_step)
            write_atomically(
                self.path, lambda tmp: tmp.write_text(kept, encoding="utf-8")
            )  # replaces, never follows a link
        if tensorboard:
            self.writer = summary_writer()(str(run_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            group = "valid" if "valid_loss" in record else "train"
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{group}/{key}", value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """One tqdm bar per epoch, on the main process only."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def start(self, epoch: int, epochs: int, total: int, done: int) -> None:
        self.close()
        if self.enabled:
            desc = f"epoch {epoch + 1}/{epochs}"
            self.bar = tqdm(total=total, initial=done, desc=desc, unit="batch", dynamic_ncols=True, file=sys.stderr)

    def update(self, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def say(self, message: str) -> None:
        """A line that does not break the bar."""
        if self.enabled:
            tqdm.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (none if it is missing). A torn last line, what a crash leaves,
    is dropped as :class:`MetricsLog` drops it on resume; a bad line anywhere else is an error."""
    if not path.exists():
        return []
    records, lines = [], path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number < len(lines):
                raise RnnkitError(f"{path}:{number}: not a JSON line") from None
    return records


def summary_writer() -> Any:
    """TensorBoard's SummaryWriter class, or a one-line error saying how to install it (checked before a
    run is started, so a missing package never costs a run)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RnnkitError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter


def _step_of(line: str) -> float:
    """A metrics line's step; a torn line from a crash, or anything that is not a record, has none and is
    dropped on resume."""
    try:
        step = json.loads(line).get("step")
    except (ValueError, AttributeError, RecursionError):
        return math.inf
    return step if isinstance(step, (int, float)) and not isinstance(step, bool) else math.inf
