/**
 * The minimal push client the cpu bench holds regmigrate's CPU per tag against: undici's `Pool.dispatch` (no
 * `request()`, no body streams), `connections` keep-alive connections, and the requests a push of the storage sends
 * to a fresh docker-registry, nothing else: per repository its `tags/list` (the probe); per blob, in the first
 * repository (in name order) that needs it, `POST …/blobs/uploads/?mount=<digest>&from=<repository>` (which opens
 * the upload session) and the `PUT` of its bytes to the session with `?digest=`; in every other repository that
 * needs it, the same `POST` with `from=` the first one, once that upload has landed (201: mounted); per tag, the
 * manifest `PUT` and its `GET` read-back. No retries, no checks beyond the status, no authentication. Run as its
 * own process so that its CPU (GNU time) is its own.
 *
 * usage: node dist/bench/push-undici.js ROOT URL CONNECTIONS [CA_FILE]   (URL: http://host:port or https://…)
 * Prints one JSON line: { seconds, tags, requests }.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Pool } from 'undici';

const [root, base, connectionsArg, caFile] = process.argv.slice(2);
if (root === undefined || base === undefined) throw new Error('usage: push-undici.js ROOT URL CONNECTIONS [CA_FILE]');
const connections = Number(connectionsArg ?? 16);
const v2 = path.join(root, 'docker/registry/v2');
const pool = new Pool(base, { connections, pipelining: 1, keepAliveTimeout: 30_000, ...(caFile ? { connect: { ca: readFileSync(caFile, 'utf8') } } : {}) });
const ACCEPT = ['application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

interface Answer {
  readonly status: number;
  /** The Location header, where there is one. */
  readonly location: string | undefined;
}

let requests = 0;

/**
 * One request through the pool's own dispatch, with the handler interface undici's client calls natively (the
 * `onRequestStart` one is wrapped into it per request, headers parsed into an object): the status and Location are
 * taken from the raw headers, the body is dropped.
 */
function send(method: 'GET' | 'POST' | 'PUT', requestPath: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  requests++;
  return new Promise((resolve, reject) => {
    let status = 0;
    let location: string | undefined;
    pool.dispatch(
      { method, path: requestPath, headers, ...(body ? { body } : {}) },
      {
        onConnect: () => undefined,
        onHeaders: (statusCode, raw) => {
          status = statusCode;
          for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 8 && raw[i]!.toString('latin1').toLowerCase() === 'location') location = raw[i + 1]!.toString('latin1');
          return true;
        },
        onData: () => true,
        onComplete: () => resolve({ status, location }),
        onError: reject,
      },
    );
  });
}

function expect(what: string, answer: Answer, status: number): Answer {
  if (answer.status !== status) throw new Error(`${what}: ${answer.status}, not ${status}`);
  return answer;
}

const blobFile = (digest: string): string => path.join(v2, 'blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');

interface Tag {
  readonly repository: string;
  readonly tag: string;
  readonly manifest: Buffer;
  readonly mediaType: string;
  readonly blobs: readonly string[];
}

/** Every tag of the storage, repositories in name order: its manifest and the digests of its config and layers. */
function readTags(): Tag[] {
  const tags: Tag[] = [];
  const walk = (dir: string, name: string): void => {
    if (existsSync(path.join(dir, '_manifests'))) {
      for (const tag of readdirSync(path.join(dir, '_manifests/tags')).sort()) {
        const digest = readFileSync(path.join(dir, '_manifests/tags', tag, 'current/link'), 'latin1').trim();
        const manifest = readFileSync(blobFile(digest));
        const parsed = JSON.parse(manifest.toString('utf8')) as { mediaType: string; config: { digest: string }; layers: Array<{ digest: string }> };
        tags.push({ repository: name, tag, manifest, mediaType: parsed.mediaType, blobs: [parsed.config.digest, ...parsed.layers.map((l) => l.digest)] });
      }
      return;
    }
    for (const entry of readdirSync(dir).sort()) walk(path.join(dir, entry), name ? `${name}/${entry}` : entry);
  };
  walk(path.join(v2, 'repositories'), '');
  return tags;
}

async function upload(repository: string, digest: string): Promise<void> {
  const opened = expect(`POST ${repository} ${digest}`, await send('POST', `/v2/${repository}/blobs/uploads/?mount=${digest}&from=${repository}`, { 'content-length': '0' }), 202);
  const location = new URL(String(opened.location), base);
  location.searchParams.set('digest', digest);
  const bytes = readFileSync(blobFile(digest));
  expect(`PUT ${repository} ${digest}`, await send('PUT', `${location.pathname}${location.search}`, { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) }, bytes), 201);
}

async function mount(repository: string, digest: string, from: string): Promise<void> {
  expect(`POST ${repository} ${digest} from ${from}`, await send('POST', `/v2/${repository}/blobs/uploads/?mount=${digest}&from=${from}`, { 'content-length': '0' }), 201);
}

const tags = readTags();
const started = process.hrtime.bigint();
const repositories = [...new Set(tags.map((t) => t.repository))];
// The probe: every repository's tag list (404 in a fresh registry).
await Promise.all(repositories.map(async (r) => (await send('GET', `/v2/${r}/tags/list`, {})).status));
// Each blob lands once in its first repository; every other repository mounts it from there once it has.
const home = new Map<string, string>();
for (const t of tags) for (const digest of t.blobs) if (!home.has(digest)) home.set(digest, t.repository);
const landed = new Map<string, Promise<void>>();
const held = (repository: string, digest: string): Promise<void> => {
  const key = `${repository}@${digest}`;
  let promise = landed.get(key);
  if (!promise) {
    const from = home.get(digest)!;
    promise = from === repository ? upload(repository, digest) : held(from, digest).then(() => mount(repository, digest, from));
    landed.set(key, promise);
  }
  return promise;
};
let next = 0;
await Promise.all(
  Array.from({ length: connections * 4 }, async () => {
    while (next < tags.length) {
      const t = tags[next++]!;
      await Promise.all(t.blobs.map((digest) => held(t.repository, digest)));
      const manifestPath = `/v2/${t.repository}/manifests/${t.tag}`;
      expect(`PUT ${manifestPath}`, await send('PUT', manifestPath, { 'content-type': t.mediaType, 'content-length': String(t.manifest.length) }, t.manifest), 201);
      expect(`GET ${manifestPath}`, await send('GET', manifestPath, { accept: ACCEPT }), 200);
    }
  }),
);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
await pool.close();
process.stdout.write(`${JSON.stringify({ seconds, tags: tags.length, requests })}\n`);
