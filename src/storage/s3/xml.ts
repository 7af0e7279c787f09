/**
 * The two XML documents the reader gets from S3, parsed by hand: `ListBucketResult` (ListObjectsV2) and `Error`.
 * Both are flat, element-only and attribute-free below the root, so a scan for the few elements read is enough; no
 * general XML parser (and none of its entity expansion) is needed. A document type declaration is refused, the five
 * predefined entities and character references are decoded, anything else makes the document invalid.
 *
 * Samples (Ceph RGW 16.2, AWS S3):
 *   <ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>docker/</Prefix>
 *     <KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><IsTruncated>false</IsTruncated>
 *     <EncodingType>url</EncodingType><Contents><Key>docker/a</Key><LastModified>2026-12-07T02:33:56.357Z</LastModified>
 *     <ETag>&quot;5d41…&quot;</ETag><Size>5</Size><StorageClass>STANDARD</StorageClass></Contents>
 *     <CommonPrefixes><Prefix>docker/registry/</Prefix></CommonPrefixes></ListBucketResult>
 *   <Error><Code>NoSuchKey</Code><Message></Message><BucketName>b</BucketName><RequestId>tx00…</RequestId></Error>
 */

export interface ListedObject {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly lastModified: string;
}

export interface ListPage {
  readonly objects: ListedObject[];
  /** With a delimiter: the "directories" one level down, each ending in the delimiter. */
  readonly prefixes: string[];
  /** Present when the listing goes on: pass it as `continuationToken` for the next page. */
  readonly nextContinuationToken: string | undefined;
}

export interface S3ErrorBody {
  readonly code: string | undefined;
  readonly message: string | undefined;
  readonly region: string | undefined;
  readonly requestId: string | undefined;
}

export class XmlFormatError extends Error {}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeText(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);|&/g, (whole, name: string | undefined) => {
    if (name === undefined) throw new XmlFormatError('a bare & in S3 XML');
    if (name.startsWith('#')) {
      const code = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
      if (!(code > 0 && code <= 0x10ffff)) throw new XmlFormatError(`bad character reference ${whole}`);
      return String.fromCodePoint(code);
    }
    const value = ENTITIES[name];
    if (value === undefined) throw new XmlFormatError(`unknown entity ${whole}`);
    return value;
  });
}

/** The text of the first `<name>` in `xml`, decoded; undefined if absent. Elements read here never nest themselves. */
function element(xml: string, name: string): string | undefined {
  const open = xml.indexOf(`<${name}>`);
  if (open === -1) return xml.includes(`<${name}/>`) ? '' : undefined;
  const start = open + name.length + 2;
  const end = xml.indexOf(`</${name}>`, start);
  if (end === -1) throw new XmlFormatError(`<${name}> is not closed`);
  return decodeText(xml.slice(start, end));
}

function blocks(xml: string, name: string): string[] {
  const out: string[] = [];
  const open = `<${name}>`;
  const close = `</${name}>`;
  for (let at = xml.indexOf(open); at !== -1; at = xml.indexOf(open, at)) {
    const end = xml.indexOf(close, at);
    if (end === -1) throw new XmlFormatError(`<${name}> is not closed`);
    out.push(xml.slice(at + open.length, end));
    at = end + close.length;
  }
  return out;
}

function checkRoot(xml: string, root: string): void {
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new XmlFormatError('S3 XML with a document type declaration');
  const body = xml.replace(/^\uFEFF?\s*(<\?xml[^>]*\?>)?\s*/, '');
  if (!body.startsWith(`<${root}>`) && !body.startsWith(`<${root} `)) throw new XmlFormatError(`not an S3 <${root}> document`);
}

/** `encoding-type=url` keys: form encoding, `+` for a space (what AWS sends; Go's url.QueryUnescape reads it the same way). */
function urlDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    throw new XmlFormatError(`a key that is not URL-encoded: ${JSON.stringify(text.slice(0, 80))}`);
  }
}

export function parseListPage(xml: string): ListPage {
  checkRoot(xml, 'ListBucketResult');
  // Contents and CommonPrefixes are cut out first: the top-level Prefix and the prefixes' Prefix share a name.
  const contents = blocks(xml, 'Contents');
  const common = blocks(xml, 'CommonPrefixes');
  const decode = element(xml, 'EncodingType') === 'url' ? urlDecode : (t: string) => t;
  const objects = contents.map((c): ListedObject => {
    const key = element(c, 'Key');
    const size = element(c, 'Size');
    if (key === undefined || size === undefined || !/^\d+$/.test(size)) throw new XmlFormatError('a listed object without a key or size');
    return { key: decode(key), size: Number(size), etag: element(c, 'ETag') ?? '', lastModified: element(c, 'LastModified') ?? '' };
  });
  const prefixes = common.map((c) => {
    const prefix = element(c, 'Prefix');
    if (prefix === undefined) throw new XmlFormatError('a common prefix without <Prefix>');
    return decode(prefix);
  });
  const truncated = element(xml, 'IsTruncated') === 'true';
  const token = element(xml, 'NextContinuationToken');
  if (truncated && !token) throw new XmlFormatError('a truncated listing without <NextContinuationToken>');
  return { objects, prefixes, nextContinuationToken: truncated ? token : undefined };
}

/** The fields of an `<Error>` body; every field undefined for a body that is not one (a proxy's page, an empty body). */
export function parseErrorBody(xml: string): S3ErrorBody {
  try {
    checkRoot(xml, 'Error');
    return { code: element(xml, 'Code') || undefined, message: element(xml, 'Message') || undefined, region: element(xml, 'Region') || undefined, requestId: element(xml, 'RequestId') || undefined };
  } catch {
    return { code: undefined, message: undefined, region: undefined, requestId: undefined };
  }
}
