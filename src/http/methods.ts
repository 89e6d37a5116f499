import FindMyWay, { type HTTPMethod } from 'find-my-way';
import type { FastifyInstance } from 'fastify';

/**
 * Remembers every registered (method, path) so a request for a known path with the wrong method
 * can be answered 405 with an `Allow` header, instead of Fastify's plain 404.
 */
export function trackRouteMethods(app: FastifyInstance): (method: string, url: string) => string[] {
  const router = FindMyWay({ ignoreTrailingSlash: false });
  const methods = new Set<string>();
  app.addHook('onRoute', (route) => {
    for (const m of ([] as string[]).concat(route.method)) {
      methods.add(m);
      try {
        router.on(m as HTTPMethod, route.url, () => {});
      } catch {
        // Already known (Fastify registers HEAD beside GET); nothing to add.
      }
    }
  });
  return (method, url) => {
    const path = url.split('?')[0] ?? url;
    return [...methods].filter((m) => m !== method && router.find(m as HTTPMethod, path) !== null);
  };
}
