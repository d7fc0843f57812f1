"""The pytest layer, the only one that imports pytest: options and hooks (hooks.py, the entry point),
the once-per-run session (session.py), parametrization (suite.py), verdicts and their Allure data."""
