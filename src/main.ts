import { parseArgs } from 'node:util';
import {
  adminCreateApiKey,
  adminCreateTenant,
  adminCreateUser,
  adminRecountUsage,
  adminResealSecrets,
  adminSetQuota,
  adminShowTenant,
} from './app/admin.ts';
import { ConfigError, loadConfig } from './app/config.ts';
import type { Config } from './lib/settings.ts';
import type { Core } from './jobs/core.ts';
import { AppError } from './lib/errors.ts';
import { openRuntime } from './app/runtime.ts';
import { serve, work } from './app/server.ts';

const USAGE = `Usage: yunji <command>

  serve                          run the API server and job workers (migrates and bootstraps first)
  worker                         run job workers only (YUNJI_WORKERS at once)
  migrate                        bring the database schema up to date
  admin create-user --email E [--password P] [--display-name N] [--tenant ID --role R]
  admin create-tenant --name N --owner EMAIL
  admin create-api-key --tenant ID --email E --name N [--role R]
  admin reseal-secrets           re-seal stored credentials with YUNJI_SECRET_KEY (then former keys can go)
  admin set-quota --tenant ID [--max-bytes N|default] [--max-objects N|default]
  admin show-tenant --tenant ID
  admin recount-usage [--tenant ID]  recount tenants' usage from their objects and local spaces' files; prints each before and after

Settings come from YUNJI_* environment variables and ./yunji.config.json (see README).`;

class UsageError extends Error {}

function intOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a positive integer (got '${value}')`);
  return Number(value);
}

/** A quota option: a count (0: no limit), or 'default' (null: the operator's default). */
function limitOption(name: string, value: string | undefined): number | null | undefined {
  if (value === undefined || value === 'default') return value === undefined ? undefined : null;
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)))
    throw new UsageError(`--${name} must be a whole number (0: no limit) or 'default' (got '${value}')`);
  return Number(value);
}

function required(name: string, value: string | undefined): string {
  if (value === undefined || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

/** Parses an admin command's options (usage errors before the database is opened) into the work to do. */
function adminCommand(sub: string | undefined, args: string[]): (core: Core) => Promise<unknown> {
  const { values } = parseArgs({
    args,
    options: {
      email: { type: 'string' },
      password: { type: 'string' },
      'display-name': { type: 'string' },
      tenant: { type: 'string' },
      role: { type: 'string' },
      name: { type: 'string' },
      owner: { type: 'string' },
      'max-bytes': { type: 'string' },
      'max-objects': { type: 'string' },
    },
    strict: true,
  });
  switch (sub) {
    case 'create-user': {
      const opts = {
        email: required('email', values.email),
        password: values.password,
        displayName: values['display-name'],
        tenantId: intOption('tenant', values.tenant),
        role: values.role,
      };
      return (core) => adminCreateUser(core, opts);
    }
    case 'create-tenant': {
      const opts = { name: required('name', values.name), ownerEmail: required('owner', values.owner) };
      return (core) => adminCreateTenant(core, opts);
    }
    case 'create-api-key': {
      const opts = {
        tenantId: intOption('tenant', required('tenant', values.tenant)) as number,
        email: required('email', values.email),
        name: required('name', values.name),
        role: values.role,
      };
      return (core) => adminCreateApiKey(core, opts);
    }
    case 'reseal-secrets':
      return (core) => adminResealSecrets(core);
    case 'set-quota': {
      const tenantId = intOption('tenant', required('tenant', values.tenant)) as number;
      const limits = {
        maxBytes: limitOption('max-bytes', values['max-bytes']),
        maxObjects: limitOption('max-objects', values['max-objects']),
      };
      if (limits.maxBytes === undefined && limits.maxObjects === undefined)
        throw new UsageError('set-quota needs --max-bytes or --max-objects');
      return (core) => adminSetQuota(core, tenantId, limits);
    }
    case 'show-tenant': {
      const tenantId = intOption('tenant', required('tenant', values.tenant)) as number;
      return (core) => adminShowTenant(core, tenantId);
    }
    case 'recount-usage': {
      const tenantId = intOption('tenant', values.tenant);
      return (core) => adminRecountUsage(core, tenantId);
    }
    default:
      throw new UsageError(`unknown admin command '${sub ?? ''}'`);
  }
}

async function runAdmin(config: Config, sub: string | undefined, args: string[]): Promise<void> {
  const run = adminCommand(sub, args);
  const { core, database } = await openRuntime(config);
  try {
    process.stdout.write(`${JSON.stringify(await run(core), null, 2)}\n`);
  } finally {
    await database.close();
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve':
      return serve(config);
    case 'worker':
      return work(config);
    case 'migrate': {
      const { database } = await openRuntime(config);
      await database.close();
      process.stdout.write('database is up to date\n');
      return;
    }
    case 'admin':
      return runAdmin(config, rest[0], rest.slice(1));
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError || String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS_')) {
    process.stderr.write(`yunji: ${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (err instanceof ConfigError || err instanceof AppError) {
    process.stderr.write(`yunji: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`yunji: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
