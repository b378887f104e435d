"""The hostile-input fuzz suite: what guardedllm does when the upstream (or the config) is
broken on purpose.

Layout, mirroring the suite's:

- ``providers/``: every wire format's readers (``parse_response``, ``parse_error``,
  ``stream_decoder(...).feed`` / ``close``) and the SSE parser, against hostile bytes;
- ``client/``: whole calls through ``Client`` and ``AsyncClient`` (asyncio and trio) against
  ``HostileServer``, with spend budgets, rpm/tpm limits and a breaker on, and the guards' state
  read back after every call; memory per call;
- ``registry/``: configs written wrong, loaded and then called.

Helpers: ``_hostile`` (the loopback server that misbehaves on purpose), ``_wire`` (hostile
bodies and streams in each vendor's format, built from ``FakeProvider``'s replies),
``_answers`` (hostile HTTP answers around them), ``_checks`` (what a parsed answer must look
like), ``_rig`` (a fresh guarded client per call and the guard-state checks), ``_profiles``
(the hypothesis settings).

In CI (``python -m pytest``) every fuzz test runs a fixed, modest number of examples chosen
the same way on every run, and the whole suite takes well under a minute on 2 cores. For a long
local run, set the number of examples per test and lift pytest's per-test timeout::

    GUARDEDLLM_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz --timeout=0

A long run draws new examples each time and keeps failures in hypothesis's example database
(``.hypothesis/``, git-ignored), which replays them first on the next run.
"""
