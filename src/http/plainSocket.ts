import type { Socket } from 'node:net';

/** A connection as Node holds it: its libuv handle, which the native module's socket work needs. */
export type PlainSocket = Socket & { encrypted?: boolean; _handle?: { fd?: unknown; readStop?: () => number; readStart?: () => number } | null };

/**
 * The connection's descriptor, when the bytes on it are the HTTP bytes themselves (plain TCP, not
 * TLS) and it is still open. Looked up again before each use: a closed connection's number may
 * already name another file.
 */
export function plainSocketFd(socket: PlainSocket | null | undefined): number | undefined {
  if (!socket || socket.destroyed || socket.encrypted !== undefined) return undefined;
  const fd = socket._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
