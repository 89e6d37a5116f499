import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { outboundAllowProblem } from '../lib/outbound.ts';
import { ConfigSchema, type Config } from '../lib/settings.ts';

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function parseEnvValue(name: string, raw: string, schema: TSchema): unknown {
  if (schema.type === 'integer') {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name}: must be an integer (got '${raw}')`);
    return Number(raw.trim());
  }
  if (schema.type === 'boolean') {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
    throw new ConfigError(`${name}: must be true or false (got '${raw}')`);
  }
  return raw;
}

/** Reads `yunji.config.json` (or `YUNJI_CONFIG`), then the environment over it; throws ConfigError naming the bad setting. */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): Config {
  const explicitFile = env.YUNJI_CONFIG;
  const file = resolve(cwd, explicitFile ?? 'yunji.config.json');
  let fromFile: Record<string, unknown> = {};
  if (explicitFile !== undefined || existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`YUNJI_CONFIG: cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      fromFile = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`${file}: not valid JSON: ${(err as Error).message}`);
    }
    if (typeof fromFile !== 'object' || fromFile === null || Array.isArray(fromFile)) {
      throw new ConfigError(`${file}: must hold a JSON object`);
    }
  }

  const merged: Record<string, unknown> = { ...fromFile };
  for (const [key, schema] of Object.entries(ConfigSchema.properties) as [string, TSchema][]) {
    const envName = schema.env as string;
    const raw = env[envName];
    if (raw !== undefined) merged[key] = parseEnvValue(envName, raw, schema);
  }
  const withDefaults = Value.Default(ConfigSchema, merged) as Record<string, unknown>;
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const key = first.path.replace(/^\//, '').split('/')[0] ?? '';
    const prop = (ConfigSchema.properties as Record<string, TSchema>)[key];
    const name = prop ? `${prop.env as string} (${key})` : `'${key}' (unknown setting)`;
    // A secret's value is never repeated back, not even a wrong one.
    const shown = first.value !== undefined && prop?.secret !== true ? ` (got ${JSON.stringify(first.value)})` : '';
    throw new ConfigError(`${name}: ${first.message}${shown}`);
  }
  const config = withDefaults as Config;
  const allowProblem = outboundAllowProblem(config.outboundAllow);
  if (allowProblem) throw new ConfigError(`YUNJI_OUTBOUND_ALLOW (outboundAllow): ${allowProblem}`);
  config.dataDir = resolve(cwd, config.dataDir);
  return config;
}
