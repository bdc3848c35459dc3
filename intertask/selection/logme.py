"""LogME (You et al., ICML 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer Learning").

The log marginal likelihood ("evidence") of the labels under a Bayesian linear model on frozen
features, with the prior precision alpha and noise precision beta set by evidence maximisation
(MacKay's fixed-point updates). Classification is handled one-vs-rest: each class's 0/1 indicator
is a regression target, and LogME is the mean of the per-class evidences divided by n.

Model: y = F w + e, w ~ N(0, 1/alpha I_D), e ~ N(0, 1/beta I_n). With the SVD F = U S V^T
(sigma_i = s_i^2, x = U^T y) everything is a sum over the r = rank components:

    gamma = sum_i sigma_i / (sigma_i + alpha/beta)                 (effective number of parameters)
    m^T m = sum_i sigma_i x_i^2 / (sigma_i + alpha/beta)^2         (squared norm of the posterior mean)
    ||F m - y||^2 = sum_i x_i^2 / (1 + sigma_i beta/alpha)^2 + (||y||^2 - ||x||^2)
    alpha <- gamma / m^T m,   beta <- (n - gamma) / ||F m - y||^2
    log p(y) = D/2 log alpha + n/2 log beta - 1/2 log|alpha I + beta F^T F|
               - beta/2 ||F m - y||^2 - alpha/2 m^T m - n/2 log(2 pi)

where log|alpha I + beta F^T F| = sum_i log(alpha + beta sigma_i) + (D - r) log alpha.
"""

from __future__ import annotations

import math

import numpy as np


def _evidence(sigma: np.ndarray, x2: np.ndarray, res_x2: float, n: int, d: int, max_iter: int = 100, tol: float = 1e-3) -> float:
    alpha, beta = 1.0, 1.0
    r = len(sigma)
    for _ in range(max_iter):
        t = alpha / beta
        gamma = float((sigma / (sigma + t)).sum())
        m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
        res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_x2
        alpha = gamma / (m2 + 1e-5)
        beta = (n - gamma) / (res2 + 1e-5)
        if abs(alpha / beta - t) / t <= tol:
            break
    t = alpha / beta
    m2 = float((sigma * x2 / (t + sigma) ** 2).sum())
    res2 = float((x2 / (1 + sigma / t) ** 2).sum()) + res_x2
    logdet = float(np.log(alpha + beta * sigma).sum()) + (d - r) * math.log(alpha)
    evidence = d / 2 * math.log(alpha) + n / 2 * math.log(beta) - 0.5 * logdet - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * math.log(2 * math.pi)
    return evidence / n


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of integer class `labels` (n,) given `features` (n, D); higher = more transferable."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or y.shape != (f.shape[0],):
        raise ValueError(f"logme: features must be (n, D) and labels (n,), got {f.shape} and {y.shape}")
    n, d = f.shape
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError("logme: need at least two classes")
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > s.max() * 1e-10 if s.size else s > 0
    u, sigma = u[:, keep], s[keep] ** 2
    evidences = []
    for c in classes:
        target = (y == c).astype(np.float64)
        x = u.T @ target
        x2 = x**2
        res_x2 = max(float(target @ target - x2.sum()), 0.0)
        evidences.append(_evidence(sigma, x2, res_x2, n, d))
    return float(np.mean(evidences))
