/** Debian's prometheus-pushgateway on a free loopback port, no persistence, stopped after the file's tests. */
import { execa } from 'execa';
import { freePort } from './registry.js';
import { atEnd } from './teardown.js';

export interface RunningPushgateway {
  readonly url: string;
  /** What the Pushgateway serves to Prometheus on `/metrics`. */
  scrape(): Promise<string>;
}

export async function startPushgateway(): Promise<RunningPushgateway> {
  const port = await freePort();
  const child = execa('prometheus-pushgateway', [`--web.listen-address=127.0.0.1:${port}`, '--persistence.file='], { reject: false, stdio: 'ignore' });
  atEnd(async () => {
    child.kill('SIGTERM');
    await child;
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('prometheus-pushgateway did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, scrape: async () => (await fetch(`${url}/metrics`)).text() };
}
