"""Simplified DBN (Chapelle and Zhang, WWW 2009, sec. 5): the DBN with gamma = 1, so an
unsatisfied user always goes on."""

from __future__ import annotations

from ultr.click_models.models.dbn import DBN


class SDBN(DBN):
    key = "sdbn"
    paper = "Chapelle and Zhang, WWW 2009 (gamma = 1)"
    fixed_continuation = True
    # Its scan is faster than its loop for the fit at every batch size measured (1,024-8,192); the
    # simulator's blocks (10^5-10^6 sessions, forward only) are faster with the loop.
    chain_loop_from = 65536
    settings = {"eps_neg": 0.1, "eps_pos": 1.0, "sat_neg": 0.0, "sat_pos": 1.0, "attraction": None, "satisfaction": None}
