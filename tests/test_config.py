"""config.py: the study's settings, toml < env < flags."""

from __future__ import annotations

import pytest

from autoresearch.config import Config
from autoresearch.errors import ConfigError


def test_config_precedence_and_errors():
    cfg = Config.load({"baseline_runs": 5, "sigma": 3}, environ={"AUTORESEARCH_SIGMA": "1.5"}, sigma=None,
                      max_trials=7)
    assert (cfg.baseline_runs, cfg.sigma, cfg.max_trials) == (5, 1.5, 7)
    assert Config.load({}, environ={}, sigma=2.5).sigma == 2.5
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        Config.load({"bogus": 1}, environ={})
    with pytest.raises(ConfigError, match="not a valid int"):
        Config.load({"baseline_runs": "three"}, environ={})
    with pytest.raises(ConfigError, match="executor"):
        Config.load({}, environ={}, executor="slurm")
