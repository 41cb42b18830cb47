/** The one way adapters call a supplier over HTTP: global fetch, a real abort, faults classified. */
import iconv from 'iconv-lite';
import { SupplierCallError } from './supplier-errors';

export interface SupplierHttpRequest {
  readonly supplier: string;
  readonly operation: string;
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The adapter's own ceiling; the caller's signal may fire sooner. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface SupplierHttpResponse {
  readonly status: number;
  readonly text: string;
}

/** Refused connections never reached the supplier, so they are not ambiguous. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);

export async function postToSupplier(req: SupplierHttpRequest): Promise<SupplierHttpResponse> {
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  const fail = (init: Omit<ConstructorParameters<typeof SupplierCallError>[1], 'operation'>) =>
    new SupplierCallError(req.supplier, { operation: req.operation, ...init });

  if (signal.aborted) {
    throw fail({ failure: 'timeout', retryable: true, ambiguous: false, message: 'deadline passed before sending' });
  }

  let response: Response;
  let bytes: Buffer;
  try {
    response = await fetch(req.url, { method: 'POST', headers: req.headers, body: req.body, signal, redirect: 'error' });
    // Reading the body is bounded by the same signal.
    bytes = Buffer.from(await response.arrayBuffer());
  } catch (err) {
    if (signal.aborted) {
      throw fail({ failure: 'timeout', retryable: true, ambiguous: true, message: 'aborted at deadline', cause: err });
    }
    const code = errorCode(err);
    throw fail({
      failure: 'network',
      retryable: true,
      ambiguous: !(code && NOT_SENT_CODES.has(code)),
      message: `network failure${code ? ` (${code})` : ''}`,
      cause: err,
    });
  }

  if (response.status >= 500 || response.status === 429) {
    throw fail({
      failure: 'http_status',
      retryable: true,
      ambiguous: response.status >= 500,
      httpStatus: response.status,
      message: `HTTP ${response.status}`,
    });
  }
  if (response.status < 200 || response.status >= 300) {
    throw fail({
      failure: 'http_status',
      retryable: false,
      ambiguous: false,
      httpStatus: response.status,
      message: `HTTP ${response.status}`,
    });
  }
  return { status: response.status, text: decodeBody(bytes, response.headers.get('content-type')) };
}

function decodeBody(bytes: Buffer, contentType: string | null): string {
  const charset = /charset=([^;\s]+)/i.exec(contentType ?? '')?.[1]?.toLowerCase();
  if (charset && charset !== 'utf-8' && charset !== 'utf8' && iconv.encodingExists(charset)) {
    return iconv.decode(bytes, charset);
  }
  return bytes.toString('utf8');
}

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Integer fen to a decimal yuan string ("12.50"), never through floating point. */
export function fenToYuan(fen: number): string {
  if (!Number.isSafeInteger(fen) || fen < 0) throw new RangeError(`invalid fen amount ${fen}`);
  return `${Math.floor(fen / 100)}.${String(fen % 100).padStart(2, '0')}`;
}
