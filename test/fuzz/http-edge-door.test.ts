/**
 * The HTTP edge itself, below any route: raw request lines and headers written on a socket to a real Gateway.
 * Node's parser takes request targets that the WHATWG URL parser then refuses (`GET http://[ HTTP/1.1`); such a
 * request must get a 400, not an unhandled rejection (which ends a Node 20 process), and the gateway must go on
 * answering. Nothing is recorded.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { FUZZ_RUNS, assertUnchanged, fuzzParams, fuzzTimeoutMs, labelled, startFuzzGateway, type FuzzGateway } from './fuzz-gateway';

/** Writes `raw` on a fresh connection and returns the first status line's code (0: closed without a response). */
function rawRequest(port: number, raw: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 5 s'));
    }, 5_000);
    socket.on('connect', () => socket.end(raw));
    socket.on('data', (b) => (data += b.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve(m ? Number(m[1]) : 0);
    });
  });
}

interface RawCase {
  readonly label: string;
  readonly raw: string;
  /** Junk that is no (complete) request may be closed without an answer; anything else must be answered. */
  readonly mayClose?: boolean;
}

const PATHS = ['/taobao/notices', '/suppliers/sbx-fuzz/callback', '/suppliers/zyb-fuzz/callback', '/readyz', '/metrics', '/'];
const badTargetArb = fc.oneof(
  fc.constantFrom('http://[', 'http://a:b@[::1', '//[', 'http://%', 'http://a:99999/x', 'http://x:-1/', 'http://[::1]:bad/taobao/notices', 'https://[]/'),
  fc.tuple(fc.constantFrom('http://', '//', 'ftp://'), fc.stringMatching(/^[\x21-\x7e]{0,30}$/), fc.constantFrom(...PATHS)).map(([a, b, c]) => a + b.replace(/[\s]/g, '') + c),
  fc.tuple(fc.constantFrom(...PATHS), fc.stringMatching(/^[\x21-\x7e]{0,60}$/)).map(([p, q]) => p + q),
);

describe(`HTTP edge under hostile request lines (SQLite, ${FUZZ_RUNS} runs)`, { timeout: fuzzTimeoutMs(1) }, () => {
  let fz: FuzzGateway;
  before(async () => {
    fz = await startFuzzGateway('sqlite');
  });
  after(async () => {
    await fz?.stop();
  });

  it('answers a request target the URL parser refuses with 400 and keeps serving (regression)', async () => {
    for (const target of ['http://[', 'http://a:99999/taobao/notices', '//[']) {
      const code = await rawRequest(fz.gateway.httpPort, `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
      assert.equal(code, 400, target);
    }
    await fz.assertAlive();
  });

  it('answers every hostile request line, header set or method with a status, records nothing, keeps serving', async () => {
    const caseArb = labelled(
      fc.oneof(
        fc.tuple(fc.constantFrom('GET', 'POST', 'PUT', 'OPTIONS', 'TRACE', 'CONNECT', 'BREW', 'get'), badTargetArb).map(([m, t]) => ({ label: `${m} ${t}`, raw: `${m} ${t} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n` })),
        fc.tuple(fc.constantFrom(...PATHS), fc.constantFrom('x-request-id', 'content-type', 'content-length', 'transfer-encoding', 'date', 'authorization', 'x-sandbox-signature'), fc.stringMatching(/^[\x20-\x7e]{0,300}$/)).map(([p, h, v]) => ({
          label: `POST ${p} with ${h}: ${v.slice(0, 20)}`,
          raw: `POST ${p} HTTP/1.1\r\nHost: x\r\n${h}: ${v}\r\n${h === 'content-length' || h === 'transfer-encoding' ? '' : 'Content-Length: 2\r\n'}\r\n{}`,
        })),
        fc.constantFrom(...PATHS).map((p) => ({ label: `huge header to ${p}`, raw: `POST ${p} HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\nContent-Length: 0\r\n\r\n` })),
        fc.constantFrom(...PATHS).map((p) => ({ label: `chunked lie to ${p}`, raw: `POST ${p} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n` })),
        fc.stringMatching(/^[\x00-\x7f]{1,200}$/).map((junk) => ({ label: `junk instead of HTTP: ${JSON.stringify(junk)}`, raw: junk + '\r\n\r\n', mayClose: true })),
      ),
    );
    await fc.assert(
      fc.asyncProperty(caseArb, async (c: RawCase) => {
        const before = await fz.snapshot();
        const code = await rawRequest(fz.gateway.httpPort, c.raw);
        // Node's own parser answers what it cannot parse (400/431); the gateway answers the rest. Never a 5xx,
        // never a connection closed without an answer - except CONNECT, which Node closes when nobody tunnels,
        // and junk that never completes a request.
        const closedOk = code === 0 && (c.raw.startsWith('CONNECT ') || c.mayClose === true);
        assert.ok(closedOk || (code >= 200 && code < 500), `${c.label}: ${code}`);
        assertUnchanged(before, await fz.snapshot(), c.label);
      }),
      fuzzParams(),
    );
    await fz.assertAlive();
  });
});
