"""The E-step of the DBN's closed-form EM (Chapelle and Zhang, WWW 2009, sec. 4), exact and
vectorised over sessions; a loop over the K ranks only.

Given the clicks, every rank up to the last click l was examined, no click before l satisfied the
user, and every skip before l was an unattractive examined document. Only the ranks after l are
uncertain. With Z_k = P(no click at k..K | E_k = 1), computed backwards as
  Z_k = (1 - a_k) (1 - gamma + gamma Z_{k+1}),   Z past the list = 1,
and, after l, alpha_k = P(E_k = 1, no click in l+1..k-1 | click at l) forwards
  alpha_{l+1} = gamma (1 - s_l)   (1 in a session without clicks, whose "l" is 0),
  alpha_{k+1} = alpha_k (1 - a_k) gamma,
the evidence after l is P_after = 1 - (1 - s_l) gamma (1 - Z_{l+1}) (Z_1 without clicks) and
  P(E_k = 1 | clicks) = alpha_k Z_k / P_after               for k > l
  P(A_k = 1 | clicks) = 1 if clicked; 0 for a skip before l; a_k (1 - P(E_k = 1 | clicks)) after l
  P(S_l = 1 | clicks) = s_l / P_after; 0 for the clicks before l
and the continuation gamma = P(E_{k+1} = 1 | E_k = 1, S_k = 0) has the expected counts, over ranks
k with a shown successor: 1 before l; P(S_l = 0, E_{l+1} = 1 | clicks) = (1 - s_l) gamma Z_{l+1} / P_after
against P(S_l = 0 | clicks) at l; alpha_k (1 - a_k) gamma Z_{k+1} / P_after against
P(E_k = 1 | clicks) after l."""

from __future__ import annotations

import numpy as np


def dbn_posteriors(a: np.ndarray, s: np.ndarray, gamma: float, click: np.ndarray, mask: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(P(A = 1 | clicks), P(S = 1 | clicks), continuation numerator, denominator), each [N, K]
    float64, zero on padding; `a`, `s` are the current per-slot attraction and satisfaction."""
    n, K = click.shape
    clicked = (click > 0) & mask
    a = np.where(mask, np.clip(a, 0.0, 1.0 - 1e-9), 0.0)
    rank = np.arange(K)[None, :]
    last = np.where(clicked.any(1), K - 1 - np.argmax(clicked[:, ::-1], axis=1), -1)[:, None]
    z = np.ones((n, K + 1))
    for k in range(K - 1, -1, -1):
        z[:, k] = np.where(mask[:, k], (1.0 - a[:, k]) * (1.0 - gamma + gamma * z[:, k + 1]), 1.0)
    s_last = np.take_along_axis(s, np.maximum(last, 0), axis=1)
    z_after = np.take_along_axis(z, last + 1, axis=1)
    has = last >= 0
    p_after = np.where(has, 1.0 - (1.0 - s_last) * gamma * (1.0 - z_after), z_after)
    after = rank > last
    alpha = np.zeros((n, K))
    start = np.where(has, gamma * (1.0 - s_last), 1.0)[:, 0]
    for k in range(K):
        carried = alpha[:, k - 1] * (1.0 - a[:, k - 1]) * gamma if k else 0.0
        alpha[:, k] = np.where(last[:, 0] + 1 == k, start, np.where(after[:, k], carried, 0.0))
    exam = np.where(after, alpha * z[:, :K] / p_after, 1.0)
    post_a = np.where(clicked, 1.0, np.where(after, a * (1.0 - exam), 0.0)) * mask
    at = rank == last
    post_s = np.where(at & clicked, s_last / p_after, 0.0)
    go_on = np.where(after, alpha * (1.0 - a), np.where(at, 1.0 - s_last, 0.0)) * gamma * z[:, 1:] / p_after
    num = np.where(rank < last, 1.0, go_on)
    den = np.where(rank < last, 1.0, np.where(at, 1.0 - post_s, exam))
    successor = np.concatenate([mask[:, 1:], np.zeros((n, 1), bool)], axis=1)
    return post_a, post_s, num * successor, den * successor
