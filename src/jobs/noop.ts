import { Type } from '@sinclair/typebox';
import { defineAction } from './actions.ts';

/**
 * A job that does nothing for `ms` milliseconds (cancellable), optionally failing its first
 * `failAttempts` runs: for checking that workers run, for the job benchmark, and for trying
 * retries, cancels and webhooks without touching data.
 */
const NoopParams = Type.Object(
  {
    ms: Type.Integer({ minimum: 0, maximum: 3_600_000, default: 0, description: 'How long the job runs.' }),
    failAttempts: Type.Integer({ minimum: 0, maximum: 10, default: 0, description: 'Attempts that fail before one succeeds.' }),
  },
  { additionalProperties: false },
);

export const noop = defineAction(NoopParams, {
  name: 'noop',
  family: 'job',
  direct: { role: 'member' },
  maxAttempts: 3,
  describe: (p) => (p.ms > 0 ? `Wait ${p.ms} ms` : 'Do nothing'),
  async run(ctx) {
    const { ms, failAttempts } = ctx.params;
    ctx.log(`attempt ${ctx.job.attempts}`);
    if (ms > 0) {
      const steps = Math.min(10, Math.ceil(ms / 100));
      for (let i = 0; i < steps; i++) {
        // A signal that fired already never fires its listeners again: check first.
        ctx.checkpoint();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms / steps);
          ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        ctx.checkpoint();
        ctx.progress(i + 1, steps, `waited ${Math.round(((i + 1) * ms) / steps)} ms`);
      }
    }
    if (ctx.job.attempts <= failAttempts) throw new Error(`failing attempt ${ctx.job.attempts} of the first ${failAttempts}, as asked`);
    return { attempts: ctx.job.attempts };
  },
});
