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

# The longest duration any setting may give (a deadline, a timeout, a Retry-After cap): a day,
# far past any call a person or a service waits on. Sockets and event loops refuse waits past
# about 292 years (OverflowError), and a deadline of 1e300 s is a typo, not a wish.
MAX_SECONDS = 86_400.0

# Per-attempt HTTP timeout (connect, read, write, pool), further capped by what remains of the
# deadline. Long enough for a first token from a busy model, short enough to fall back in time.
TIMEOUT_S = 30.0

# Full-jitter exponential backoff (AWS architecture blog, "Exponential Backoff and Jitter"):
# sleep = uniform(0, min(cap, base * 2 ** (retry - 1))). Half a second clears most 5xx blips;
# the cap stops a long outage from parking callers in sleeps.
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 8.0

# The longest vendor Retry-After honoured. Every vendor's 429 is about a per-minute limit (rpm,
# tpm), which a minute refills whole, and the official SDKs stop honouring the header past a
# minute or two (openai-python: two minutes). A longer wait ("Retry-After: 999999", a date in
# year 9999, a confused gateway) would park a deployment for days: it is cut to this, counted
# and shown in health(); a vendor still limiting after it answers 429 again.
MAX_RETRY_AFTER_S = 60.0

# The largest response body read into memory. Real chat completions are kilobytes; a body past
# this is a misrouted download or a runaway server, and is refused with ResponseFormatError.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

# The largest token count one answer's usage may report: a hundred times the longest context
# window on sale (ten million tokens). A count past it, or a negative one, is no bill a vendor
# could send (an integer wrapped around, a corrupt proxy): the whole report is read as missing,
# and the call keeps the worst-case cost it reserved. Below it a call's cost stays within the
# spend ledger's exact range (guards.spend.MAX_BUDGET_USD) at up to $4,500 per million tokens.
MAX_USAGE_TOKENS = 1_000_000_000

# A stream carries at most this many chunks per output token it may produce (its max_tokens,
# else the deployment's max_output_tokens; per choice), plus STREAM_CHUNK_SLACK. A vendor sends
# at most one content chunk per token and a few of its own (role, finish, usage, one or two per
# tool call); four a token leaves room for a server that splits tokens up (a character at a
# time), the slack for many tool calls. A stream past it is endless or a flood, not an answer:
# it is cut with a typed error instead of filling memory with chunks.
STREAM_CHUNKS_PER_TOKEN = 4
STREAM_CHUNK_SLACK = 256

# A stream's body may be as large as a whole answer's (the client's max_response_bytes, by
# default MAX_RESPONSE_BYTES) or this many bytes per output token it may produce, whichever is
# larger. The fattest chunk events (Azure's, with content-filter results) are about 600 bytes
# for a token or more; a very long answer that needs more than MAX_RESPONSE_BYTES still fits.
STREAM_BYTES_PER_TOKEN = 1024

# A compressed body is decompressed at most this much at a time, so that a body refused for its
# size has held no more than that limit and one piece (a 64 KiB read of a gzip bomb is 64 MiB
# whole). The size of a network read: an encoded body reaches the parsers as a plain one does.
DECODED_PIECE_BYTES = 64 * 1024

# Output assumed by an estimate's expected cost when the caller gives no figure: a typical chat
# answer is a few hundred tokens; the actual cost, from the vendor's usage, replaces it.
EXPECTED_OUTPUT_TOKENS = 256

# Stand-in tokenizers (tiktoken for a Claude or Gemini model) miscount by a few percent either
# way; a 10 % margin keeps the context-window and cost guards on the safe side.
ESTIMATE_SAFETY_MARGIN = 0.10

# Text tokens assumed per PDF page, beside the image of the page that OpenAI and Anthropic also
# bill: the top of Anthropic's published "1,500-3,000 tokens per page" (PDF support guide), so
# a dense page is not counted low.
PDF_TEXT_TOKENS_PER_PAGE = 3_000

# Video tokens per second for a vendor whose own rate is not known: Gemini's published 263 a
# second (258 for the frame sampled each second, plus its audio), the only vendor that takes
# video in a chat call.
MEDIA_VIDEO_TOKENS_PER_S = 263

# A video's duration is bounded by its size at this many bytes a second (64 kbit/s): below what
# any codec spends on moving pictures at a resolution a model can read. A still slideshow can
# spend less, which is why the estimate's note names the assumption.
MEDIA_VIDEO_MIN_BYTES_PER_S = 8_000

# Weight of each new observation in a deployment's calibration factor (an EWMA): 0.2 settles
# within about ten calls yet one odd request cannot swing estimates much.
CALIBRATION_ALPHA = 0.2

# ---- resilience guards (guards/breaker.py, guards/retry_budget.py, guards/marks.py) ----------

# Sliding windows (breaker window, retry-budget ttl) are cut into this many slices, as in
# Finagle's WindowedAdder and resilience4j's per-second buckets: state per key stays a handful of
# counters while the window slides in steps of a tenth of its length.
WINDOW_SLICES = 10

# Retry budget (Finagle RetryBudget). 20 % is Finagle's and Envoy's figure and the top of
# DESIGN.md's range: it rides out error rates up to one in five with a retry each, yet a full
# outage costs ~1.2 attempts per call instead of max_attempts.
RETRY_BUDGET_PERCENT = 0.2
# Deposits count for ten seconds (Finagle's default ttl): "recent" means the traffic of the last
# few backoffs, so a long healthy period banks nothing to spend at the start of an outage.
RETRY_BUDGET_TTL_S = 10.0
# Finagle's floor is 10/s for RPC fleets at thousands of requests a second; an LLM client sends a
# few, where 10/s would never bind. One a second (10 per ttl) still lets a quiet client or one
# just started retry a blip.
RETRY_BUDGET_MIN_PER_S = 1.0

# Circuit breaker window: LLM clients send a few calls a second, so a minute holds enough calls
# to judge a deployment while still forgetting a past incident quickly.
BREAKER_WINDOW_S = 60.0
# Fewer calls than this in the window never trip the breaker: two unlucky requests in a quiet
# minute are not an outage (resilience4j's 100 assumes RPC volumes).
BREAKER_MINIMUM_CALLS = 10
# Half the calls failing (resilience4j's default) is an outage, not noise.
BREAKER_FAILURE_RATE = 0.5
# An attempt this slow counts as slow. Non-streaming completions of long answers legitimately
# take tens of seconds, so slowness alone opens the breaker only when every call in the window
# is slow (rate 1.0, resilience4j's default); lower both for latency-sensitive routes.
BREAKER_SLOW_CALL_S = 20.0
BREAKER_SLOW_CALL_RATE = 1.0
# Open interval: Envoy's outlier detection ejects for 30 s, longer on each consecutive ejection,
# up to 300 s — long enough for a vendor incident to clear, short enough to notice recovery.
BREAKER_OPEN_S = 30.0
BREAKER_BACKOFF_MULTIPLIER = 2.0
BREAKER_MAX_OPEN_S = 300.0
# Up to a fifth shorter at random, so processes with their own breaker do not all probe at once.
BREAKER_OPEN_JITTER = 0.2
# Half-open: two probes at a time, three successes to close — a probe is a real (paid) call, so
# few, but more than one success so a lucky single answer does not reopen the floodgates.
BREAKER_HALF_OPEN_PROBES = 2
BREAKER_HALF_OPEN_SUCCESSES = 3
# No attempt outlives its call's deadline, so a probe slot held longer than that belongs to a
# caller that crashed or vanished; it is freed so the breaker cannot stay half-open forever.
BREAKER_PROBE_TIMEOUT_S = DEADLINE_S
# While open, a call is refused with probability max(0, (calls - K * accepted) / (calls + 1))
# over the window (Google SRE's client-side throttling, K = 2): the deployment is offered about
# twice what it answers, so a brownout that answers half or more is hardly refused, while a full
# outage (nothing accepted) is refused all but 1 in calls + 1.
BREAKER_THROTTLE_K = 2.0
# A deployment failing this share of the calls in its breaker window (of at least 5: half the
# breaker's minimum, since the cost of a wrong judgement is only a fallback tried before a retry)
# is browning out: a call whose plan has more than one deployment does not retry there (it moves
# on, or ends on the last), since a retry is no likelier to answer than the fallback's first
# attempt, which adds no load to the struggling upstream. A plan of one deployment still retries.
BROWNOUT_FAILURE_RATE = 0.25
BROWNOUT_MINIMUM_CALLS = 5
# Envoy's panic mode, bounded: when every deployment of a plan refuses a call as open, one such
# call in 20 is sent anyway (5 %), so a plan never answers nothing for a whole open interval
# while a full outage costs at most 1.05 attempts per call.
BREAKER_PANIC_EVERY = 20

# A 404 model-not-found marks the deployment unavailable this long: calls fail or fall back
# locally instead of repeating the 404, and a fixed alias or registry is picked up within a
# minute.
UNAVAILABLE_S = 60.0
# ... but only once this many 404s came within that time, outnumbering every other answer in
# the deployment's breaker window: a stray 404 among answers (vendors send them in incidents and
# region roll-outs) is noise, not a missing model. Three, so that a burst of concurrent first
# calls meeting two strays is not a minute's outage; a persistent 404 costs two requests more,
# never a retry.
UNAVAILABLE_STRIKES = 3

# A vendor's rate limit learned from response headers (used when config sets no rpm/tpm) is
# forgotten this long after the last response that reported it: every response refreshes it,
# and an hour lets a tier change at the vendor replace a stale limit without a restart.
LEARNED_LIMIT_TTL_S = 3600.0

# A p95 hedge delay is read from this many recent answers per deployment: enough for the 95th
# percentile to mean something, few enough to follow a change in the upstream within minutes.
HEDGE_LATENCY_SAMPLES = 200

# Below this many answers a deployment has no p95 yet, and a "p95" hedge is not sent: hedging
# on a guess would double the load for nothing.
HEDGE_MIN_SAMPLES = 20

# A "fastest" route sends this share of calls first to a deployment with no latency yet, so a
# faster one is found: one call in ten measures it within a few dozen calls, and costs at most
# a tenth of the traffic its latency if it proves the slower (epsilon-greedy's usual 0.1).
FASTEST_EXPLORE_SHARE = 0.1
# ... and this share first to a measured deployment that is not the fastest, so its average
# follows the deployment (an average is only updated by answers: one never sent first would
# keep a stale figure forever). One call in fifty keeps it within minutes at a few calls a
# second, for a small cost in latency.
FASTEST_REFRESH_SHARE = 0.02

# The typical call `guardedllm check` measures routes against when it warns that a route's
# max_cost_usd rules a deployment out: a short prompt (a system line and a question, about a
# thousand tokens) asking for up to 1,024 output tokens, a common max_tokens in SDK examples.
# A deployment whose worst case for it is over the cap never serves such a call.
CHECK_TYPICAL_INPUT_TOKENS = 1_000
CHECK_TYPICAL_MAX_TOKENS = 1_024

# Shadow copies running at once, per route, when the config does not say: enough to watch a
# candidate on a busy route, few enough that a hung candidate holds a handful of connections.
SHADOW_MAX_IN_FLIGHT = 4

# Shadow results kept per client for comparison (``client.shadow_results()``): the most recent
# ones; totals per route are kept without limit in ``client.shadow_stats()``.
SHADOW_RESULTS_KEPT = 200

# How long closing an AsyncClient waits for its cancelled shadow copies to let go of their
# connections before it closes the pool anyway: cancellation takes a scheduler turn or two.
SHADOW_CLOSE_WAIT_S = 1.0

# ---- shared state (state/redis.py) ------------------------------------------------------------

# Every Redis key guardedllm writes starts with this, so its keys are easy to find, count and
# delete, and several applications can share one Redis by giving each its own prefix.
STATE_KEY_PREFIX = "guardedllm:"

# How long one state operation may wait for Redis (connect, send, answer). A healthy round trip
# takes well under a millisecond on a LAN; a store that has not answered in half a second is in
# trouble, and a call must not hang on its guards' bookkeeping.
STATE_TIMEOUT_S = 0.5

# The longest timeout_s a config may give state operations. A call may make several of them, on
# its path; a store that takes seconds to answer is as good as down for that call, which is what
# [state] on_error is for. Ten times the default leaves room for a store across a WAN.
STATE_MAX_TIMEOUT_S = 5.0

# Connections one RedisBackend.from_url opens to Redis at most. An operation holds one for a
# round trip (well under a millisecond), so a few dozen serve tens of thousands of operations a
# second; a burst of more threads waits (up to timeout_s) for a free one instead of failing.
STATE_MAX_CONNECTIONS = 64

# The Redis server's clock is re-read this often (one TIME round trip). Host clocks disciplined
# by NTP drift apart by milliseconds per minute at most, which is what the estimate may lose
# between two readings; reading it more often costs round trips for nothing.
STATE_CLOCK_SYNC_S = 60.0

# Longest a Redis key lives after its last write, for state with no end of its own (a breaker's
# state, a bucket that never refills). Longer than the longest window a guard keeps (a spend
# budget's calendar month, 31 days), so it never cuts one short; short enough that the keys of
# a deployment or budget removed from config are gone within weeks.
STATE_MAX_TTL_S = 40 * 86400.0

# A Redis key is kept this long past the moment it reads as absent by its writer's clock (a
# counter's or value's expiry, a window's last slice leaving, a bucket full again): callers
# whose clocks lag the writer's by up to this still find what they would in memory. A minute
# is far beyond any clock error between hosts sharing RedisBackend.clock(), and costs a few
# bytes per key.
STATE_EXPIRY_SLACK_S = 60.0

# A state step (one phase of a call's guard operations: a round trip or two) may wait this many
# timeout_s for Redis at most: a free connection, connecting and the answer, for each of two
# rounds. Closer to its deadline than that, a call bounds the step by the deadline instead (the
# driver waits in a worker thread up to it); farther, the store's own timeouts end the step in
# time and it runs where it stands, costing no thread.
STATE_STEP_TIMEOUTS = 6

# Worker threads of an async client's background runner (state/_background.py), which lets go
# of what cancelled calls held on a shared store. Each job is a round trip or two; two threads
# keep a burst of cancellations from queueing behind one slow answer, without a thread per call.
STATE_BACKGROUND_THREADS = 2

# How long the guards keep to this process's own state after the shared store failed, before
# trying it again. Long enough that a store that is down costs each call no wait for its
# timeout (one call in this long pays it), short enough that a blip of a failover or restart
# leaves the fleet apart for seconds only.
STATE_COOL_OFF_S = 5.0

# The HTML report (guardedllm.report) draws every series from a bounded number of points, so a
# report of millions of samples is a page of kilobytes. A CDF goes through its series' value at
# every 0.5 % of samples (finer than a line's width at a page's width, with every percentile a
# reader looks for up to p99.5) and at p99.9 and p99.99, where latency tails live.
REPORT_CDF_POINTS = 201
REPORT_CDF_TAIL = (0.999, 0.9999)

# Bins of a report's histogram, shared by all its series so their bars compare: enough to show
# a second mode, few enough that a series of a thousand samples still fills its bins.
REPORT_HISTOGRAM_BINS = 40

# A report's timeline with more points than this is drawn from the highest point of each of this
# many equal spans of time: a day of per-minute rates (1440) is drawn whole, and a longer one
# keeps its peaks, which are what a rate limit is about.
REPORT_TIMELINE_POINTS = 1440

# ---- traffic recorder (record/) ---------------------------------------------------------------

# A record file is closed and a new one begun past this size. Large enough that a busy service
# (a few hundred calls a second, about 1 KB a record without content) opens a file every few
# minutes, not every second; small enough that one file loads in a notebook or `simulate` reads
# it in seconds.
RECORD_MAX_FILE_MB = 64.0

# Records waiting for the writer thread at most. The writer keeps up with tens of thousands of
# records a second; a queue this deep absorbs a stalled disk for a few seconds of a busy
# service's traffic, and holds at most a few tens of MB (with content="full" more), where an
# unbounded one would grow until the process runs out of memory. Past it records are dropped,
# counted in guardedllm.record.dropped; calls never wait.
RECORD_QUEUE_SIZE = 10_000

# How long closing a client waits for the writer to write what is queued and close its file. A
# healthy disk writes a full queue in well under this; a hung one (a dead network share) must not
# hang the application's shutdown: what is still queued then is lost, and counted.
RECORD_CLOSE_WAIT_S = 5.0

# How often the writer thread wakes to write what calls queued since, with one write and one
# flush. Waking per record costs each call a thread switch and a system call, more CPU than the
# rest of recording; a quarter of a second keeps records on disk within a blink, and a full
# queue (RECORD_QUEUE_SIZE) holds the records of 40,000 calls a second between wakes.
RECORD_FLUSH_S = 0.25

# ---- release tools (release/: guardedllm simulate and compare) ----------------------------------

# Reasons kept for traffic lines that were skipped (the rest are only counted): enough to see
# what kind of line a log holds by mistake without a report that grows with the log.
TRAFFIC_SKIP_REASONS_KEPT = 5

# The newest traffic record format this version reads (record-format.md); a line of a higher
# "v" was written by a newer guardedllm and is refused with a clear error, not misread.
TRAFFIC_FORMAT_VERSION = 1

# Recorded calls answered by a stand-in deployment needed before simulate scales its counts by
# the ratio learned from them (vendor's input tokens over the tokenizer's): fewer can be a few
# odd requests; below it the factor stays 1 and the safety margin alone covers the error.
SIMULATE_MIN_CALIBRATION_SAMPLES = 20

# Traffic below this size is simulated in the calling process; above it the log is cut into
# pieces counted by one worker process per CPU. Starting a worker (importing guardedllm and
# loading two encodings) costs about a second, what counting ~4,000 requests of a few hundred
# tokens costs, and 16 MB is about that many.
SIMULATE_PARALLEL_MIN_BYTES = 16 * 1024 * 1024

# At most this many worker processes: tokenizing is CPU-bound, and each worker holds its own
# copy of the encodings (~50 MB each), so more than the CPUs gains nothing and costs memory.
SIMULATE_MAX_WORKERS = 8

# Confidence of compare's intervals: 95 %, the conventional level at which a difference that
# is only noise is called better or worse one time in twenty per metric.
COMPARE_CONFIDENCE_Z = 1.959963984540054

# Bootstrap resamples of a percentile's difference. Each resample draws one order statistic
# (O(1), see release/_stats.py), so 2,000 cost milliseconds and settle the interval's ends to
# well under the interval's own width.
COMPARE_BOOTSTRAP_RESAMPLES = 2_000

# The bootstrap's seed: the same records give the same intervals, so a CI gate cannot flip
# between two runs of one commit.
COMPARE_BOOTSTRAP_SEED = 12_345

# The most inputs one embeddings request may carry, when the deployment declares no
# max_batch_items: OpenAI's (and Azure's) limit for /embeddings is 2048 inputs, Gemini's
# batchEmbedContents takes at most 100 requests. A batch over it is refused before sending,
# saying how to split it, rather than sent for a 400.
EMBEDDING_MAX_BATCH_ITEMS = 2048
GEMINI_EMBEDDING_MAX_BATCH_ITEMS = 100

# OpenAI's limit on the tokens of all the inputs of one /embeddings request (300,000), on top
# of each input's own (the model's context_window). Other vendors publish none.
OPENAI_EMBEDDING_MAX_BATCH_TOKENS = 300_000
