"""The training loop, shared by every task: ``Trainer(task, train, valid, cfg, run_dir).fit()``.

``fit`` reads top to bottom: per batch, forward (carrying and detaching the recurrent state for truncated
BPTT), backward, clip and count, skip a non-finite step, step, log; per epoch, evaluate, schedule, keep
the best weights, checkpoint, stop early. The trainer does not know what it trains: the task's
``loss(batch, state)`` is all it calls. Stopping for ``max_steps``, ``max_minutes`` or a signal (Ctrl-C,
SIGTERM) saves a checkpoint at the exact position, and ``resume()`` continues from it bit for bit.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit import state as S
from rnnkit.errors import RnnkitError
from rnnkit.tasks.base import Task
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed as dist
from rnnkit.train.averaging import WeightAverage, triggered
from rnnkit.train.config import TrainConfig
from rnnkit.train.log import MetricsLog, Progress
from rnnkit.train.optim import make_optimizer, scheduled_lr, set_lr

_COUNTERS = ("step", "epoch", "position", "best", "bad_epochs", "plateau_scale", "plateau_wait", "tokens")


class Trainer:
    """Trains ``task`` on ``train`` (a sequence of batches, or an object with ``for_epoch(e)`` giving one)."""

    def __init__(self, task: Task, train: Any, valid: Sequence | None, cfg: TrainConfig, run_dir: Path) -> None:
        self.task, self.train_data, self.valid, self.cfg, self.run_dir = task, train, valid, cfg, Path(run_dir)
        self.rank, self.world = dist.rank_world()
        self.model = dist.wrap(_Loss(task))  # DDP must see the forward to synchronise gradients
        self.optimizer = make_optimizer(task.param_groups(), cfg)
        self.step = self.epoch = self.position = self.tokens = self.bad_epochs = self.plateau_wait = 0
        self.best, self.plateau_scale = math.inf, 1.0
        self.carry: Any = None
        self.resumed_step: int | None = None
        self.saved_step = 0
        self._signal: int | None = None
        self._window: dict[str, float] = {}
        self._bad_streak = 0
        self.average = WeightAverage(task)  # NT-ASGD (--asgd-nonmono): idle until triggered
        self.history: list[float] = []  # every validation's selection value, lower is better
        self.seconds_before, self._start = 0.0, time.monotonic()  # training time of earlier processes (resume)
        torch.manual_seed(cfg.seed + 7919 * self.rank)  # dropout streams: the same run after the same seed

    def fit(self) -> dict[str, Any]:
        cfg, main = self.cfg, self.rank == 0
        self.log = MetricsLog(self.run_dir, enabled=main, tensorboard=cfg.tensorboard, resume_step=self.resumed_step)
        self.progress, self._start = Progress(cfg.progress and main), time.monotonic()
        self._window = {"t0": self._start}
        with _Signals(self):
            try:
                while self.epoch < cfg.epochs:
                    batches = self._epoch_batches()
                    epoch_lr = scheduled_lr(cfg, self.epoch, self.plateau_scale)
                    set_lr(self.optimizer, epoch_lr)
                    self.progress.start(self.epoch, cfg.epochs, len(batches), self.position)
                    while self.position < len(batches):
                        if reason := self._stop_reason():
                            return self._finish(reason)
                        batch = batches[self.position]
                        if hasattr(batch, "lr_scale"):  # a chunk of random length: its own step size
                            set_lr(self.optimizer, epoch_lr * batch.lr_scale)
                        loss, count, state = self.model(batch, self.carry)  # 1. forward
                        (loss * self._loss_scale(count)).backward()  # 2. backward
                        ok, norm = self._clip_and_check(loss)  # 3. clip; skip a non-finite step
                        if ok:
                            self.optimizer.step()  # 4. step
                            if self.average.steps:
                                self.average.update()
                        self.optimizer.zero_grad(set_to_none=True)
                        self.carry = S.tree_map(Tensor.detach, state) if self.task.carries_state and ok else None
                        self.step, self.position = self.step + 1, self.position + 1
                        self._after_step(loss.item(), int(count), norm, ok)  # 5. log
                    if reason := self._end_epoch():  # 6. evaluate, schedule, best weights, checkpoint
                        return self._finish(reason)
                return self._finish("done")
            finally:
                self.progress.close()
                self.log.close()

    # -- helpers of the loop, in the order it calls them --------------------------------------------------

    def _epoch_batches(self) -> Sequence:
        data = self.train_data
        return data.for_epoch(self.epoch) if hasattr(data, "for_epoch") else data

    def _stop_reason(self) -> str | None:
        cfg = self.cfg
        if cfg.max_steps is not None and self.step >= cfg.max_steps:
            return f"reached --max-steps {cfg.max_steps}"
        late = cfg.max_minutes is not None and time.monotonic() - self._start > 60 * cfg.max_minutes
        flags = dist.all_reduce(torch.tensor([float(self._signal or 0), float(late)]), op="max")
        if flags[0]:
            return f"interrupted by {signal.Signals(int(flags[0])).name}"
        return f"reached --max-minutes {cfg.max_minutes}" if flags[1] else None

    def _loss_scale(self, count: Tensor) -> Tensor:
        """1 / (items in the global batch), times the world size that DDP's gradient mean divides by."""
        total = dist.all_reduce(count.detach().clone().float())
        return self.world / total.clamp(min=1)

    def _clip_and_check(self, loss: Tensor) -> tuple[bool, float]:
        """Clip the gradient; the step is good when the loss and the gradient are finite everywhere: when their
        norm is (a NaN or an infinity anywhere makes it so), which clipping computes anyway. Checking every
        gradient's entries instead took 9 ms a step of the PTB small model on an Intel Xeon (four passes over
        4.6 million numbers), a third of the trainer's time over a plain PyTorch loop."""
        cfg, params = self.cfg, [p for p in self.task.parameters() if p.grad is not None]
        norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm or math.inf))
        if cfg.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, cfg.clip_value)
        finite = math.isfinite(loss.item()) and math.isfinite(norm)
        bad = dist.all_reduce(torch.tensor(float(not finite)), op="max")
        if not bad:
            self._bad_streak = 0
            return True, norm
        self._bad_streak += 1
        self.progress.say(f"step {self.step + 1}: non-finite loss or gradient; the step is skipped")
        if self._bad_streak >= cfg.max_bad_steps:
            raise RnnkitError(
                f"stopped at step {self.step + 1} after {self._bad_streak} non-finite losses or gradients in a row; "
                f"{self._kept()}: lower --lr or set --clip-norm"
            )
        return False, norm

    def _kept(self) -> str:
        return f"the last checkpoint in {self.run_dir} (step {self.saved_step}) is intact"

    def _after_step(self, loss: float, count: int, norm: float, ok: bool) -> None:
        """Add the step to the logging window (the global batch's loss, a skipped step counting as none)."""
        if self.world > 1:
            loss, count = dist.all_reduce(torch.tensor([loss, float(count)], dtype=torch.float64)).tolist()
        w = self._window
        self.tokens += int(count)
        good = {"loss": loss, "count": count, "norm": norm} if ok else {"loss": 0.0, "count": 0, "norm": 0.0}
        for key, value in (good | {"n": 1, "ok": ok, "tokens": count}).items():
            w[key] = w.get(key, 0.0) + value
        w["clipped"] = w.get("clipped", 0) + (ok and self.cfg.clip_norm is not None and norm > self.cfg.clip_norm)
        mean, elapsed = w["loss"] / max(w["count"], 1), max(time.monotonic() - w["t0"], 1e-9)
        shown = {k: f"{v:.3g}" for k, v in self.task.metrics(mean).items()}
        self.progress.update(**shown, tok_s=f"{w['tokens'] / elapsed:.0f}")
        if self.step % self.cfg.log_every == 0:
            record = {"step": self.step, "epoch": self.epoch + 1} | self.task.metrics(mean)
            record |= {"lr": self.optimizer.param_groups[0]["lr"], "tok_s": w["tokens"] / elapsed}
            record |= {"grad_norm": w["norm"] / max(w["ok"], 1), "clipped_frac": w["clipped"] / w["n"]}
            self.log.write(record | {"skipped": int(w["n"] - w["ok"])})
            self._window = {"t0": time.monotonic()}

    def _end_epoch(self) -> str | None:
        """Evaluate; keep the best weights; reduce on plateau; checkpoint; say whether to stop early.

        Without validation data the last weights count as the best and nothing is scheduled on plateau.
        """
        if self.valid is None:
            record = {"step": self.step, "epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
            self.log.write(record | {"time_s": round(self.elapsed(), 1)})
            self._save_best()
            self.epoch, self.position, self.carry = self.epoch + 1, 0, None
            self.save()
            return None
        with self.average.swapped():  # NT-ASGD: the averaged weights are the ones validated and kept
            metrics = self.task.evaluate(self.valid)
        key, direction = self.task.selection
        value = metrics[key] if direction == "min" else -metrics[key]  # self.best: lower is better
        self.history.append(value)
        self._maybe_start_averaging()
        improved = value < self.best
        if improved:
            self.best, self.bad_epochs, self.plateau_wait = value, 0, 0
            self._save_best()
        else:
            self.bad_epochs += 1
            self.plateau_wait += 1
            if self.cfg.plateau_factor is not None and self.plateau_wait > self.cfg.plateau_patience:
                self.plateau_scale, self.plateau_wait = self.plateau_scale * self.cfg.plateau_factor, 0
        record = {"step": self.step, "epoch": self.epoch + 1, "lr": self.optimizer.param_groups[0]["lr"]}
        record["time_s"] = round(self.elapsed(), 1)  # for curves against wall time
        self.log.write(record | {f"valid_{k}": v for k, v in metrics.items()})
        if self.rank == 0:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "count")
            self.progress.say(f"epoch {self.epoch + 1}: valid {shown}{' (best)' if improved else ''}")
        self.epoch, self.position, self.carry = self.epoch + 1, 0, None
        self.save()
        if self.cfg.early_stop is not None and self.bad_epochs >= self.cfg.early_stop:
            return f"early stop: {self.bad_epochs} epochs without a better validation {self.task.selection[0]}"
        return None

    def _maybe_start_averaging(self) -> None:
        nonmono = self.cfg.asgd_nonmono
        if nonmono is not None and not self.average.steps and triggered(self.history, nonmono):
            self.average.start(self.step)
            self.progress.say(
                f"NT-ASGD: validation has not improved on the best before the last {nonmono} checks; "
                f"averaging the weights from step {self.step}"
            )

    def elapsed(self) -> float:
        """Seconds of training so far, earlier processes of a resumed run included."""
        return self.seconds_before + time.monotonic() - self._start

    def _finish(self, reason: str) -> dict[str, Any]:
        if reason != "done" and not reason.startswith("early stop"):  # those saved at the epoch's end
            self.save()
            if self.valid is None:
                self._save_best()
        return {"reason": reason, "step": self.step, "epoch": self.epoch, "best_valid_loss": self.best}

    # -- checkpoints ---------------------------------------------------------------------------------------

    def save(self, run_dir: Path | None = None) -> None:
        """Write a checkpoint of everything needed to continue exactly here (rank 0 writes), into the run
        folder or ``run_dir``. Weights that became NaN or infinite are never saved over a good checkpoint."""
        self._check_weights()
        tensors, meta = ckpt.optimizer_state(self.optimizer)
        for r, rng in enumerate(dist.all_gather(torch.get_rng_state())):
            tensors[f"rng.{r}"] = rng
        carry = S.tree_leaves(self.carry) if self.carry is not None else []
        for i, leaf in enumerate(carry):
            for r, part in enumerate(dist.all_gather(leaf)):
                tensors[f"carry.{r}.{i}"] = part
        average, average_meta = self.average.state()
        tensors |= average
        meta = {"optimizer": meta, "world": self.world, "carry": len(carry)} | {k: getattr(self, k) for k in _COUNTERS}
        meta |= {"average": average_meta, "history": self.history, "seconds": round(self.elapsed(), 3)}
        meta["best"] = None if math.isinf(self.best) else self.best  # JSON has no infinity
        if self.rank == 0:
            ckpt.save_checkpoint(run_dir or self.run_dir, self.task, tensors, meta)
        self.saved_step = self.step
        dist.barrier()

    def _save_best(self) -> None:
        self._check_weights()
        if self.rank == 0:
            with self.average.swapped():
                ckpt.save_weights(self.task, self.run_dir / "best.safetensors")

    def _check_weights(self) -> None:
        if not all(bool(p.isfinite().all()) for p in self.task.parameters()):
            raise RnnkitError(f"the weights became NaN or infinite at step {self.step}; {self._kept()}: lower --lr")

    def resume(self) -> None:
        """Continue from the run folder's checkpoint: weights, optimizer, RNG, counters, carried state."""
        tensors, meta = ckpt.load_checkpoint(self.run_dir, self.task)
        ckpt.check_trainer_state(self.run_dir, tensors, meta)
        if meta["world"] != self.world:
            raise RnnkitError(
                f"{self.run_dir} was trained with {meta['world']} processes and this run has {self.world}: "
                "resume with the same number for an exact continuation"
            )
        ckpt.load_optimizer_state(self.optimizer, tensors, meta["optimizer"])
        for group in self.optimizer.param_groups:  # options given on --resume apply (lr is set per epoch)
            group["weight_decay"] = self.cfg.weight_decay
            if "momentum" in group:
                group["momentum"] = self.cfg.momentum
        for key in _COUNTERS:
            setattr(self, key, meta[key])
        self.seconds_before = float(meta.get("seconds", 0.0))  # older checkpoints did not count it
        if "average" in meta:  # checkpoints from before NT-ASGD have neither
            self.average.load(tensors, meta["average"])
            self.history = list(meta["history"])
        self.best = math.inf if self.best is None else self.best
        if meta["carry"]:
            template = self._carry_template()
            leaves = [tensors[f"carry.{self.rank}.{i}"] for i in range(meta["carry"])]
            wanted = S.tree_leaves(template)
            if [t.shape for t in leaves] != [t.shape for t in wanted]:
                raise RnnkitError(f"the checkpoint's carried state does not fit this run: {ckpt._RESTART}")
            self.carry = S.tree_replace(template, [t.to(leaf.device) for t, leaf in zip(leaves, wanted, strict=True)])
        torch.set_rng_state(tensors[f"rng.{self.rank}"])  # last: nothing may draw a random number after it
        self.resumed_step = self.saved_step = self.step

    def _carry_template(self) -> Any:
        """A state of the right structure: one forward pass of the first batch, without gradients."""
        was_training = self.task.training
        self.task.eval()
        try:
            with torch.no_grad():
                return self.task.loss(self._epoch_batches()[0], None).state
        finally:
            self.task.train(was_training)


class _Loss(torch.nn.Module):
    """The task's loss as a forward pass, so DistributedDataParallel can wrap it."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any, state: Any) -> Any:
        return self.task.loss(batch, state)


class _Signals:
    """Ctrl-C and SIGTERM set a flag; the loop saves a checkpoint at the next step and stops."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer, self.previous = trainer, {}

    def __enter__(self) -> None:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread: leave the handlers alone
            self.previous = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.trainer._signal is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.trainer._signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
