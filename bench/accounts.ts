import { createPgDatabase, postgresUnavailableReason } from '../test/helpers/databases.ts';
import { freePort, load, loginToken, median, percentile, round, startProcess, startYunji, type LoadResult, type Proc } from './lib.ts';

/**
 * Issue 2's targets: GET /api/auth/session at 50 connections vs a bare Fastify route returning the
 * same JSON (≥ 0.5× on SQLite), and /healthz p99 < 50 ms while 20 logins run concurrently.
 */
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 50;

/**
 * Yunji and the bare peer measured in alternating rounds (this machine's speed drifts between runs
 * by as much as 2×, so a single pair is noise); the ratio reported is the median of the per-round
 * ratios.
 */
async function sessionVersusBare(yunji: Proc, bare: Proc, token: string) {
  const headers = { authorization: `Bearer ${token}` };
  const rounds: { bare: LoadResult; yunji: LoadResult; ratio: number }[] = [];
  await load(`${bare.url}/api/auth/session`, { connections: CONNECTIONS, duration: 2 });
  await load(`${yunji.url}/api/auth/session`, { connections: CONNECTIONS, duration: 2, headers });
  for (let i = 0; i < ROUNDS; i++) {
    const b = await load(`${bare.url}/api/auth/session`, { connections: CONNECTIONS, duration: DURATION });
    const y = await load(`${yunji.url}/api/auth/session`, { connections: CONNECTIONS, duration: DURATION, headers });
    rounds.push({ bare: b, yunji: y, ratio: round(y.rps / b.rps) });
  }
  return {
    bareRps: median(rounds.map((r) => r.bare.rps)),
    yunjiRps: median(rounds.map((r) => r.yunji.rps)),
    yunjiP99: median(rounds.map((r) => r.yunji.p99)),
    ratio: median(rounds.map((r) => r.ratio)),
    failures: rounds.reduce((n, r) => n + r.yunji.errors + r.yunji.non2xx + r.bare.errors + r.bare.non2xx, 0),
    rounds,
    yunjiPeakRssMiB: yunji.peakRssMiB(),
    barePeakRssMiB: bare.peakRssMiB(),
  };
}

async function healthSampler(url: string, stop: () => boolean): Promise<number[]> {
  const samples: number[] = [];
  while (!stop()) {
    const t = performance.now();
    await fetch(`${url}/healthz`).then((r) => r.arrayBuffer());
    samples.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 10));
  }
  return samples.sort((a, b) => a - b);
}

async function loginLatency(yunji: Proc) {
  const baselineEnd = Date.now() + 3000;
  const baseline = await healthSampler(yunji.url, () => Date.now() > baselineEnd);
  const end = Date.now() + 5000;
  let logins = 0;
  const loop = async () => {
    while (Date.now() < end) {
      await loginToken(yunji.url);
      logins++;
    }
  };
  const [loaded] = await Promise.all([healthSampler(yunji.url, () => Date.now() > end), ...Array.from({ length: 20 }, loop)]);
  return {
    baseline: { p50: round(percentile(baseline, 50)), p99: round(percentile(baseline, 99)) },
    underLogins: {
      p50: round(percentile(loaded, 50)),
      p99: round(percentile(loaded, 99)),
      max: round(loaded[loaded.length - 1] ?? NaN),
      samples: loaded.length,
    },
    loginsPerSecond: round(logins / 5, 1),
  };
}

async function startBare(body: string): Promise<Proc> {
  const port = await freePort();
  return startProcess('bench/peers/bare-fastify.ts', [], { PORT: String(port), BODY: body }, port);
}

export async function accountsBench(): Promise<Record<string, unknown>> {
  // Twenty logins of one account in flight hold twenty throttle attempts at once (each is counted
  // before its password is verified); past the default limit of 10 some would be refused with 429.
  const yunji = await startYunji('', { YUNJI_LOGIN_MAX_FAILURES: '100' });
  const token = await loginToken(yunji.url);
  const body = await (await fetch(`${yunji.url}/api/auth/session`, { headers: { authorization: `Bearer ${token}` } })).text();
  const bare = await startBare(body);
  const results: Record<string, unknown> = { connections: CONNECTIONS, durationSeconds: DURATION, rounds: ROUNDS };
  try {
    results.sessionSqlite = await sessionVersusBare(yunji, bare, token);
    results.loginLatency = await loginLatency(yunji);
    await yunji.stop();

    const pgSkip = await postgresUnavailableReason();
    if (pgSkip) {
      results.sessionPostgres = `skipped: ${pgSkip}`;
    } else {
      const pgDb = await createPgDatabase();
      const onPg = await startYunji(pgDb.url);
      try {
        results.sessionPostgres = await sessionVersusBare(onPg, bare, await loginToken(onPg.url));
      } finally {
        await onPg.stop();
        await pgDb.drop();
      }
    }
  } finally {
    await yunji.stop();
    await bare.stop();
  }
  return results;
}
