/**
 * A fresh docker-registry for one benchmark run, optionally over HTTPS (a self-signed certificate for 127.0.0.1)
 * and optionally behind a delay line (fixtures/delay-line.ts) that puts it `rttMs` of round trip away. The line is
 * a TCP proxy, so TLS passes through it untouched and the certificate still names 127.0.0.1.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startDelayLine, type DelayLine } from '../fixtures/delay-line.js';
import { launchRegistry, type RegistryProcess } from '../fixtures/registry-process.js';

export interface Certificate {
  readonly certificate: string;
  readonly key: string;
}

export interface Destination {
  /** Where clients connect: the delay line's address, or the registry's. */
  readonly host: string;
  /** `http://host` or `https://host`: what to give `--to` and the reference uploaders. */
  readonly url: string;
  readonly registry: RegistryProcess;
  readonly line: DelayLine | undefined;
}

/** A self-signed certificate for 127.0.0.1 (its own CA), made once in `dir`. */
export async function makeCertificate(dir: string): Promise<Certificate> {
  const certificate = path.join(dir, 'bench-ca.crt');
  const key = path.join(dir, 'bench-ca.key');
  if (!existsSync(certificate) || !existsSync(key)) {
    mkdirSync(dir, { recursive: true });
    await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', certificate, '-days', '30', '-subj', '/CN=regmigrate-bench', '-addext', 'subjectAltName=IP:127.0.0.1']);
  }
  return { certificate, key };
}

export async function withDestination<T>(
  workDir: string,
  name: string,
  options: { rttMs?: number; tls?: Certificate; root?: string; readonly?: boolean },
  job: (destination: Destination) => Promise<T>,
): Promise<T> {
  const dir = path.join(workDir, 'dest', name);
  if (!options.root) rmSync(dir, { recursive: true, force: true });
  const registry = await launchRegistry({ workDir: dir, schema1: true, ...(options.tls ? { tls: options.tls } : {}), ...(options.root ? { root: options.root } : {}), ...(options.readonly ? { readonly: true } : {}) });
  const line = options.rttMs === undefined ? undefined : await startDelayLine({ upstream: registry.host, oneWayDelayMs: options.rttMs / 2 });
  const host = line?.host ?? registry.host;
  try {
    return await job({ host, url: `${options.tls ? 'https' : 'http'}://${host}`, registry, line });
  } finally {
    await line?.close();
    await registry.stop();
    if (!options.root) rmSync(dir, { recursive: true, force: true });
  }
}
