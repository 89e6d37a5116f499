import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Readable } from 'node:stream';
import { AppError } from '../errors.ts';
import { guardedLookup, isPrivateAddress } from '../jobs/webhooks.ts';

/**
 * GET of an external source's URL: http(s) only, loopback and private addresses refused unless
 * allowed (checked when connecting, so DNS cannot point elsewhere later), a deadline for the
 * answer and for each pause in the body. Resolves with the body stream of a 200 answer.
 */
export function httpGet(url: URL, opts: { timeoutMs: number; allowPrivate: boolean; signal: AbortSignal; headers?: Record<string, string> }): Promise<Readable> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new Error(`'${url.protocol}' URLs are not fetched (http or https only)`));
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!opts.allowPrivate && isIP(host) && isPrivateAddress(host)) {
    return Promise.reject(new Error(`${host} is a loopback, private or link-local address; sources there need YUNJI_WEBHOOK_ALLOW_PRIVATE=1`));
  }
  const client = url.protocol === 'https:' ? https : http;
  const attempt = (): Promise<Readable> =>
    new Promise((resolve, reject) => {
      let answered = false;
      const req = client.get(url, { headers: opts.headers, lookup: guardedLookup(opts.allowPrivate), timeout: opts.timeoutMs, signal: opts.signal }, (res) => {
        answered = true;
        if (res.statusCode !== 200) {
          res.resume();
          const message = `${url.origin}${url.pathname} answered HTTP ${res.statusCode}`;
          // A 4xx is the source's settings (a wrong URL or key): trying again will not help; a 5xx may pass.
          const status = res.statusCode ?? 0;
          return reject(status >= 400 && status < 500 ? new AppError('bad_request', message) : new Error(message));
        }
        res.setTimeout(opts.timeoutMs, () => res.destroy(new Error(`${url.origin}${url.pathname} stopped sending for ${opts.timeoutMs / 1000} s`)));
        resolve(res);
      });
      req.on('timeout', () => req.destroy(new Error(`${url.origin}${url.pathname} did not answer within ${opts.timeoutMs / 1000} s`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive connection the server closed while it sat idle (say, while a big manifest was
        // being checked) fails the first request sent on it: as Node's documentation advises, such a
        // GET is sent again, on another connection.
        if (!answered && req.reusedSocket && err.code === 'ECONNRESET' && !opts.signal.aborted) resolve(attempt());
        else reject(err);
      });
    });
  return attempt();
}
