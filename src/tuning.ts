/**
 * Every number that tunes regmigrate's speed and memory, in one place, each with the measurement that chose it.
 * Figures are from `npm run bench` on the 2-core machine behind the tables of docs/performance.md: the push corpus
 * (~0.5 GiB, 189 tags) and the scan/scale storages (10 tags a repository, 10,000 to 200,000 tags). Where nothing
 * was measured the comment says so and gives the reason for the value instead.
 *
 * Limits that define a valid input (a manifest's size, an index's depth) stay beside the code that enforces them.
 * An operator can change a few values through the environment; only the command line reads it (the functions
 * below take `env`), so core code gets every value as an argument.
 */

// ---- Memory ----------------------------------------------------------------------------------------------------

/**
 * Tags resolved, planned and transferred at a time by push and sync, and written at a time by a streamed scan
 * (whole repositories, so a batch may hold more). Memory follows this, not the size of the registry: with 2,000 a
 * 50,000-tag push peaks at 249 MiB, a 200,000-tag sync at 311 MiB and a 200,000-tag scan at 276 MiB (docs/performance.md,
 * Scale), and the next batch is read and probed while one transfers. `REGMIGRATE_BATCH_TAGS` overrides it.
 */
export const BATCH_TAGS = 2000;

/** `REGMIGRATE_BATCH_TAGS`: tags a push, sync or streaming scan holds at once (a tuning knob; tests make it small). */
export function batchTagsFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.REGMIGRATE_BATCH_TAGS ?? '';
  return /^[1-9]\d*$/.test(text) ? Number(text) : undefined;
}

// ---- Uploads ---------------------------------------------------------------------------------------------------

/**
 * A blob is read and sent in blocks of at most this size, read into two buffers taken in turn (storage/file-range.ts),
 * so an upload holds at most two blocks. On one 2 GiB layer, 3 alternating rounds each: 1 MiB blocks took 0.76× the
 * client CPU of 256 KiB ones over HTTP and 0.81× over HTTPS (512 KiB: 0.80× and 0.93×); the push corpus, mostly
 * smaller blobs, cost the same. (When each block was a fresh buffer, 1 MiB blocks had cost 1.5× on the corpus: V8
 * counted them towards its next full collection.) The node:http reference uploader (bench/upload-node.ts) sends
 * 1 MiB blocks too, its own fastest size.
 */
export const UPLOAD_BLOCK_BYTES = 1024 * 1024;

/** The smallest upload block uploadBlockBytes chooses: the size every upload had before blocks were reused. */
export const MIN_UPLOAD_BLOCK_BYTES = 256 * 1024;

/**
 * The block buffers of every upload a run may have in flight together: 64 MiB, which is the 32 uploads a run grows
 * to by default with 1 MiB blocks. Not measured: it keeps a high `--concurrency` from multiplying the memory a run
 * needs (at `--concurrency 256`, 1 MiB blocks would hold 512 MiB).
 */
export const UPLOAD_BUFFER_BYTES = 64 * 1024 * 1024;

/**
 * The block size for a run whose uploads may grow to `uploads` at once: UPLOAD_BLOCK_BYTES while two blocks for
 * each fit in UPLOAD_BUFFER_BYTES, halved until they do, never below MIN_UPLOAD_BLOCK_BYTES (1 MiB up to 32
 * uploads, 512 KiB up to 64, 256 KiB beyond).
 */
export function uploadBlockBytes(uploads: number): number {
  let block = UPLOAD_BLOCK_BYTES;
  while (block > MIN_UPLOAD_BLOCK_BYTES && 2 * block * uploads > UPLOAD_BUFFER_BYTES) block /= 2;
  return block;
}

/**
 * Blobs up to this size (configs, small layers) are read in one synchronous read and sent as one buffer: an open, a
 * read and a close through the thread pool and a stream cost more than the read of a file in the page cache, and a
 * 64 KiB read holds the event loop for microseconds. Not measured on its own.
 */
export const SMALL_BLOB_BYTES = 64 * 1024;

/**
 * Blocks under `--limit-rate`: smaller, so the token bucket lets bytes out smoothly rather than in 1 MiB bursts; at
 * most a tenth of a second's worth of the rate (util/rate-limit.ts), and no fewer bytes than the second figure (a
 * write per step: a few a second at the lowest rate). Not measured.
 */
export const THROTTLED_UPLOAD_BLOCK_BYTES = 64 * 1024;
export const MIN_THROTTLED_STEP_BYTES = 256;

/**
 * Chunk size after a proxy refused a whole blob with 413 and no `--chunk-size` was given; each further 413 divides
 * it by 4. Not measured: from 16 MiB two more tries reach 1 MiB, nginx's default `client_max_body_size` (the fault
 * suite's 413 case, test/faults/network.test.ts).
 */
export const FALLBACK_CHUNK_BYTES = 16 * 1024 * 1024;

/** Below this a proxy's limit is not a body limit any more: the 413 is reported instead of trying smaller chunks. */
export const MIN_CHUNK_BYTES = 64 * 1024;

// ---- Parallelism -----------------------------------------------------------------------------------------------

/**
 * `--concurrency` of push, sync and export: blob uploads (skopeo copies, images written) at once; without the flag
 * a push's uploads start here and may grow to uploadCap. The reference uploader reaches the local registry's
 * ceiling with 8 keep-alive connections (docs/performance.md, Push).
 */
export const TRANSFER_CONCURRENCY = 8;

/**
 * Requests other than blob uploads in flight (mounts, manifest PUTs, verification GETs, Harbor API calls): twice
 * the uploads, at least 16, so checks and manifests never wait behind a slow layer. Not measured separately; the
 * push benchmark runs with it at 16.
 */
export function requestConcurrency(uploads: number): number {
  return Math.max(16, uploads * 2);
}

/**
 * The most blob uploads a run may grow to when `--concurrency` is not given: four times the 8 it starts with. On
 * loopback eight already reach the registry's ceiling; across a round trip most blobs are smaller than what the
 * line holds in flight (at 50 ms and ~180 MB/s, 9 MB), so more must be under way at once: the push corpus through a
 * 50 ms delay line took 9.0 s with 8 uploads and 7.5 s with 32, the ceiling's 32 connections 4.1–4.5 s (one run
 * each, machine under load). The budget grows only while uploads wait and halves when the destination pushes back.
 */
export function uploadCap(uploads: number): number {
  return uploads * 4;
}

/**
 * The most requests other than uploads a run keeps in flight at one destination (or four times `--concurrency` if
 * more), the cap the adaptive budget grows to while round trips keep work waiting (destination/budget.ts).
 */
export function requestCap(uploads: number): number {
  return Math.max(128, uploads * 4);
}

/** Connections kept to the destination (undici's pool): more than the 8 uploads and 16 other requests a default run has in flight. Not measured. */
export const CONNECTIONS_PER_HOST = 32;

/** An idle keep-alive connection is kept this long, and a TCP/TLS connect may take at most this long (less with a shorter `--timeout`). Not measured. */
export const KEEP_ALIVE_MS = 30_000;
export const CONNECT_TIMEOUT_MS = 30_000;

/**
 * How long one attempt of the first contact (`GET /v2/`) waits for an answer, or `--timeout` when that is smaller.
 * distribution answers it without touching storage (registry/handlers/app.go, apiBase: `{}`), Harbor after a login
 * check only (src/server/middleware/v2auth/access.go, accessList: `/v2/` needs `login`, which may ask LDAP): well
 * under a second either way. The transfer's `--timeout` (120 s) is for bodies under way and would leave a host that
 * accepts connections but never answers silent for two minutes per attempt; five attempts of 10 s with their
 * backoff end within a minute.
 */
export const CONTACT_TIMEOUT_MS = 10_000;

/**
 * Connections kept to a source bucket (S3 or compatible). A scan is a stream of small GETs and listings, each a
 * round trip, so what is in flight sets the pace once the store is far away. Measured with 3,000 tag-link GETs
 * against the test gateway (fixtures/rgw-process.ts) through fixtures/delay-line.ts at a 20 ms round trip: 16
 * connections 483 GET/s, 32 664, 64 717, 128 612 (machine shared and loaded); on loopback the single-node gateway
 * tops out at ~1,100–1,300 GET/s from 8 connections on. Client CPU 0.14–0.19 ms per GET on loopback.
 */
export const S3_CONNECTIONS = 64;

/**
 * Tags resolved at once from a bucket (each a tag-link GET, then its manifest and blob listings when not yet read):
 * as many as there are connections, so every connection has a request to carry while round trips dominate
 * (S3_CONNECTIONS above). Not measured on its own: set with the connections' figures.
 */
export const S3_READS_IN_FLIGHT = S3_CONNECTIONS;

/** The largest ListObjectsV2 page S3 returns (and what is asked for): 1,000 keys. */
export const S3_LIST_PAGE_KEYS = 1000;

/** `diff --concurrency`: destination requests in flight; the registry's own GET ceiling in the bench is measured with 16 connections. */
export const DIFF_CONCURRENCY = 16;

/** `sync --delete-extra`: a plain registry's tags read per repository at once (one manifest GET each). Not measured: deletions are rare and few. */
export const DELETE_EXTRA_TAG_READS = 8;

/**
 * Directory reads in flight during the walk (fast-glob's and the per-repository `readdir`s): many, so a cold cache
 * on a real disk or NFS is read in parallel. Not measured beyond the scan bench (50,000 tags, warm cache).
 */
export const WALK_DIRECTORY_READS = 64;

/** `scan --verify --concurrency` default: blobs hashed at once, 4 per core between 4 and 16. */
export function scanConcurrency(cores: number): number {
  return Math.max(4, Math.min(16, cores * 4));
}

/** Blobs hashed at once by `scan --verify`: hashing is CPU-bound, so more workers than cores only add memory. */
export function hashWorkers(concurrency: number): number {
  return Math.max(2, Math.min(concurrency, 8));
}

/** Read blocks while hashing a blob (`scan --verify`). Not measured: large enough that the hash, not the reads, sets the pace. */
export const HASH_BLOCK_BYTES = 1024 * 1024;

/** Tags resolved between two turns of the event loop, so signals and progress output are not starved. */
export const RESOLVE_YIELD_TAGS = 256;

/** Seconds between two progress lines when stderr is not a terminal, and between two JSON progress log lines. */
export const PROGRESS_LINE_INTERVAL_SECONDS = 30;

// ---- Failures and leases ------------------------------------------------------------------------------------------

/**
 * A transient failure (429, 5xx, a reset) is tried this many times in all (`--retries`), the waits doubling from
 * 0.5 s up to 30 s (each jittered down to half), or what `Retry-After` asks up to 60 s. Not measured: the default
 * waits add up to 3.75–7.5 s, which rides out a registry's restart (the fault suite kills and restarts one
 * mid-push, test/faults/network.test.ts) without holding a run on a dead host for minutes.
 */
export const RETRY_ATTEMPTS = 5;
export const RETRY_BASE_DELAY_MS = 500;
export const RETRY_MAX_DELAY_MS = 30_000;
export const MAX_RETRY_AFTER_MS = 60_000;

/**
 * The destination is taken for gone (destination/health.ts) once GONE_AFTER_FAILURES requests in a row got no answer
 * at all (a refused, reset or timed-out connection; any HTTP answer in between starts the count again) and the first
 * of them is GONE_AFTER_MS old: no new work starts, the images not done are reported `interrupted`, exit 3. Not
 * measured, chosen from the retry policy above: 3 s is under the shortest time one request's own retries take with
 * the defaults (waits of at least 0.25 + 0.5 + 1 + 2 = 3.75 s), so the run is declared gone before any request gives
 * up and fails its image with the raw error, once per image; and it is well over the second a docker-registry takes
 * to restart, which is ridden out as before. Five failures: one request's five attempts make them alone (its first
 * cut by the kill, the four retries refused), so a run with one upload in flight is declared gone as one with forty.
 */
export const GONE_AFTER_FAILURES = 5;
export const GONE_AFTER_MS = 3_000;

/** `--timeout`: seconds without progress before a connection counts as dead. Not measured: longer than any pause a healthy registry makes. */
export const TIMEOUT_SECONDS = 120;

/** A bearer token is refreshed a quarter of its lifetime early, at most this much, so no request carries an expiring one. */
export const TOKEN_REFRESH_MARGIN_MS = 30_000;

/** `sync --lock-stale`: five minutes without a heartbeat means the lock's holder is gone (it renews every 30 s at most). */
export const LOCK_STALE_SECONDS = 300;

/** The sync lock's heartbeat: a quarter of the stale time, at most this, so a live holder is never taken for dead. */
export const LOCK_HEARTBEAT_MAX_MS = 30_000;

// ---- The V8 heap and libuv ------------------------------------------------------------------------------------

/**
 * Once the heap passes LARGE_HEAP_BYTES it grows by HEAP_GROWING_PERCENT before a full collection instead of V8's
 * default (up to 2×, more under a high allocation rate), so the resident size stays near what is live
 * (src/cli/heap-tuning.ts). Measured on the 50,000-tag scan storage: peak 178–195 MiB with it, 250–265 MiB
 * without; at 200,000 tags ~290 MiB instead of ~500. The push corpus peaks at 146–151 MiB either way.
 * Not below 64 MiB: with 20% growth from the start, a 0.5 GiB push ran 36 full collections over a 20 MiB heap
 * (client CPU 2.5–3.3 s against 1.6–2.0 s once the growth waited for a large heap).
 */
export const LARGE_HEAP_BYTES = 64 * 1024 * 1024;
export const HEAP_GROWING_PERCENT = 20;
/** How often the heap's size is looked at until it is large: a heap statistics read is a few microseconds. */
export const HEAP_CHECK_INTERVAL_MS = 100;

/*
 * UV_THREADPOOL_SIZE is not set: libuv's pool (4 threads) starts while Node loads the ES module entry point, before
 * its first statement runs, so neither bin/regmigrate nor run() can change it (counted in /proc/<pid>/task: 4
 * pool threads whatever the entry point sets, 16 only when the variable is in the environment at start). It does
 * not need to: the resolver's reads are synchronous, and on the 50,000-tag scan storage 16 threads (set in the
 * environment) took 12.1–15.1 s against 9.8–14.9 s with 4, at the same CPU time. An operator may still set it in
 * the environment, where libuv reads it.
 */

// ---- Stopping --------------------------------------------------------------------------------------------------

/**
 * How long uploads under way may go on after the first signal before they are cut. Long enough for a layer that
 * is nearly there to land (its image then gets its manifest), short enough for a container runtime's stop timeout
 * (Kubernetes waits 30 s, `docker stop` 10 s before SIGKILL) to leave room for the report.
 * `REGMIGRATE_STOP_GRACE_SECONDS` overrides it.
 */
export const STOP_GRACE_MS = 5000;

/** `REGMIGRATE_STOP_GRACE_SECONDS`: the grace for uploads under way after a signal, instead of STOP_GRACE_MS. */
export function stopGraceFromEnv(env: NodeJS.ProcessEnv): number {
  const text = env.REGMIGRATE_STOP_GRACE_SECONDS ?? '';
  return /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : STOP_GRACE_MS;
}

/**
 * How long a shard waits for a blob another shard uploads (plan.ts `sharedFrom`) before uploading it itself,
 * counted from when its batch has nothing else to send: another shard started at the same time has the blob among
 * its first uploads (largest first), so a minute covers a slow start without stalling a shard run alone for long.
 * `REGMIGRATE_SHARD_WAIT_SECONDS` sets it.
 */
export const SHARD_WAIT_MS = 60_000;

/**
 * Asking again whether that blob landed: a mount POST (and the DELETE of the session it opens), first after
 * 0.25 s, then at most every 2 s (a blob that landed is mounted at most 2 s late; two small requests a blob).
 */
export const SHARD_POLL_MS = { first: 250, max: 2_000 } as const;

/** `REGMIGRATE_SHARD_WAIT_SECONDS`: how long a shard waits for a blob another shard uploads (SHARD_WAIT_MS), in ms. */
export function shardWaitFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.REGMIGRATE_SHARD_WAIT_SECONDS ?? '';
  return /^\d+(\.\d+)?$/.test(text) ? Math.round(Number(text) * 1000) : undefined;
}
