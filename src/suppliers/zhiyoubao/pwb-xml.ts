/**
 * Zhiyoubao PWB wire format: `PWBRequest` XML posted as form fields `xmlMsg` + `sign`,
 * `sign = lower(hex(md5("xmlMsg=" + xml + privateKey)))`, answered by a `PWBResponse` XML.
 * Parsing is hardened: no DOCTYPE, no entity expansion beyond the five XML built-ins.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';

export function md5Hex(text: string): string {
  return createHash('md5').update(text, 'utf8').digest('hex');
}

export function signXmlMsg(xmlMsg: string, privateKey: string): string {
  return md5Hex(`xmlMsg=${xmlMsg}${privateKey}`);
}

/** Constant-time comparison of two hex signatures, case-insensitive. */
export function sameHexSignature(expected: string, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected.toLowerCase(), 'utf8');
  const b = Buffer.from(given.toLowerCase(), 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface PwbIdentity {
  readonly corpCode: string;
  readonly userName: string;
}

/** Element content in document order; arrays repeat the element. */
export type XmlContent = { [tag: string]: XmlContent | XmlContent[] | string | number };

const builder = new XMLBuilder({ suppressEmptyNode: false, processEntities: true });

/** Builds the PWBRequest envelope; `requestTime` is `yyyy-MM-dd HH:mm:ss` in GMT+8. */
export function buildPwbRequest(
  transactionName: string,
  identity: PwbIdentity,
  requestTime: string,
  body: XmlContent,
  application = 'SendCode',
): string {
  return builder.build({
    PWBRequest: {
      transactionName,
      header: { application, requestTime },
      identityInfo: { corpCode: identity.corpCode, userName: identity.userName },
      ...body,
    },
  }) as string;
}

/** Formats an instant as `yyyy-MM-dd HH:mm:ss` in the business time zone (GMT+8). */
export function formatBusinessTime(epochMs: number): string {
  const d = new Date(epochMs + 8 * 3600_000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

export class PwbXmlError extends Error {
  override name = 'PwbXmlError';
}

/** Elements that may repeat: always parsed as arrays so one and many look the same. */
const REPEATING = new Set(['ticketOrder', 'subOrder', 'subOrderCheckRecord', 'credential', 'scenicOrder']);

const BUILTIN_ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Decodes only the XML built-in and numeric character references; anything else stays literal. */
export function decodeXmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#\d+|[a-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return safeCodePoint(parseInt(ref.slice(2), 16)) ?? whole;
    if (ref.startsWith('#')) return safeCodePoint(parseInt(ref.slice(1), 10)) ?? whole;
    return BUILTIN_ENTITIES[ref] ?? whole;
  });
}

function safeCodePoint(cp: number): string | undefined {
  return Number.isInteger(cp) && cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : undefined;
}

const parser = new XMLParser({
  processEntities: false,
  htmlEntities: false,
  parseTagValue: false,
  parseAttributeValue: false,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  trimValues: true,
  isArray: (name) => REPEATING.has(name),
  tagValueProcessor: (_name, value) => decodeXmlText(value),
});

export type XmlNode = string | XmlNode[] | { [tag: string]: XmlNode };

/** Parses a document whose root must be `rootName`. Throws PwbXmlError for anything untrustworthy. */
export function parseXmlDocument(text: string, rootName: string): Record<string, XmlNode> {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new PwbXmlError('DOCTYPE/ENTITY declarations are refused');
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new PwbXmlError(`not well-formed XML (line ${valid.err.line})`);
  const doc = parser.parse(text) as Record<string, XmlNode>;
  const root = doc[rootName];
  if (root === undefined || typeof root !== 'object' || Array.isArray(root)) {
    throw new PwbXmlError(`root element is not <${rootName}>`);
  }
  return root;
}

export interface PwbResponse {
  readonly transactionName: string;
  readonly code: number;
  readonly description: string;
  readonly root: Record<string, XmlNode>;
}

export function parsePwbResponse(text: string): PwbResponse {
  const root = parseXmlDocument(text, 'PWBResponse');
  const code = root['code'];
  if (typeof code !== 'string' || !/^-?\d+$/.test(code)) throw new PwbXmlError('PWBResponse has no numeric <code>');
  const transactionName = typeof root['transactionName'] === 'string' ? root['transactionName'] : '';
  const description = typeof root['description'] === 'string' ? root['description'] : '';
  return { transactionName, code: Number(code), description, root };
}

/** Finds the first element named `tag` within `depth` levels (response layouts vary between versions). */
export function findElement(node: XmlNode | undefined, tag: string, depth = 4): XmlNode | undefined {
  if (node === undefined || depth < 0 || typeof node === 'string') return undefined;
  if (Array.isArray(node)) {
    for (const item of node) {
      const hit = findElement(item, tag, depth);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }
  if (Object.prototype.hasOwnProperty.call(node, tag)) return node[tag];
  for (const child of Object.values(node)) {
    const hit = findElement(child, tag, depth - 1);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

export function textOf(node: XmlNode | undefined): string | undefined {
  return typeof node === 'string' ? node : undefined;
}

export function asList(node: XmlNode | undefined): Array<Record<string, XmlNode>> {
  if (node === undefined || typeof node === 'string') return [];
  const items = Array.isArray(node) ? node : [node];
  return items.filter((i): i is Record<string, XmlNode> => typeof i === 'object' && i !== null && !Array.isArray(i));
}
