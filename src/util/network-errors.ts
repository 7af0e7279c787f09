/** Network failures worth another attempt: the connection was refused, reset, cut or timed out. TLS and DNS failures are not. */
const TRANSIENT_NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

/** Whether a request that got no (complete) answer may be repeated: its error, or the error's cause, is a transient network code. */
export function isTransientNetworkError(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  const causeCode = (err as { cause?: { code?: string } } | undefined)?.cause?.code;
  return (code !== undefined && TRANSIENT_NETWORK_CODES.has(code)) || (causeCode !== undefined && TRANSIENT_NETWORK_CODES.has(causeCode));
}
