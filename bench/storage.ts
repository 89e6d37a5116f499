import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { createPgDatabase, postgresUnavailableReason } from '../test/helpers/databases.ts';
import { cpuSecondsOf, loginMeasured, median, ROOT, round, startYunji, stopChild, type Proc } from './lib.ts';

/**
 * Issue 3's data-plane targets, side by side with `cp` on the same disk:
 * one large object up and down through /v1 on the local space (≥ 0.5× / ≥ 0.7× cp's throughput,
 * server RSS < 200 MB), and many small uploads at concurrency 16 (≥ 1,500 objects/s on SQLite).
 * Each is measured on two servers in the same run: with the native module where it was built, and
 * with `YUNJI_NATIVE=off` (pure Node, `portable`), whose figures must stay within 1.5× (issue 27).
 */
const BIG_MIB = Number(process.env.BENCH_BIG_MIB ?? 1024);
const SMALL_COUNT = Number(process.env.BENCH_SMALL_COUNT ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const SPLICE_CLIENT = join(ROOT, 'bench', 'peers', 'splice-download.py');
const SENDFILE_SERVER = join(ROOT, 'bench', 'peers', 'sendfile-server.py');
const RECEIVE_SERVER = join(ROOT, 'bench', 'peers', 'receive-server.py');
/** The pure-Node server's setting. */
const PORTABLE = { YUNJI_NATIVE: 'off' };

export async function setup(proc: Proc) {
  const { token, loginPeakRssMiB } = await loginMeasured(proc);
  const post = async <T>(path: string, body: unknown) =>
    ((await (await fetch(proc.url + path, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })).json()) as { data: T }).data;
  const { bucketID } = (await post<{ bucket: { bucketID: number } }>('/v1/bucket/create', { name: 'bench' })).bucket;
  const { packageID } = (await post<{ package: { packageID: number } }>('/v1/package/create', { bucketID, name: 'p' })).package;
  return { token, packageID, loginPeakRssMiB };
}

export const curl = (args: string[]) => execFileSync('curl', ['--silent', '--show-error', '--fail-with-body', ...args], { maxBuffer: 1 << 20 }).toString();

/** Uploads the file `source` into `packageID` as one multipart request, with curl; the uploaded object. */
export function curlUpload(url: string, token: string, packageID: number, source: string): { objectID: number; fileHash: string } {
  const answer = JSON.parse(
    // `Expect:` off: curl would otherwise wait for a 100 Continue before sending a large body.
    curl(['--header', `authorization: Bearer ${token}`, '--header', 'Expect:', '--form-string', `info=${JSON.stringify({ packageID })}`, '--form', `files=@${source};filename=big.bin`, `${url}/v1/object/upload`]),
  ) as { data: { uploadeds: { objectID: number; fileHash: string }[] } };
  return answer.data.uploadeds[0]!;
}

/** A peer server of bench/peers (`script` with `arg`), once it listens: its port and how to stop it. */
async function startPeerServer(script: string, arg: string): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn('python3', [script, arg], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${script} exited (${code}) before it listened`)));
    child.stdout!.once('data', (line: Buffer) => resolve(Number(line.toString().trim())));
  });
  return { port, stop: () => stopChild(child) };
}

/** A file's SHA-256 in upper-case hex, as `fileHash` spells it after `Full`. */
const sha256Of = (path: string) => execFileSync('sha256sum', [path]).toString().slice(0, 64).toUpperCase();

type BigTransfer = 'upload' | 'uploadPortable' | 'curlUploadToReceiver' | 'download' | 'downloadPortable' | 'spliceDownload' | 'curlAlone' | 'curlFromSendfileServer';

/** One round of the big object: every cp's seconds, each transfer's, and Yunji's CPU seconds during each (next to none in those it has no part in). */
interface BigObjectRound {
  cpSeconds: number[];
  seconds: Record<BigTransfer, number>;
  serverCpuS: Record<BigTransfer, number>;
}

/**
 * The big object goes up and down with curl, a native client (as most users would send it), so
 * the two shared cores spend their time on the server, not on a JavaScript client. Each round
 * also downloads it with bench/peers/splice-download.py, whose writes to the file are kernel
 * copies like cp's (curl's own small writes cost it more than the whole of cp here), and lets curl
 * copy the file with no server at all (`curlAloneRatio`), and download it from
 * bench/peers/sendfile-server.py, a server that costs next to nothing (`curlFromSendfileServerRatio`:
 * the most a curl download over HTTP could reach, whatever the server). Likewise each round uploads
 * the file with curl to bench/peers/receive-server.py, which reads the body in 1 MiB pieces, writes
 * it and hashes it on a second thread, and nothing else (`curlUploadToReceiverRatio`: about the most
 * a curl upload that is stored and hashed could reach here).
 * `cp` of the same file is timed just before each of these transfers, since this disk's speed moves
 * by 2× from minute to minute, and each round starts the uploads and the downloads at a different
 * one; each ratio is the median cp's time over the median transfer's, in `BENCH_ROUNDS` (default
 * 5) rounds.
 */
async function bigObject(dir: string) {
  const source = join(dir, 'big.bin');
  const fd = openSync(source, 'w');
  execFileSync('head', ['-c', `${BIG_MIB}M`, '/dev/urandom'], { stdio: ['ignore', fd, 'ignore'] });
  closeSync(fd);
  // Written back before any round, so the first cp does not also pay for the source's writeback.
  execFileSync('sync');
  const bytes = statSync(source).size;
  const seconds = (t: number) => (performance.now() - t) / 1000;
  const mib = bytes / 1048576;

  const yunji = await startYunji('', { YUNJI_DATA_DIR: join(dir, 'data') });
  const portable = await startYunji('', { YUNJI_DATA_DIR: join(dir, 'data-portable'), ...PORTABLE });
  const sendfileServer = await startPeerServer(SENDFILE_SERVER, source);
  const sendfilePort = sendfileServer.port;
  const receiveDir = mkdtempSync(join(dir, 'received-'));
  const receiveServer = await startPeerServer(RECEIVE_SERVER, receiveDir);
  try {
    const { token, packageID, loginPeakRssMiB } = await setup(yunji);
    const auth = ['--header', `authorization: Bearer ${token}`];
    const portableSide = await setup(portable);
    const rounds: BigObjectRound[] = [];
    // The servers' CPU time per transfer: a run where garbage collection went wrong shows here first.
    const serverCpu = () => cpuSecondsOf(yunji.child.pid) + cpuSecondsOf(portable.child.pid);
    /**
     * Runs `transfer` to the end of its writeback: its result, seconds and the server's CPU seconds.
     * A client that times itself (`ownSeconds`) is counted from that, so its process's start is not
     * taken for transfer time.
     */
    const timed = <T>(transfer: () => T, ownSeconds?: (value: T) => number) => {
      const started = performance.now();
      const cpuBefore = serverCpu();
      const value = transfer();
      const transferred = performance.now();
      execFileSync('sync');
      const transferSeconds = ownSeconds ? ownSeconds(value) : (transferred - started) / 1000;
      if (!(transferSeconds > 0)) throw new Error(`a transfer took ${transferSeconds} s`);
      return { value, seconds: transferSeconds + seconds(transferred), serverCpuS: round(serverCpu() - cpuBefore) };
    };
    const down = join(dir, 'down.bin');
    /** The source's SHA-256 this round; the first round's downloads are compared with it too (after their timing). */
    let sourceHash = '';
    /** One download into `down` by `client`. */
    const download = <T>(client: () => T, ownSeconds?: (value: T) => number) => {
      const result = timed(client, ownSeconds);
      if (statSync(down).size !== bytes) throw new Error('downloaded size differs');
      if (rounds.length === 0 && sha256Of(down) !== sourceHash) throw new Error('downloaded bytes differ');
      rmSync(down);
      return result;
    };
    for (let r = 0; r < ROUNDS; r++) {
      // New content each round (its first 8 bytes), so every upload stores a new object: the same
      // bytes again would only refresh the stored copy and never reach the disk.
      const head = Buffer.alloc(8);
      head.writeBigUInt64BE(BigInt(Date.now() * 100 + r));
      const out = openSync(source, 'r+');
      writeSync(out, head, 0, 8, 0);
      closeSync(out);
      execFileSync('sync');
      sourceHash = sha256Of(source);
      /** `cp` of the source, timed; one runs before every transfer, so cp samples the disk as the transfers do. */
      const cpSeconds: number[] = [];
      const timeCp = () => {
        const copy = join(dir, 'copy.bin');
        cpSeconds.push(timed(() => execFileSync('cp', [source, copy])).seconds);
        rmSync(copy);
      };
      const seconds = {} as Record<BigTransfer, number>;
      const serverCpuS = {} as Record<BigTransfer, number>;
      /**
       * Runs `steps`, a cp before each, starting at a different one each round: what ran just
       * before weighs on this disk, so no kind of transfer always follows the same one.
       */
      const turnByTurn = (steps: [BigTransfer, () => { seconds: number; serverCpuS: number }][]) => {
        for (let i = 0; i < steps.length; i++) {
          const [kind, step] = steps[(i + r) % steps.length]!;
          timeCp();
          const timing = step();
          seconds[kind] = round(timing.seconds);
          serverCpuS[kind] = timing.serverCpuS;
        }
      };
      let objectID = 0;
      let portableObjectID = 0;
      /** An upload of the source to `server`, checked; the stored object's id. */
      const uploadTo = (server: Proc, side: { token: string; packageID: number }, keep: (id: number) => void) => () => {
        const upload = timed(() => curlUpload(server.url, side.token, side.packageID, source));
        if (upload.value.fileHash !== `Full${sourceHash}`) throw new Error(`fileHash ${upload.value.fileHash} is not the source's SHA-256`);
        keep(upload.value.objectID);
        return upload;
      };
      turnByTurn([
        ['upload', uploadTo(yunji, { token, packageID }, (id) => (objectID = id))],
        ['uploadPortable', uploadTo(portable, portableSide, (id) => (portableObjectID = id))],
        [
          'curlUploadToReceiver',
          () => {
            const toReceiver = timed(() => curl(['--header', 'Expect:', '--form-string', 'info={}', '--form', `files=@${source};filename=big.bin`, `http://127.0.0.1:${receiveServer.port}/`]));
            if (!/^[0-9a-f]{64}$/.test(toReceiver.value) || statSync(join(receiveDir, 'received.bin')).size <= bytes) throw new Error('receive-server.py did not take the whole upload');
            return toReceiver;
          },
        ],
      ]);
      const url = `${yunji.url}/v1/object/download?objectID=${objectID}`;
      const portableUrl = `${portable.url}/v1/object/download?objectID=${portableObjectID}`;
      turnByTurn([
        ['download', () => download(() => curl([...auth, '--output', down, url]))],
        ['downloadPortable', () => download(() => curl(['--header', `authorization: Bearer ${portableSide.token}`, '--output', down, portableUrl]))],
        // Its seconds are its own (it prints them): the interpreter's start is not download time.
        ['spliceDownload', () => download(() => execFileSync('python3', [SPLICE_CLIENT, url, token, down]).toString(), Number)],
        // curl copying the stored file itself, with no server: the most a curl download can reach.
        ['curlAlone', () => download(() => curl(['--output', down, `file://${source}`]))],
        ['curlFromSendfileServer', () => download(() => curl(['--output', down, `http://127.0.0.1:${sendfilePort}/`]))],
      ]);
      rounds.push({ cpSeconds: cpSeconds.map((t) => round(t)), seconds, serverCpuS });
    }
    // Each ratio is the median cp's seconds over the median transfer's: with a cp before every
    // transfer, both medians are taken over the same minutes of this disk, whose speed moves by 2×
    // from one transfer to the next (docs/BENCHMARKS.md, 2026-12-06 10:25).
    const cpMedian = median(rounds.flatMap((r) => r.cpSeconds));
    const medianSeconds = (kind: BigTransfer) => median(rounds.map((r) => r.seconds[kind]));
    const ratioOf = (kind: BigTransfer) => round(cpMedian / medianSeconds(kind));
    const mibPerSecondOf = (kind: BigTransfer) => round(mib / medianSeconds(kind), 1);
    return {
      mib,
      cpMiBps: round(mib / cpMedian, 1),
      uploadMiBps: mibPerSecondOf('upload'),
      downloadMiBps: mibPerSecondOf('download'),
      spliceDownloadMiBps: mibPerSecondOf('spliceDownload'),
      uploadRatio: ratioOf('upload'),
      // Pure Node's seconds over the native server's, for the same transfers in the same rounds.
      portableOverNative: {
        upload: round(medianSeconds('uploadPortable') / medianSeconds('upload')),
        download: round(medianSeconds('downloadPortable') / medianSeconds('download')),
        uploadServerCpu: round(median(rounds.map((r) => r.serverCpuS.uploadPortable)) / median(rounds.map((r) => r.serverCpuS.upload))),
        downloadServerCpu: round(median(rounds.map((r) => r.serverCpuS.downloadPortable)) / median(rounds.map((r) => r.serverCpuS.download))),
      },
      curlUploadToReceiverRatio: ratioOf('curlUploadToReceiver'),
      downloadRatio: ratioOf('download'),
      spliceDownloadRatio: ratioOf('spliceDownload'),
      curlAloneRatio: ratioOf('curlAlone'),
      curlFromSendfileServerRatio: ratioOf('curlFromSendfileServer'),
      rounds,
      serverPeakRssMiB: yunji.peakRssMiB(),
      portableServerPeakRssMiB: portable.peakRssMiB(),
      loginPeakRssMiB,
    };
  } finally {
    await receiveServer.stop();
    await sendfileServer.stop();
    await portable.stop();
    await yunji.stop();
  }
}

/** One upload request of one 4 KiB file whose content and path are unique to `i`, as a client would build it. */
function smallUploadBody(boundary: string, packageID: number, i: number): Buffer {
  const content = Buffer.alloc(4096, i % 251);
  content.writeUInt32BE(i, 0);
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="info"\r\n\r\n${JSON.stringify({ packageID })}\r\n`),
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="files"; filename="small%2F${i}"\r\ncontent-type: application/octet-stream\r\n\r\n`),
    content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

/**
 * How long creating one 4 KiB file takes in `dir` at this moment (2,000 of them, made as a loop of
 * open, write, close): small uploads create one file each, and on this project's VMs that cost has
 * swung from 50 µs to nearly 1 ms within one session, with the disk.
 */
function fileCreateMicros(dir: string): number {
  const probe = mkdtempSync(join(dir, 'yunji-bench-files-'));
  try {
    const bytes = Buffer.alloc(4096, 1);
    const t = performance.now();
    for (let i = 0; i < 2000; i++) {
      const fd = openSync(join(probe, `f${i}`), 'wx');
      writeSync(fd, bytes);
      closeSync(fd);
    }
    return round(((performance.now() - t) * 1000) / 2000, 0);
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/**
 * Where a run's small uploads are repeated with the data dir in memory, to tell the server's own
 * cost from the disk's: Linux's /dev/shm (a tmpfs), when there is one.
 */
function memoryDir(): string | undefined {
  try {
    return statSync('/dev/shm').isDirectory() ? '/dev/shm' : undefined;
  } catch {
    return undefined;
  }
}

/** 10,000 distinct 4 KiB files, one per request, 16 at a time (autocannon, which builds nothing per request but the body). */
async function smallObjects(databaseUrl: string, parentDir = tmpdir(), env: Record<string, string> = {}) {
  const fileCreateMicrosBefore = fileCreateMicros(parentDir);
  const yunji = await startYunji(databaseUrl, env, parentDir);
  try {
    const { token, packageID, loginPeakRssMiB } = await setup(yunji);
    const boundary = 'yunji-bench-boundary';
    let next = 0;
    // Timed to the last answer: autocannon itself notices it is done only at its next one-second tick.
    let last = 0;
    const cpuBefore = cpuSecondsOf(yunji.child.pid);
    const t = performance.now();
    const result = await autocannon({
      url: `${yunji.url}/v1/object/upload`,
      connections: 16,
      amount: SMALL_COUNT,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
      requests: [{ setupRequest: (req) => ({ ...req, body: smallUploadBody(boundary, packageID, next++) }), onResponse: () => void (last = performance.now()) }],
    });
    const seconds = (last - t) / 1000;
    const cpuSeconds = cpuSecondsOf(yunji.child.pid) - cpuBefore;
    if (result.errors || result.non2xx) throw new Error(`${result.errors} errors, ${result.non2xx} non-2xx answers`);
    const listed = await countObjects(yunji, token, packageID);
    if (listed !== SMALL_COUNT) throw new Error(`${listed} objects listed after ${SMALL_COUNT} uploads`);
    return {
      objects: SMALL_COUNT,
      concurrency: 16,
      seconds: round(seconds),
      objectsPerSecond: round(SMALL_COUNT / seconds, 0),
      // The server's own CPU per upload (the database's, on PostgreSQL, not included): steadier than the rate on a shared machine.
      serverCpuMicrosPerObject: round((cpuSeconds * 1e6) / SMALL_COUNT, 0),
      latencyP99Ms: result.latency.p99,
      serverPeakRssMiB: yunji.peakRssMiB(),
      loginPeakRssMiB,
      fileCreateMicrosBefore,
    };
  } finally {
    await yunji.stop();
  }
}

async function countObjects(proc: Proc, token: string, packageID: number): Promise<number> {
  let count = 0;
  let continuationToken = '';
  do {
    const query = new URLSearchParams({ packageID: String(packageID), path: '', isPrefix: 'true', ...(continuationToken ? { continuationToken } : {}) });
    const res = (await (await fetch(`${proc.url}/v1/object/listByPath?${query}`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      data: { objects: unknown[]; nextContinuationToken: string };
    };
    count += res.data.objects.length;
    continuationToken = res.data.nextContinuationToken;
  } while (continuationToken);
  return count;
}

type SmallRun = Awaited<ReturnType<typeof smallObjects>>;

/**
 * Small uploads on the native server and on the pure-Node one, in the order native, pure Node,
 * pure Node, native (the disk's speed drifts within minutes, and the mean of each side's two runs
 * cancels a steady drift); each side's means, and pure Node's over native's.
 */
async function smallObjectsBothSides(run: (env: Record<string, string>) => Promise<SmallRun>) {
  const native: SmallRun[] = [];
  const portable: SmallRun[] = [];
  for (const side of ['native', 'portable', 'portable', 'native'] as const) {
    if (side === 'native') native.push(await run({}));
    else portable.push(await run(PORTABLE));
  }
  const middle = (runs: SmallRun[], of: (r: SmallRun) => number) => round(runs.reduce((sum, r) => sum + of(r), 0) / runs.length, 0);
  return {
    native: { objectsPerSecond: middle(native, (r) => r.objectsPerSecond), serverCpuMicrosPerObject: middle(native, (r) => r.serverCpuMicrosPerObject), runs: native },
    portable: { objectsPerSecond: middle(portable, (r) => r.objectsPerSecond), serverCpuMicrosPerObject: middle(portable, (r) => r.serverCpuMicrosPerObject), runs: portable },
    portableOverNative: {
      seconds: round(middle(native, (r) => r.objectsPerSecond) / middle(portable, (r) => r.objectsPerSecond)),
      serverCpu: round(middle(portable, (r) => r.serverCpuMicrosPerObject) / middle(native, (r) => r.serverCpuMicrosPerObject)),
    },
  };
}

export async function storageBench(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-storage-'));
  try {
    const results: Record<string, unknown> = { bigObject: await bigObject(dir) };
    results.smallUploadsSqlite = await smallObjectsBothSides((env) => smallObjects('', tmpdir(), env));
    const memory = memoryDir();
    // Not the target's measure (that is on the disk): the same uploads with no disk under them.
    results.smallUploadsSqliteInMemory = memory ? await smallObjectsBothSides((env) => smallObjects('', memory, env)) : 'skipped: no /dev/shm';
    const skip = await postgresUnavailableReason();
    if (skip) results.smallUploadsPostgres = `skipped: ${skip}`;
    else {
      results.smallUploadsPostgres = await smallObjectsBothSides(async (env) => {
        const pg = await createPgDatabase();
        try {
          return await smallObjects(pg.url, tmpdir(), env);
        } finally {
          await pg.drop();
        }
      });
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
