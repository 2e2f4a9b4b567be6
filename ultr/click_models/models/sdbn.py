"""Simplified DBN (Chapelle and Zhang, WWW 2009, sec. 5): the DBN with gamma = 1, so an
unsatisfied user always goes on."""

from __future__ import annotations

from ultr.click_models.models.dbn import DBN


class SDBN(DBN):
    key = "sdbn"
    paper = "Chapelle and Zhang, WWW 2009 (gamma = 1)"
    fixed_continuation = True
    chain_loop_from = None  # its scan is faster than its loop at every batch size measured (1,024-8,192)
