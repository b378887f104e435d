"""The hostile-input fuzz suite: what guardedllm does when the upstream (or the config) is
broken on purpose.

Layout, mirroring the suite's:

- ``providers/``: every wire format's readers (``parse_response``, ``parse_error``,
  ``stream_decoder(...).feed`` / ``close``) and the SSE parser, against hostile bytes.

Helpers: ``_wire`` (hostile bodies and streams in each vendor's format, built from
``FakeProvider``'s replies), ``_checks`` (what a parsed answer must look like), ``_profiles``
(the hypothesis settings).

In CI (``python -m pytest``) every fuzz test runs a fixed, modest number of examples chosen
the same way on every run, and the whole suite takes well under a minute on 2 cores. For a long
local run, set the number of examples per test and lift pytest's per-test timeout::

    GUARDEDLLM_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz --timeout=0

A long run draws new examples each time and keeps failures in hypothesis's example database
(``.hypothesis/``, git-ignored), which replays them first on the next run.
"""
