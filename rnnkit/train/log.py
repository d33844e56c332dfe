"""What a run tells: a progress bar (tqdm) and the metrics log (JSON lines, optionally TensorBoard)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rnnkit.errors import RnnkitError


class MetricsLog:
    """Append-only ``metrics.jsonl``; on resume, lines past the checkpoint's step are dropped first."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, resume_step: int | None) -> None:
        self.path, self.enabled, self.writer = run_dir / "metrics.jsonl", enabled, None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise RnnkitError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

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


def _step_of(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except json.JSONDecodeError:
        return math.inf  # a torn last line from a crash: drop it
