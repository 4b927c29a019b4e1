"""What a member writes reaches operators' terminals through the CLI's tables (`jointbus
inbox` shows a sealed clue's title): a right-to-left override, a NUL or a zero-width mark
could rearrange or hide what the operator reads, and rich markup could restyle it."""

from __future__ import annotations

import pytest

from jointbus import ui


def test_a_members_control_and_bidi_characters_do_not_reach_the_operators_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ui.table("inbox", ["title"], [["付款\u202e单据\x00\u200b"], ["[bold red]伪造的告警[/]"]])
    shown = capsys.readouterr().out
    assert "\u202e" not in shown
    assert "\x00" not in shown
    assert "\u200b" not in shown
    assert "付款\\u202e单据\\x00\\u200b" in shown
    assert "[bold red]伪造的告警[/]" in shown  # shown as sent, not as a style


def test_honest_text_is_shown_as_it_is() -> None:
    assert ui.visible("向家坝灌区北总干渠 第3段") == "向家坝灌区北总干渠 第3段"
