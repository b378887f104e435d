"""Every default number guardedllm uses, each with the reason for its value.

Config (``[defaults]``, routes) and per-call ``Policy`` values override these.
"""

from __future__ import annotations

# One deadline covers a whole call (every attempt, backoff and fallback). A minute lets a long
# completion finish on a slow model while still bounding how long a caller can hang.
DEADLINE_S = 60.0

# Attempts per deployment before falling back. Two absorbs a transient blip; more than that
# mostly multiplies load on an upstream that is already failing.
MAX_ATTEMPTS = 2

# Per-attempt HTTP timeout (connect, read, write, pool), further capped by what remains of the
# deadline. Long enough for a first token from a busy model, short enough to fall back in time.
TIMEOUT_S = 30.0

# Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff and Jitter"):
# sleep = uniform(0, min(cap, base * 2 ** (retry - 1))). Half a second clears most 5xx blips;
# the cap stops a long outage from parking callers in sleeps.
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0

# The largest response body read into memory. Real chat completions are kilobytes; a body past
# this is a misrouted download or a runaway server, and is refused with ResponseFormatError.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

# Output assumed by an estimate's expected cost when the caller gives no figure: a typical chat
# answer is a few hundred tokens; the actual cost, from the vendor's usage, replaces it.
EXPECTED_OUTPUT_TOKENS = 256

# Stand-in tokenizers (tiktoken for a Claude or Gemini model) miscount by a few percent either
# way; a 10 % margin keeps the context-window and cost guards on the safe side.
ESTIMATE_SAFETY_MARGIN = 0.10

# Weight of each new observation in a deployment's calibration factor (an EWMA): 0.2 settles
# within about ten calls yet one odd request cannot swing estimates much.
CALIBRATION_ALPHA = 0.2
