import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * Every setting, in one schema: the JSON file's shape, the environment variable that overrides it
 * (`env`), its default, its bounds and its documentation (the README table is checked against it).
 */
export const ConfigSchema = Type.Object(
  {
    host: Type.String({ env: 'YUNJI_HOST', default: '127.0.0.1', minLength: 1, description: 'Address to listen on.' }),
    port: Type.Integer({
      env: 'YUNJI_PORT',
      default: 7890,
      minimum: 0,
      maximum: 65535,
      description: 'TCP port to listen on (0 picks a free one).',
    }),
    dataDir: Type.String({
      env: 'YUNJI_DATA_DIR',
      default: './data',
      minLength: 1,
      description: "Directory for Yunji's own files: the embedded SQLite database by default.",
    }),
    databaseUrl: Type.String({
      env: 'YUNJI_DATABASE_URL',
      default: '',
      description: 'Empty: SQLite at `<dataDir>/yunji.db`. `sqlite:<path>` for another file, `postgres://…` for PostgreSQL.',
    }),
    adminEmail: Type.String({
      env: 'YUNJI_ADMIN_EMAIL',
      default: 'admin@example.com',
      minLength: 3,
      maxLength: 254,
      description: 'Admin created on first start of an empty database.',
    }),
    adminPassword: Type.String({
      env: 'YUNJI_ADMIN_PASSWORD',
      default: '',
      description: 'Password of that admin; generated and printed once when empty.',
    }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { env: 'YUNJI_LOG_LEVEL', default: 'info', description: 'pino log level (`fatal` … `trace`, `silent`).' },
    ),
    bodyLimit: Type.Integer({
      env: 'YUNJI_BODY_LIMIT',
      default: 1048576,
      minimum: 1024,
      description: 'Largest JSON request body, in bytes (larger: 413).',
    }),
    sessionTtl: Type.Integer({
      env: 'YUNJI_SESSION_TTL',
      default: 604800,
      minimum: 1,
      description: 'Lifetime of a login session, in seconds.',
    }),
    invitationTtl: Type.Integer({
      env: 'YUNJI_INVITATION_TTL',
      default: 604800,
      minimum: 1,
      description: 'Lifetime of an invitation token, in seconds.',
    }),
    loginMaxFailures: Type.Integer({
      env: 'YUNJI_LOGIN_MAX_FAILURES',
      default: 10,
      minimum: 1,
      description:
        'Failed password checks (login, accepting an invitation) allowed per account within the window, then 429 until it ends; a client address gets five times as many.',
    }),
    loginWindow: Type.Integer({
      env: 'YUNJI_LOGIN_WINDOW',
      default: 900,
      minimum: 1,
      description: 'Throttling window for failed password checks, in seconds.',
    }),
    authCacheTtl: Type.Integer({
      env: 'YUNJI_AUTH_CACHE_TTL',
      default: 1000,
      minimum: 0,
      maximum: 60000,
      description:
        "Milliseconds a process reuses a verified token (SQLite only; 0: off). This process's own changes apply at once; another process's within this time.",
    }),
    maxObjectSize: Type.Integer({
      env: 'YUNJI_MAX_OBJECT_SIZE',
      default: 5497558138880,
      minimum: 1,
      description: 'Largest object one upload may store, in bytes (larger: 413).',
    }),
    shardGrace: Type.Integer({
      env: 'YUNJI_SHARD_GRACE',
      default: 900,
      minimum: 0,
      description:
        'Seconds unreferenced bytes are kept at least before the sweeper removes them; bytes of a write still in flight are never removed, however long it takes (see `YUNJI_SWEEP_FENCE`).',
    }),
    sweepInterval: Type.Integer({
      env: 'YUNJI_SWEEP_INTERVAL',
      default: 600,
      minimum: 0,
      description: 'Seconds between sweeps of unreferenced bytes in every space (also once at start-up; 0: only at start-up).',
    }),
    secretKey: Type.String({
      env: 'YUNJI_SECRET_KEY',
      default: '',
      pattern: '^(|[\\s\\S]{32,})$',
      secret: true,
      description:
        'Key that encrypts stored credentials (any string of 32+ characters). Empty: a random key kept in `<dataDir>/secret.key`, created on first start.',
    }),
    localRoots: Type.String({
      env: 'YUNJI_LOCAL_ROOTS',
      default: '',
      description:
        "Comma-separated directories in which tenants may make `local` user spaces and `local` sync sources (never overlapping the data dir, the database or another tenant's local space or source). Empty: none; tenants keep only the default spaces Yunji makes in the data dir.",
    }),
    trustProxy: Type.Boolean({
      env: 'YUNJI_TRUST_PROXY',
      default: false,
      description: 'Take the client address from `X-Forwarded-For` (only behind a proxy you run).',
    }),
    cookieSecure: Type.Boolean({
      env: 'YUNJI_COOKIE_SECURE',
      default: false,
      description: 'Mark the session cookie `Secure` (serve over HTTPS).',
    }),
    workers: Type.Integer({
      env: 'YUNJI_WORKERS',
      default: 8,
      minimum: 0,
      maximum: 1000,
      description: 'Jobs one `yunji serve` or `yunji worker` process runs at once (0: this process runs no jobs).',
    }),
    jobLease: Type.Integer({
      env: 'YUNJI_JOB_LEASE',
      default: 30,
      minimum: 2,
      description: 'Seconds a running job stays claimed without a heartbeat; after that another process retries (or fails) it.',
    }),
    jobPoll: Type.Integer({
      env: 'YUNJI_JOB_POLL',
      default: 1000,
      minimum: 10,
      description: 'Milliseconds between looks for due jobs when nothing announced one.',
    }),
    tenantJobConcurrency: Type.Integer({
      env: 'YUNJI_TENANT_JOB_CONCURRENCY',
      default: 16,
      minimum: 1,
      description: 'Jobs of one tenant running at once, across all processes.',
    }),
    globalJobConcurrency: Type.Integer({
      env: 'YUNJI_GLOBAL_JOB_CONCURRENCY',
      default: 0,
      minimum: 0,
      description: "Jobs running at once across all processes and tenants (0: no cap beyond each process's `YUNJI_WORKERS`).",
    }),
    deleteDelay: Type.Integer({
      env: 'YUNJI_DELETE_DELAY',
      default: 86400,
      minimum: 0,
      description: "Seconds between a request to delete a user's data and the deletion (it can be cancelled meanwhile).",
    }),
    webhookTimeout: Type.Integer({
      env: 'YUNJI_WEBHOOK_TIMEOUT',
      default: 10,
      minimum: 1,
      description: 'Seconds a webhook receiver has to answer.',
    }),
    sourceTimeout: Type.Integer({
      env: 'YUNJI_SOURCE_TIMEOUT',
      default: 30,
      minimum: 1,
      description: 'Seconds an external data source (a manifest URL, a file it lists) has to answer before its sync fails.',
    }),
    s3Timeout: Type.Integer({
      env: 'YUNJI_S3_TIMEOUT',
      default: 60,
      minimum: 1,
      description:
        "Seconds a tenant's S3 endpoint (a user space's, an `s3` source's) may take to accept a connection, and may then stay silent in the middle of a request, before the request fails as unreachable; a transfer that keeps moving is never cut.",
    }),
    outboundAllow: Type.String({
      env: 'YUNJI_OUTBOUND_ALLOW',
      default: '',
      description:
        "Comma-separated host names, IP addresses and CIDRs that tenants' webhooks, sources and S3 endpoints may reach though loopback, private, link-local or reserved (`*`: any address). Empty: none.",
    }),
    secretKeyPrevious: Type.String({
      env: 'YUNJI_SECRET_KEY_PREVIOUS',
      default: '',
      pattern: '^([^,]{32,}(,[^,]{32,})*)?$',
      secret: true,
      description:
        'Former values of `YUNJI_SECRET_KEY`, comma-separated: credentials sealed with them stay readable (new ones are sealed with the current key) until `yunji admin reseal-secrets` has run.',
    }),
    maxStreamsPerUser: Type.Integer({
      env: 'YUNJI_MAX_STREAMS_PER_USER',
      default: 20,
      minimum: 0,
      description: 'Event streams (`/ws`, `/api/events`) one user may hold open on one server process; past it, 429 (0: no limit).',
    }),
    minTriggerInterval: Type.Integer({
      env: 'YUNJI_MIN_TRIGGER_INTERVAL',
      default: 60,
      minimum: 1,
      description:
        'Fewest seconds between two runs of an interval trigger (`POST /api/jobs/triggers`, an `Interval` sync task); a shorter interval is refused.',
    }),
    maxTriggersPerTenant: Type.Integer({
      env: 'YUNJI_MAX_TRIGGERS_PER_TENANT',
      default: 100,
      minimum: 0,
      description: 'Most interval triggers (`Interval` sync tasks included) one tenant may have enabled; more are refused.',
    }),
    jobRetention: Type.Integer({
      env: 'YUNJI_JOB_RETENTION',
      default: 2592000,
      minimum: 0,
      description:
        'Seconds a finished job is kept after it ended; then it is deleted with its logs and webhook deliveries (0: kept forever).',
    }),
    packageObjectsLimit: Type.Integer({
      env: 'YUNJI_PACKAGE_OBJECTS_LIMIT',
      default: 10000,
      minimum: 1,
      description:
        'Most objects `GET /v1/object/getPackageObjects` answers; a larger package is refused (400), to be listed page by page with `/v1/object/listByPath`.',
    }),
    sweepFence: Type.Integer({
      env: 'YUNJI_SWEEP_FENCE',
      default: 60,
      minimum: 3,
      description:
        "Seconds a process's writes in flight keep every sweeper off their bytes after its last renewal (every third of this); a write of a process that could not renew in time fails instead of being acknowledged.",
    }),
    tenantMaxBytes: Type.Integer({
      env: 'YUNJI_TENANT_MAX_BYTES',
      default: 0,
      minimum: 0,
      description:
        "Bytes each tenant's objects (each counted in full) and the files Yunji writes into its local spaces may take together (0: no limit); `yunji admin set-quota` sets a tenant's own.",
    }),
    tenantMaxObjects: Type.Integer({
      env: 'YUNJI_TENANT_MAX_OBJECTS',
      default: 0,
      minimum: 0,
      description: "Objects each tenant may have (0: no limit); `yunji admin set-quota` sets a tenant's own.",
    }),
    shutdownTimeout: Type.Integer({
      env: 'YUNJI_SHUTDOWN_TIMEOUT',
      default: 30,
      minimum: 1,
      description: 'Seconds SIGTERM waits for in-flight requests before exiting.',
    }),
    native: Type.Union([Type.Literal('auto'), Type.Literal('off')], {
      env: 'YUNJI_NATIVE',
      default: 'auto',
      description:
        "`auto`: small local file writes and directory walks run in Yunji's native module (`native/fs-work`) where it was built, in pure Node where not; `off`: always in pure Node. The server logs which at start.",
    }),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

/** The settings as documentation rows: the README's configuration table is generated from this. */
export function configTable(): { env: string; key: string; default: unknown; description: string }[] {
  return (Object.entries(ConfigSchema.properties) as [string, TSchema][]).map(([key, s]) => ({
    env: s.env as string,
    key,
    default: s.default,
    description: s.description ?? '',
  }));
}
