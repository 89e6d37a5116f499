import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { AppError } from '../lib/errors.ts';
import { OutboundBlockedError, unreachable, type OutboundPolicy } from '../lib/outbound.ts';

export interface GetOptions {
  /** Where requests may connect (every hop of a redirect too). */
  outbound: OutboundPolicy;
  timeoutMs: number;
  signal: AbortSignal;
  /** Sent to the URL's own origin only, never to another one a redirect leads to. */
  headers?: Record<string, string>;
}

const MAX_REDIRECTS = 5;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

const where = (url: URL) => `${url.origin}${url.pathname}`;

/**
 * GET of an external source's URL through the outbound guard (src/lib/outbound.ts): http(s) only,
 * at most 5 redirects (each hop connected through the same guard), a deadline for the answer
 * and for each pause in the body. Resolves with the body stream of a 200 answer and the URL that
 * gave it (where the redirects led).
 */
export async function httpGet(url: URL, opts: GetOptions): Promise<{ body: Readable; url: URL }> {
  let target = url;
  for (let hops = 0; ; hops++) {
    if (target.protocol !== 'http:' && target.protocol !== 'https:') {
      throw new AppError(
        'bad_request',
        `'${target.protocol}' URLs are not fetched (http or https only)${hops > 0 ? `; ${where(url)} redirected to one` : ''}`,
      );
    }
    const answer = await getOnce(target, { ...opts, headers: target.origin === url.origin ? opts.headers : undefined });
    if (!('location' in answer)) return { body: answer, url: target };
    if (hops === MAX_REDIRECTS) throw new AppError('bad_request', `${where(url)} redirected more than ${MAX_REDIRECTS} times`);
    const next = URL.parse(answer.location, target.href);
    if (next === null) throw new AppError('bad_request', `${where(target)} redirected to something that is not a URL`);
    target = next;
  }
}

/** One GET: the body of a 200, or where a redirect points. */
function getOnce(url: URL, opts: GetOptions): Promise<Readable | { location: string }> {
  const client = url.protocol === 'https:' ? https : http;
  const attempt = (): Promise<Readable | { location: string }> =>
    new Promise((resolve, reject) => {
      let answered = false;
      const req = client.get(
        url,
        { agent: opts.outbound.sharedAgent(url.protocol), headers: opts.headers, timeout: opts.timeoutMs, signal: opts.signal },
        (res) => {
          answered = true;
          const status = res.statusCode ?? 0;
          const location = res.headers.location;
          if (REDIRECTS.has(status) && location) {
            res.resume();
            return resolve({ location });
          }
          if (status !== 200) {
            res.resume();
            const message = `${where(url)} answered HTTP ${status}`;
            // A 4xx is the source's settings (a wrong URL or key): trying again will not help; a 5xx may pass.
            return reject(status >= 400 && status < 500 ? new AppError('bad_request', message) : new Error(message));
          }
          res.setTimeout(opts.timeoutMs, () => res.destroy(new Error(`${where(url)} stopped sending for ${opts.timeoutMs / 1000} s`)));
          resolve(res);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the server closed while it sat idle (say, while a big manifest was
        // being checked) fails the first request sent on it: as Node's documentation advises, such a
        // GET is sent again, on another connection.
        if (!answered && req.reusedSocket && err.code === 'ECONNRESET' && !opts.signal.aborted) resolve(attempt());
        else if (answered || opts.signal.aborted || err instanceof OutboundBlockedError) reject(err);
        else reject(unreachable(where(url), err));
      });
    });
  return attempt();
}
