"""Paper or live: the switch asks a guard (the phase system) before going live."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Mode = Literal["paper", "live"]

PAPER_BANNER = "PAPER TRADING — simulated orders, no real money at risk"
LIVE_BANNER = "LIVE TRADING — real orders, real money"


class LiveModeRefused(Exception):
    """Going live was refused; `reason` says by whom and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ModeSwitcher:
    """Holds the trading mode. `live_guard` returns a refusal reason, or None to allow."""

    def __init__(
        self,
        mode: Mode = "paper",
        *,
        live_guard: Callable[[], str | None] | None = None,
        on_change: Callable[[Mode], None] | None = None,
    ) -> None:
        if mode not in ("paper", "live"):
            raise ValueError(f"unknown mode {mode!r}")
        self.live_guard = live_guard
        self.on_change = on_change
        self.start_refusal: str | None = None
        if mode == "live":
            self.start_refusal = self.live_refusal()
            if self.start_refusal is not None:
                mode = "paper"  # configured live where live is refused: start safe, say why
        self._mode: Mode = mode

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def is_live(self) -> bool:
        return self._mode == "live"

    def live_refusal(self) -> str | None:
        return self.live_guard() if self.live_guard is not None else None

    def switch_to_live(self) -> None:
        reason = self.live_refusal()
        if reason is not None:
            raise LiveModeRefused(reason)
        self._set("live")

    def switch_to_paper(self) -> None:
        self._set("paper")

    def _set(self, mode: Mode) -> None:
        changed = mode != self._mode
        self._mode = mode
        if changed and self.on_change is not None:
            self.on_change(mode)

    def banner(self) -> str:
        return LIVE_BANNER if self.is_live else PAPER_BANNER
