/**
 * QR images for `eticket.send` / `eticket.resend` (issue 3): where the order's supplier hands out a QR image
 * (Zhiyoubao QUERY_IMG_URL_REQ), the `taobao.send` work fetches it, uploads it with `qrcode.upload` and passes the
 * returned file name as `qr_images`, one per verify code. The file name is stored in the work item's payload before
 * the send is attempted, so a retried send reuses it instead of uploading again; a resend reuses the names its
 * order's earlier calls stored. The QR is an extra: when none can be had the codes still go out, without it.
 */
import { In, Not } from 'typeorm';
import type { FlowLog, SupplierLookup } from '../orders/order-ports';
import { TAOBAO_FLOW_WORK } from '../orders/order-ports';
import type { CodesCallPayload } from '../orders/order-codes';
import type { OrderEntity } from '../persistence/entities/order.entity';
import { WorkItemEntity } from '../persistence/entities/work-item.entity';
import { SupplierCallError, CapabilityNotSupportedError } from '../suppliers/supplier-adapter';
import type { WorkContext } from '../work/work-runner';
import type { QrcodeUploadResponse, TopOutcome } from './top-client';

/** `taobao.send` / `taobao.resend` payload once the QR file names are known (aligned with `codes`). */
export interface CodesWithQrPayload extends CodesCallPayload {
  readonly qrImages?: readonly string[];
}

export interface QrImageDeps {
  readonly suppliers: SupplierLookup;
  /** `TopClient.qrcodeUpload`. */
  readonly upload: (bytes: Uint8Array, fileName: string) => Promise<TopOutcome<QrcodeUploadResponse>>;
  /** Deadline of one image download (default 10 s). */
  readonly fetchTimeoutMs?: number;
  /** Attempts spent getting the image before the codes are sent without it (default 3). */
  readonly attempts?: number;
}

/** TOP refuses images of 300 KB or more. */
export const MAX_QR_IMAGE_BYTES = 300 * 1024;

export type QrImagesDecision =
  | { readonly kind: 'ready'; readonly qrImages: readonly string[] }
  /** No QR for this order (the supplier has none, or it could not be had in time): send the codes alone. */
  | { readonly kind: 'none'; readonly why: string }
  | { readonly kind: 'retry'; readonly error: string };

/**
 * The `qr_images` for this call. Order of preference: names stored in this item's payload (a retry), names an
 * earlier send/resend of the order stored for the same codes, a fresh upload of the supplier's image.
 */
export async function qrImagesFor(ctx: WorkContext<CodesWithQrPayload>, order: OrderEntity, deps: QrImageDeps, log: FlowLog): Promise<QrImagesDecision> {
  const codes = ctx.payload.codes.map((c) => c.code);
  const stored = ctx.payload.qrImages;
  if (stored && stored.length === codes.length) return { kind: 'ready', qrImages: stored };

  const known = await knownQrImages(ctx, order.id);
  if (codes.every((c) => known.has(c))) {
    const qrImages = codes.map((c) => known.get(c)!);
    await storeQrImages(ctx, qrImages);
    return { kind: 'ready', qrImages };
  }

  const adapter = order.supplier ? deps.suppliers.get(order.supplier) : undefined;
  if (!adapter || !adapter.capabilities.qrImage) return { kind: 'none', why: 'the supplier gives no QR image' };
  // The supplier's image is per order: it can be aligned with the codes only when there is one code.
  if (codes.length !== 1) return { kind: 'none', why: `one supplier image cannot align with ${codes.length} codes` };

  const maxAttempts = deps.attempts ?? 3;
  const giveUpOr = (error: string): QrImagesDecision => {
    if (ctx.attempt < maxAttempts) return { kind: 'retry', error: `QR image: ${error}` };
    log.warn({ orderId: order.id, attempt: ctx.attempt }, `QR image not obtained (${error}); codes are sent without it`);
    return { kind: 'none', why: error };
  };

  let url: string;
  try {
    url = await adapter.queryQrImageUrl(
      { ourOrderCode: order.id, supplierOrderId: order.supplierOrderId ?? '', supplierSubOrderIds: subOrderIds(order) },
      { signal: ctx.signal },
    );
  } catch (err) {
    if (err instanceof CapabilityNotSupportedError) return { kind: 'none', why: err.message };
    if (err instanceof SupplierCallError) return err.retryable ? giveUpOr(err.message) : { kind: 'none', why: err.message };
    throw err;
  }
  // The sandbox supplier's `sandbox://` links name no image anyone can download.
  if (!/^https?:\/\//i.test(url)) return { kind: 'none', why: 'the supplier image is not an http(s) URL' };

  const image = await downloadImage(url, ctx.signal, deps.fetchTimeoutMs ?? 10_000);
  if (!image.ok) return image.retryable ? giveUpOr(image.error) : { kind: 'none', why: image.error };

  const uploaded = await deps.upload(image.bytes, 'qrcode.png');
  if (uploaded.kind === 'ok') {
    const qrImages = [uploaded.body.imgFilename];
    await storeQrImages(ctx, qrImages);
    log.info({ orderId: order.id, bytes: image.bytes.length }, 'QR image uploaded to Taobao');
    return { kind: 'ready', qrImages };
  }
  const text = `qrcode.upload ${uploaded.code}${'subCode' in uploaded && uploaded.subCode ? ` ${uploaded.subCode}` : ''}: ${uploaded.message}`;
  return uploaded.kind === 'retryable' ? giveUpOr(text) : { kind: 'none', why: text };
}

type Download = { ok: true; bytes: Uint8Array } | { ok: false; retryable: boolean; error: string };

/** GET the image, bounded in time and size. 4xx and oversize images will not get better by retrying. */
async function downloadImage(url: string, signal: AbortSignal, timeoutMs: number): Promise<Download> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]), redirect: 'follow' });
  } catch (err) {
    const name = (err as { name?: string } | undefined)?.name;
    return { ok: false, retryable: true, error: name === 'TimeoutError' ? `no image within ${timeoutMs} ms` : 'image download failed' };
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    return { ok: false, retryable: res.status >= 500 || res.status === 429, error: `image download answered HTTP ${res.status}` };
  }
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared >= MAX_QR_IMAGE_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    return { ok: false, retryable: false, error: `image of ${declared} bytes is too large for Taobao` };
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body ?? []) {
      size += (chunk as Uint8Array).length;
      if (size >= MAX_QR_IMAGE_BYTES) return { ok: false, retryable: false, error: 'image is too large for Taobao' };
      chunks.push(chunk as Uint8Array);
    }
  } catch {
    return { ok: false, retryable: true, error: 'image download was cut off' };
  }
  if (size === 0) return { ok: false, retryable: true, error: 'image download was empty' };
  return { ok: true, bytes: Buffer.concat(chunks) };
}

/** code -> QR file name, from the order's earlier send/resend items that stored one. */
async function knownQrImages(ctx: WorkContext<CodesWithQrPayload>, orderId: string): Promise<Map<string, string>> {
  const rows = await ctx.db.read((em) =>
    em.find(WorkItemEntity, {
      select: { id: true, payload: true },
      where: { orderId, kind: In([TAOBAO_FLOW_WORK.taobaoSend, TAOBAO_FLOW_WORK.taobaoResend]), id: Not(ctx.item.id) },
      order: { id: 'ASC' },
    }),
  );
  const known = new Map<string, string>();
  for (const row of rows) {
    let p: Partial<CodesWithQrPayload>;
    try {
      p = JSON.parse(row.payload) as Partial<CodesWithQrPayload>;
    } catch {
      continue;
    }
    if (!p.codes || !p.qrImages || p.qrImages.length !== p.codes.length) continue;
    p.codes.forEach((c, i) => known.set(c.code, p.qrImages![i]!));
  }
  return known;
}

/** Records the names on this work item, so a retry (or a crash and re-run) never uploads again. */
async function storeQrImages(ctx: WorkContext<CodesWithQrPayload>, qrImages: readonly string[]): Promise<void> {
  const payload: CodesWithQrPayload = { ...ctx.payload, qrImages };
  await ctx.db.transaction((em) => em.update(WorkItemEntity, { id: ctx.item.id }, { payload: JSON.stringify(payload) }));
}

function subOrderIds(order: OrderEntity): string[] | undefined {
  if (!order.supplierSubOrderIds) return undefined;
  try {
    const ids = JSON.parse(order.supplierSubOrderIds) as unknown;
    return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : undefined;
  } catch {
    return undefined;
  }
}
