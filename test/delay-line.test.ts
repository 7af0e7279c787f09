import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startDelayLine, type DelayLine } from '../fixtures/delay-line.js';
import { atEnd } from './helpers/teardown.js';

/** A TCP server on loopback; `onSocket` scripts each connection (half-open sockets allowed, as the line is). */
async function startServer(onSocket: (socket: net.Socket) => void): Promise<string> {
  const open = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  atEnd(async () => {
    for (const s of open) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

async function startLine(upstream: string, oneWayDelayMs: number, bufferBytes?: number): Promise<DelayLine> {
  const line = await startDelayLine({ upstream, oneWayDelayMs, ...(bufferBytes ? { bufferBytes } : {}) });
  atEnd(() => line.close());
  return line;
}

function connect(host: string): net.Socket {
  const [h, p] = host.split(':') as [string, string];
  const socket = net.connect({ host: h, port: Number(p), allowHalfOpen: true });
  socket.on('error', () => undefined);
  return socket;
}

/** Everything a socket reads until its FIN. */
function readAll(socket: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    socket.on('end', () => resolve(Buffer.concat(chunks)));
    socket.on('close', () => reject(new Error(`closed without a FIN after ${Buffer.concat(chunks).length} bytes`)));
  });
}

/** Writes `data` in pieces of varied sizes (1 byte to 96 KiB), the way a client's writes arrive. */
function writePieces(socket: net.Socket, data: Buffer): void {
  let at = 0;
  for (let i = 0; at < data.length; i++) {
    const size = [1, 7, 512, 16_384, 98_304][i % 5]!;
    socket.write(data.subarray(at, at + size));
    at += size;
  }
}

describe('the delay line (fixtures/delay-line.ts)', () => {
  it.each([
    ['the client', 0],
    ['the client', 3],
    ['the server', 3],
  ] as const)('carries bytes intact and in order both ways; a half-close by %s at %i ms each way reaches the other side, which can still send', async (first, delay) => {
    const up = randomBytes(3 * 1024 * 1024 + 17);
    const down = randomBytes(2 * 1024 * 1024 + 5);
    let reached!: (got: Promise<Buffer>) => void;
    const serverGot = new Promise<Promise<Buffer>>((resolve) => (reached = resolve)).then((got) => got);
    const host = await startServer((socket) => {
      const got = readAll(socket);
      reached(got);
      if (first === 'the server') {
        writePieces(socket, down);
        socket.end();
      } else {
        // Answer only after the client's FIN has come through the line: the half-close must propagate.
        void got.then(() => {
          writePieces(socket, down);
          socket.end();
        });
      }
    });
    const line = await startLine(host, delay);
    const client = connect(line.host);
    const clientGot = readAll(client);
    const clientClosed = new Promise((resolve) => client.once('close', resolve));
    if (first === 'the client') {
      writePieces(client, up);
      client.end();
    } else {
      void clientGot.then(() => {
        writePieces(client, up);
        client.end();
      });
    }

    const [atClient, atServer] = await Promise.all([clientGot, serverGot]);
    expect(atServer.equals(up)).toBe(true);
    expect(atClient.equals(down)).toBe(true);
    expect(line.stats).toMatchObject({ connections: 1, bytesUp: up.length, bytesDown: down.length });
    // Both sides ended: the line closes the connection.
    await clientClosed;
  });

  it.each(['server', 'client'] as const)('passes on a reset by the %s: the other side sees its connection close', async (who) => {
    let accept!: (socket: net.Socket) => void;
    const accepted = new Promise<net.Socket>((resolve) => (accept = resolve));
    const line = await startLine(await startServer((socket) => accept(socket)), 2);
    const client = connect(line.host);
    client.write('hello');
    const server = await accepted;
    await once(server, 'data');
    const [victim, cutter] = who === 'server' ? [client, server] : [server, client];
    const closed = new Promise((resolve) => victim.once('close', resolve));
    cutter.resetAndDestroy();
    await closed;
    expect(victim.destroyed).toBe(true);
  });

  it('keeps 100 connections apart, each with its own bytes', async () => {
    const host = await startServer((socket) => socket.pipe(socket));
    const line = await startLine(host, 2);
    const payloads = Array.from({ length: 100 }, () => randomBytes(40_000 + Math.floor(Math.random() * 40_000)));
    const echoed = await Promise.all(
      payloads.map(async (payload) => {
        const client = connect(line.host);
        const got = readAll(client);
        writePieces(client, payload);
        client.end();
        return got;
      }),
    );
    expect(echoed.map((e, i) => e.equals(payloads[i]!))).toEqual(payloads.map(() => true));
    expect(line.stats.connections).toBe(100);
    expect(line.stats.bytesUp).toBe(payloads.reduce((n, p) => n + p.length, 0));
    expect(line.stats.bytesDown).toBe(line.stats.bytesUp);
  });

  it('stops reading a sender while its receiver does not read: it holds at most its buffer (plus one read)', async () => {
    const limit = 1024 * 1024;
    let server!: net.Socket;
    const host = await startServer((socket) => {
      server = socket;
      socket.pause();
    });
    const line = await startLine(host, 1, limit);
    const client = connect(line.host);
    const data = randomBytes(48 * 1024 * 1024);
    client.write(data);
    client.end();
    // Wait until the line has taken more than its buffer, then give a sender that is not held back time to run ahead.
    while (line.stats.bytesUp <= limit) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 300));
    expect(line.stats.bytesUp).toBeLessThan(data.length);
    const got = readAll(server);
    server.resume();
    expect((await got).equals(data)).toBe(true);
    expect(line.stats.peakHeldBytes).toBeLessThanOrEqual(limit + 64 * 1024);
  });
});
