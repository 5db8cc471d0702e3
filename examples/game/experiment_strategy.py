"""Pig: is "hold at 20" a better strategy than "hold at 10"?

Pig is a two-player dice race to 100 points. On your turn you roll a die as
often as you like, adding each roll to a turn total; when you stop ("hold") the
turn total is banked, but rolling a 1 ends the turn and wipes the turn total.
The classic rule of thumb is to hold once the turn total reaches 20 (it is
close to optimal, see Neller & Presser, "Optimal Play of the Dice Game Pig",
2004). A cautious player holds at 10. Against a fixed opponent who holds at 20,
does holding at 20 win more games than holding at 10?

Design
------
* One replicate is one game. The metric ``win`` is 1 when our player wins and
  0 when the opponent does; ``turns`` (our player's turns in the game) is
  recorded too, tagged with the winner, for later analysis.
* Common random numbers: every replicate deals each seat its own stream of
  dice from ``ctx.rng`` (seeded per replicate, the same in every condition).
  Baseline and treatment therefore play the *same* game against the *same*
  opponent rolls and only the player's decisions differ. The outcomes are
  paired by replicate, so the exact McNemar test compares them on the
  discordant games (won by one strategy and lost by the other).
* Who moves first alternates with the replicate index, so neither condition
  gets the first-mover advantage more often than the other.

Run it (about a second)::

    cd examples/game && pytest --crystallize

or, from the repository root, ``pytest --crystallize examples/game``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from pytest_crystallize import Treatment, data_source, hypothesis, pipeline_step

TARGET = 100  # points needed to win
OPPONENT_HOLD = 20  # the fixed opponent always holds at 20
PLAYER, OPPONENT = 0, 1


class Dice:
    """An endless stream of fair six-sided die rolls from one generator."""

    def __init__(self, rng: np.random.Generator, block: int = 128) -> None:
        self._rng = rng
        self._block = block
        self._rolls: list[int] = []

    def roll(self) -> int:
        if not self._rolls:
            # Draw in blocks (one numpy call per 128 rolls), then pop from the end.
            self._rolls = self._rng.integers(1, 7, size=self._block).tolist()[::-1]
        return self._rolls.pop()


@dataclass(frozen=True)
class Table:
    """What a game starts from: each seat's dice and who moves first."""

    dice: tuple[Dice, Dice]  # indexed by PLAYER / OPPONENT
    first: int


@dataclass(frozen=True)
class Game:
    """The outcome of one game."""

    winner: int
    turns: tuple[int, int]  # turns taken by PLAYER / OPPONENT
    scores: tuple[int, int]
    player_first: bool


@data_source
def table(ctx):
    """Deal a game: two independent dice streams spawned from the replicate's rng."""
    player_rng, opponent_rng = ctx.rng.spawn(2)
    return Table(dice=(Dice(player_rng), Dice(opponent_rng)), first=ctx.replicate % 2)


def take_turn(dice: Dice, banked: int, hold_at: int) -> int:
    """Play one turn holding at ``hold_at`` (or at the winning total); return the points banked."""
    turn_total = 0
    while True:
        roll = dice.roll()
        if roll == 1:
            return 0
        turn_total += roll
        if turn_total >= hold_at or banked + turn_total >= TARGET:
            return turn_total


@pipeline_step()
def play(table, ctx, hold_at=10):
    """Play one game of Pig; our player holds at ``hold_at`` (a treatment parameter)."""
    holds = (hold_at, OPPONENT_HOLD)
    scores = [0, 0]
    turns = [0, 0]
    seat = table.first
    while True:
        turns[seat] += 1
        scores[seat] += take_turn(table.dice[seat], scores[seat], holds[seat])
        if scores[seat] >= TARGET:
            return Game(
                winner=seat,
                turns=(turns[0], turns[1]),
                scores=(scores[0], scores[1]),
                player_first=table.first == PLAYER,
            )
        seat = 1 - seat


@pipeline_step()
def tally(game, ctx):
    """Record the 0/1 outcome and the game's length."""
    ctx.metrics.add("win", int(game.winner == PLAYER))
    winner = "player" if game.winner == PLAYER else "opponent"
    ctx.record("turns", game.turns[PLAYER], tags={"winner": winner, "player_first": game.player_first})
    return game


@pytest.mark.experiment(
    replicates=200,
    seed=2004,
    params={"hold_at": 10},
    treatments=[Treatment("hold_at_20", {"hold_at": 20})],
)
@hypothesis(metric="win", direction="maximize", test="mcnemar")
def experiment_hold_at_20(table, ctx):
    tally(play(table, ctx), ctx)
