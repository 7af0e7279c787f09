import { getGlobalDispatcher, type Dispatcher } from 'undici';

export type RequestUrlOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path'> & { readonly dispatcher?: Dispatcher };

/**
 * undici's `request(url, options)`, through the Dispatcher API: on `dispatcher`, or undici's global one when none is
 * given. The bundle carries undici's dispatchers and their request API but not the package's top-level helpers
 * (scripts/undici-subset.cjs), so the program sends every request through a dispatcher's own method.
 */
export function requestUrl(url: URL | string, options: RequestUrlOptions): Promise<Dispatcher.ResponseData> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const { dispatcher = getGlobalDispatcher(), ...rest } = options;
  return dispatcher.request({ ...rest, origin: target.origin, path: `${target.pathname}${target.search}` });
}
