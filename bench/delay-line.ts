/**
 * The delay line on its own, for trying a command by hand across a "distant" registry:
 * `node dist/bench/delay-line.js UPSTREAM_HOST:PORT RTT_MS [LISTEN_PORT]` prints the address to use instead of the
 * upstream and runs until interrupted. The line itself is fixtures/delay-line.ts.
 */
import { startDelayLine } from '../fixtures/delay-line.js';

const [upstream, rtt, port] = process.argv.slice(2);
if (upstream === undefined || !/^[^:]+:\d+$/.test(upstream) || rtt === undefined || !(Number(rtt) >= 0)) {
  process.stderr.write('usage: node dist/bench/delay-line.js UPSTREAM_HOST:PORT RTT_MS [LISTEN_PORT]\n');
  process.exit(2);
}
const line = await startDelayLine({ upstream, oneWayDelayMs: Number(rtt) / 2, ...(port ? { port: Number(port) } : {}) });
process.stdout.write(`${line.host} -> ${upstream}, +${Number(rtt)} ms round trip\n`);
process.on('SIGINT', () => void line.close().then(() => process.exit(0)));
process.on('SIGTERM', () => void line.close().then(() => process.exit(0)));
